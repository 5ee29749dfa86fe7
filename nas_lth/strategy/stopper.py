"""End the search once a ticket good enough is found (``strategy.stop_when`` in the space)."""

from __future__ import annotations

from ray.tune import Stopper

from nas_lth.store.fs import Location
from nas_lth.strategy.report import COMPLETED, TrialReport


def meets(rep: TrialReport, target) -> bool:
    if not rep.final or rep.status != COMPLETED:
        return False
    weights, dense = rep.weights_remaining, rep.dense_objective
    if weights is None or dense is None:
        return False
    return weights <= target.max_weights_remaining and rep.objective >= dense - target.within_dense


class TargetStopper(Stopper):
    def __init__(self, target):
        self.target = target
        self.found: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.found is None and meets(TrialReport.from_result(result), self.target):
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
    return any(meets(TrialReport.from_result({**row, "final": True}), target) for row in trials.to_dict("records"))
