"""A search's round prefixes: ladder states after round r, content-addressed under ``<experiment>/prefixes/``.

The first ladder that computes a round stores its state (:mod:`nas_lth.estimation.prefix`); a later ladder
whose rounds up to r are the same (same key) continues from it instead of training them again. No claim is
taken, unlike the dense trajectory: two ladders that reach the same round at the same moment both compute it
(the same bytes; the second write is skipped), which costs one round, never a wait on a trial that the
scheduler may stop. A file that fails its check is ignored (and replaced by the next ladder that computes
it); a failed write costs the sharing, not the trial.
"""

from __future__ import annotations

import io
import logging

import torch

from nas_lth.estimation.prefix import prefix_key
from nas_lth.recipe import Recipe
from nas_lth.store.fs import Location

log = logging.getLogger(__name__)
FOLDER = "prefixes"
_KEYS = {"version", "round", "masks", "masks_ready", "runs_done", "prev_stop", "next_stop", "cumulative", "rows",
         "theta_k", "generator", "pending", "final_weights", "round_iterations"}


class ExperimentPrefixes:
    """:class:`~nas_lth.estimation.prefix.PrefixStore` over an experiment's storage (any node of a cluster
    reaches it, and it survives a resume)."""

    def __init__(self, experiment: Location, recipe: Recipe, device):
        self.experiment, self.recipe = experiment, recipe
        self.device_kind = str(getattr(device, "type", device))

    def path(self, round_: int) -> Location:
        return self.experiment.join(FOLDER, f"{prefix_key(self.recipe, round_, self.device_kind)}.pt")

    def load(self, round_: int) -> dict | None:
        path = self.path(round_)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, OSError):
            return None
        try:  # weights only: a file from shared storage never gets to run code on load
            st = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            if not isinstance(st, dict) or set(st) != _KEYS or st["round"] != round_ or not st["masks_ready"]:
                raise ValueError("not the state after this round")
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: computed again, not a failed trial
            log.warning("round prefix %s failed its check (%s); the round is computed again", path.uri, exc)
            return None
        return st

    def store(self, round_: int, state: dict) -> None:
        path = self.path(round_)
        try:
            if path.exists() and self.load(round_) is not None:
                return  # stored by another ladder already: the same bytes
            buf = io.BytesIO()
            torch.save(state, buf)
            path.write_bytes(buf.getvalue())
        except OSError as exc:  # a full disk or lost storage costs the sharing of this round, not the trial
            log.warning("round prefix %s not stored: %s", path.uri, exc)
