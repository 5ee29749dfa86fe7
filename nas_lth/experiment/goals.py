"""Whether an experiment has reached what its space asked for, so the search may end early: a ticket good
enough (``strategy.stop_when``) or a budget of training epochs spent (``strategy.epoch_budget``).

Read by the strategy's stoppers while trials report, by the results callback (which marks the trials cut
short) and by the driver after Tune returns (from the stored rows).
"""

from __future__ import annotations

from nas_lth.experiment.trial_report import COMPLETED, TrialReport


def meets(rep: TrialReport, target, metric: str | None = None) -> bool:
    """Whether a finished ticket meets ``strategy.stop_when``: few enough weights, and its validation ``metric``
    (the objective where the report does not carry it, as before the objective could be a score of it)
    within ``within_dense`` of the dense network's."""
    if not rep.final or rep.status != COMPLETED:
        return False
    weights, dense = rep.weights_remaining, rep.dense_objective
    value = rep.value(metric) if metric else None
    value = rep.objective if value is None else value
    if weights is None or dense is None:
        return False
    return weights <= target.max_weights_remaining and value >= dense - target.within_dense


def epochs_spent(reports: dict[str, TrialReport]) -> float:
    """Epochs trained by these trials (their latest reports): every iteration of every round, the shared dense
    run counted once (by the trial that trained it), replays nothing."""
    return sum((r.iterations_trained or 0) / r.iterations_per_epoch for r in reports.values()
               if r.iterations_per_epoch)


def budget_spent(trials) -> float:
    """Epochs the stored trials trained (the search's rows)."""
    if trials.empty or "iterations_per_epoch" not in trials:
        return 0.0
    ok = trials.dropna(subset=["iterations_per_epoch", "iterations_trained"])
    return float((ok.iterations_trained / ok.iterations_per_epoch).sum())


def target_met(trials, target, metric: str | None = None) -> bool:
    """Whether the stored trials hold a ticket that meets ``target`` (the stopper ended the search)."""
    return any(meets(TrialReport.from_result({**row, "final": True}), target, metric)
               for row in trials.to_dict("records"))
