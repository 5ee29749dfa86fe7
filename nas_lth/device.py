"""Device choice at run time: CUDA when present (and asked for or 'auto'), else CPU."""

from __future__ import annotations

import torch

from nas_lth.errors import UserError

# what a trial can train on; torch knows more device types (meta, xla, ...) that hold no real data
KINDS = ("cpu", "cuda", "mps")
ALLOWED = "auto, cpu, cuda, cuda:N, mps"


def parse_device(preference: str) -> torch.device:
    """A device name of a kind that can train (without asking whether this machine has it)."""
    try:
        dev = torch.device(preference.lower())
    except RuntimeError:
        raise UserError(f"--device {preference!r} is not a device; allowed: {ALLOWED}") from None
    if dev.type not in KINDS:
        raise UserError(f"--device {preference!r}: cannot train on a {dev.type!r} device; allowed: {ALLOWED}")
    return dev


def pick_device(preference: str = "auto") -> torch.device:
    pref = (preference or "auto").lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = parse_device(preference)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {preference!r}: CUDA is not available on this machine; use auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {preference!r}: this machine has {torch.cuda.device_count()} CUDA devices "
                            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {preference!r}: MPS (Apple GPU) is not available on this machine; use auto or cpu")
    return dev
