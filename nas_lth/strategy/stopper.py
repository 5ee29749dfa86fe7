"""End the search early: once a ticket good enough is found (``strategy.stop_when``), or once its trials have
trained a budget of epochs (``strategy.epoch_budget``)."""

from __future__ import annotations

from ray.tune import Stopper

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


def epochs_spent(reports: dict[str, TrialReport]) -> float:
    """Epochs trained by these trials (their latest reports): every iteration of every round, the shared dense
    run counted once (by the trial that trained it), replays nothing."""
    return sum((r.iterations_trained or 0) / r.iterations_per_epoch for r in reports.values()
               if r.iterations_per_epoch)


class EpochBudgetStopper(Stopper):
    def __init__(self, budget: float):
        self.budget = budget
        self.latest: dict[str, TrialReport] = {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        self.latest[trial_id] = TrialReport.from_result(result)
        return False

    def stop_all(self) -> bool:
        return epochs_spent(self.latest) >= self.budget


def budget_spent(trials) -> float:
    """Epochs the stored trials trained (the search's rows)."""
    if trials.empty or "iterations_per_epoch" not in trials:
        return 0.0
    ok = trials.dropna(subset=["iterations_per_epoch", "iterations_trained"])
    return float((ok.iterations_trained / ok.iterations_per_epoch).sum())


def _target_met(trials, target) -> bool:
    """Whether the stored trials hold a ticket that meets ``target`` (the stopper ended the search)."""
    return any(meets(TrialReport.from_result({**row, "final": True}), target) for row in trials.to_dict("records"))
