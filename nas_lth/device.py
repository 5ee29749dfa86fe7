"""Device choice at run time: CUDA when present (and asked for or 'auto'), else CPU."""

from __future__ import annotations

import torch

from nas_lth.errors import UserError


def pick_device(preference: str = "auto") -> torch.device:
    pref = (preference or "auto").lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError:
        msg = f"--device {preference!r} is not a device; allowed: auto, cpu, cuda, cuda:N"
        raise UserError(msg) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {preference!r}: CUDA is not available on this machine; use auto or cpu")
    return dev
