"""Early-Bird stopping (You et al. 2020): draw the mask once it stops changing.

At each check the mask the criterion would pick now is compared with the previous ``window`` masks;
when the largest normalised Hamming distance among them is below ``eps`` the ticket is "drawn".
"""

from __future__ import annotations

from collections import deque

from nas_lth.pruning.masks import Masks, distance


class EarlyBird:
    def __init__(self, eps: float = 0.1, window: int = 5):
        if not 0 < eps < 1:
            raise ValueError(f"early-bird eps must be in (0, 1), got {eps}")
        if window < 1:
            raise ValueError(f"early-bird window must be >= 1, got {window}")
        self.eps = eps
        self.window = window
        self._recent: deque[Masks] = deque(maxlen=window)
        self.last_distance: float | None = None

    def update(self, masks: Masks) -> bool:
        """Record the current candidate mask; True once the last ``window`` masks all lie within
        ``eps`` of it."""
        if len(self._recent) == self.window:
            self.last_distance = max(distance(masks, old) for old in self._recent)
        self._recent.append({n: m.detach().clone() for n, m in masks.items()})
        return self.last_distance is not None and self.last_distance < self.eps

    def state_dict(self) -> dict:
        return {"recent": [dict(m) for m in self._recent], "last_distance": self.last_distance}

    def load_state_dict(self, state: dict) -> None:
        self._recent = deque(state["recent"], maxlen=self.window)
        self.last_distance = state["last_distance"]
