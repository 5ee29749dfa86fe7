"""End the search early: once a ticket good enough is found (``strategy.stop_when``), or once its trials have
trained a budget of epochs (``strategy.epoch_budget``)."""

from __future__ import annotations

from ray.tune import Stopper

from nas_lth.experiment.goals import epochs_spent, meets
from nas_lth.experiment.trial_report import TrialReport


class TargetStopper(Stopper):
    metric: str | None = None  # a stopper restored from an older experiment's state lacks it

    def __init__(self, target, metric: str | None = None):
        self.target, self.metric = target, metric
        self.found: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.found is None and meets(TrialReport.from_result(result), self.target, self.metric):
            self.found = trial_id
        return False  # the trial itself is finished anyway

    def stop_all(self) -> bool:
        return self.found is not None


class EpochBudgetStopper(Stopper):
    def __init__(self, budget: float):
        self.budget = budget
        self.latest: dict[str, TrialReport] = {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        self.latest[trial_id] = TrialReport.from_result(result)
        return False

    def stop_all(self) -> bool:
        return epochs_spent(self.latest) >= self.budget
