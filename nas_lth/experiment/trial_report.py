"""What a trial tells Tune, typed: :class:`TrialReport`. The trainable builds one per report and
sends ``to_tune()``; the driver side (results callback, memo, stopper, progress table) reads
``TrialReport.from_result(result)`` by attribute, so a key is spelled in one place."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from nas_lth.recipe import REWIND_MODE

# how a replayed trial's message begins (experiment.memo): another trial's result, or its own from before the
# driver stopped
REPLAY_MESSAGES = ("same recipe as trial", "finished before the driver stopped")

RUNNING, COMPLETED, DIVERGED, FAILED = "running", "completed", "diverged", "failed"
STOPPED = "stopped"  # a row's status only: the scheduler stopped the trial before its full budget


@dataclass
class TrialReport:
    trial_id: str
    status: str = RUNNING  # running, then completed | diverged | failed (the final report)
    final: bool = False  # the trial's last report: full budget, test metrics, the Parquet row
    fidelity: float = 0.0  # epochs of the measured run: the scheduler's time axis
    objective: float = 0.0  # the validation metric the searcher and scheduler maximise
    round: int | None = None
    weights_remaining: float | None = None
    message: str = ""
    # provenance and reproducibility (what a result depends on)
    node: str | None = None
    device: str | None = None
    torch_threads: int | None = None
    torch_version: str | None = None
    rewind_mode: str = REWIND_MODE
    restores: int = 0
    layer_kinds: str | None = None  # comma-separated kinds of the model's prunable layers
    # training spent: by this trial, for everyone (the shared dense run), reused from another trial
    iterations_trained: int | None = None  # by this trial so far, every round (its share of the dense run too)
    iterations_per_epoch: int | None = None
    trajectory_iterations_trained: int | None = None
    shared_iterations: int | None = None
    trajectory_key: str | None = None
    cached_from: str | None = None  # a replayed trial: whose result it is
    # learning-curve records since the last report (evals_reset: the list replaces what was sent)
    evals: list[dict] = field(default_factory=list)
    evals_reset: bool = False
    # a ladder trial (fidelity: rounds): its finished rounds as rounds/ rows (the driver writes each once); a
    # round's report carries that round, the final report every round of the ladder
    round_rows: list[dict] = field(default_factory=list)
    # the row's measurements: val_/test_/dense_ metrics, early_stop_iter, mask_iter, epochs_trained, ...
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_tune(self, metric: str | None = None, required: tuple[str, ...] = ()) -> dict:
        """Flat dict for ``tune.report``; ``metric`` (val_acc, val_micro_f1) repeats the objective under
        its own name for Tune's tables where the report does not carry the measured value itself;
        ``required`` keys (a multi-objective searcher's metrics) are present in every result, None until
        measured, as Tune's strict metric check asks."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "metrics"}
        out.update(self.metrics)
        if metric is not None:  # a failed trial measured nothing: its metric is absent, not 0
            if self.status == FAILED:
                out[metric] = None
            else:  # measured (a final report) wins: the objective may be a score of it (sparsest_within)
                out.setdefault(metric, self.objective)
        for key in required:
            out.setdefault(key, None)
        return out

    @classmethod
    def from_result(cls, result: dict | None) -> TrialReport:
        """The report inside a Tune result (Tune adds its own keys: they land in ``metrics``)."""
        result = dict(result or {})
        known = {f.name for f in dataclasses.fields(cls)} - {"metrics"}
        kwargs = {k: result.pop(k) for k in list(result) if k in known}
        kwargs.setdefault("trial_id", "")
        return cls(**kwargs, metrics=result)

    def value(self, key: str, default=None):
        """An attribute or a measurement by column name (the Parquet row's view)."""
        if key in self.metrics:
            return self.metrics[key]
        return getattr(self, key, default)

    @property
    def dense_objective(self) -> float | None:
        return self.metrics.get("dense_objective")


def finite_or_zero(value) -> float:
    """A diverged ticket is a bad ticket, not a missing value, for the searcher."""
    return float(value) if value is not None and math.isfinite(value) else 0.0
