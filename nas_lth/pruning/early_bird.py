"""Early-Bird stopping (You et al. 2020, "Drawing Early-Bird Tickets"): draw the mask once it stops
changing.

As in the authors' code (``EarlyBird`` in RICE-EIC/Early-Bird-Tickets, ``main.py``): a FIFO holds the
last ``window`` masks (5), each new mask is compared with the ``window - 1`` older ones, and the ticket
is drawn when every distance is ``<= eps`` (0.1); the caller checks once per epoch by default
(``eb_every``), at the start of each epoch, the first check being the untrained network.

As published with ``granularity: channel, criterion: bn_gamma, scope: global``: the masks compared are the
channels kept by |gamma| at the round's fixed ratio, and the distance is the fraction of channels that differ
(the ticket procedure hands this class channel vectors, ``TicketRun.eb_view``). Adapted, and pinned by tests,
for weight masks: (1) the mask is the recipe's criterion at the round's prune rate on the recipe's layers;
(2) for both, the distance counts only the weights (channels) alive before the round (``alive``), so ``eps``
means the same thing in every round of iterative pruning (the paper prunes once, from the dense network,
where the two definitions agree).
"""

from __future__ import annotations

from collections import deque

from nas_lth.pruning.masks import Masks, distance


class EarlyBird:
    def __init__(self, eps: float = 0.1, window: int = 5, alive: Masks | None = None):
        if not 0 < eps < 1:
            raise ValueError(f"early-bird eps must be in (0, 1), got {eps}")
        if window < 2:
            raise ValueError(f"early-bird window must be >= 2 (masks in the FIFO, the newest included), got {window}")
        self.eps = eps
        self.window = window
        self.alive = None if alive is None else {n: m.detach().clone() for n, m in alive.items()}
        self._recent: deque[Masks] = deque(maxlen=window)
        self.last_distance: float | None = None

    def update(self, masks: Masks) -> bool:
        """Record the current candidate mask; True once the FIFO is full and the newest mask lies
        within ``eps`` of each of the ``window - 1`` older ones."""
        self._recent.append({n: m.detach().clone() for n, m in masks.items()})
        if len(self._recent) < self.window:
            return False
        newest = self._recent[-1]
        self.last_distance = max(distance(newest, old, self.alive) for old in list(self._recent)[:-1])
        return self.last_distance <= self.eps

    def state_dict(self) -> dict:
        return {"recent": [dict(m) for m in self._recent], "last_distance": self.last_distance}

    def load_state_dict(self, state: dict) -> None:
        self._recent = deque(state["recent"], maxlen=self.window)
        self.last_distance = state["last_distance"]
