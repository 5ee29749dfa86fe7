"""Mask bookkeeping: density, digest, distance (Early-Bird), packed storage."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

Masks = dict[str, torch.Tensor]


def count(masks: Masks) -> tuple[int, int]:
    """(kept, total) weights over all prunable layers."""
    kept = sum(int(m.count_nonzero()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept, total


def density(masks: Masks) -> float:
    kept, total = count(masks)
    return kept / total if total else 1.0


def per_layer_density(masks: Masks) -> dict[str, float]:
    return {n: int(m.count_nonzero()) / m.numel() for n, m in masks.items()}


def pack(mask: torch.Tensor) -> bytes:
    """One bit per weight (numpy.packbits, big-endian bit order)."""
    return np.packbits(mask.detach().flatten().cpu().numpy().astype(bool)).tobytes()


def unpack(data: bytes, shape: tuple[int, ...]) -> torch.Tensor:
    n = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=n)
    return torch.from_numpy(bits.astype(np.float32)).view(shape)


def digest(masks: Masks) -> str:
    """A content hash of the masks (names, shapes and bits); equal masks give equal digests."""
    h = hashlib.sha256()
    for name in sorted(masks):
        m = masks[name]
        h.update(name.encode())
        h.update(str(tuple(m.shape)).encode())
        h.update(pack(m))
    return h.hexdigest()[:16]


def distance(a: Masks, b: Masks, among: Masks | None = None) -> float:
    """Normalised Hamming distance: the fraction of weights whose keep/prune bit differs.

    ``among`` (masks of the weights still alive, e.g. before a pruning round) restricts the count to
    the weights at stake: both masks must lie inside it, and bits outside it - weights pruned in
    earlier rounds, 0 in every candidate - count neither as equal nor in the denominator. Without it
    every weight counts, so the distance of two masks of a layer at density d pruned by rate p is at
    most 2*p*d, and a fixed threshold would mean less and less as the network gets sparser.
    """
    if set(a) != set(b) or (among is not None and set(among) != set(a)):
        raise ValueError("masks cover different layers")
    diff = sum(int((a[n].bool() != b[n].bool()).sum()) for n in a)
    if among is None:
        total = sum(a[n].numel() for n in a)
    else:
        total = sum(int(among[n].count_nonzero()) for n in a)
    return diff / total if total else 0.0


def ones_like_weights(weights: dict[str, torch.Tensor]) -> Masks:
    return {n: torch.ones_like(w) for n, w in weights.items()}
