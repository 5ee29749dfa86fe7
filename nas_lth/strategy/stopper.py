"""End the search once a ticket good enough is found (``strategy.stop_when`` in the space)."""

from __future__ import annotations

from ray.tune import Stopper

from nas_lth.store.fs import Location


def meets(result: dict, target) -> bool:
    if not result.get("final") or result.get("status") != "completed":
        return False
    weights, obj, dense = result.get("weights_remaining"), result.get("objective"), result.get("dense_objective")
    if weights is None or obj is None or dense is None:
        return False
    return weights <= target.max_weights_remaining and obj >= dense - target.within_dense


class TargetStopper(Stopper):
    def __init__(self, target):
        self.target = target
        self.found: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.found is None and meets(result, self.target):
            self.found = trial_id
        return False  # the trial itself is finished anyway

    def stop_all(self) -> bool:
        return self.found is not None


def _target_met(exp: Location, target) -> bool:
    """Whether the stored trials hold a ticket that meets ``target`` (the stopper ended the search)."""
    from nas_lth.store import read

    try:
        trials = read(exp.uri).trials
    except Exception:  # noqa: BLE001 - no results yet: certainly not met
        return False
    return any(meets({**row, "final": True}, target) for row in trials.to_dict("records"))
