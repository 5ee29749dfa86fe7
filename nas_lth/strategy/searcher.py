"""A searcher that tells Optuna what each trial's results mean.

Ray's ``OptunaSearch`` (2.60) reports every result at ``training_iteration`` (the count of reports, which
here includes the checkpoint reports of earlier rounds) and tells a trial ``COMPLETE`` with its last value
whenever a result exists - a trial ASHA stopped after one epoch enters TPE's model as if its one-epoch
accuracy were final. :class:`FidelitySearch` reads each result as a :class:`TrialReport` instead:

- intermediate values only from the measured (final) run, at their fidelity step (the epoch);
- a trial that ran its full budget: ``COMPLETE`` with its full-budget objective;
- a trial stopped by the scheduler (no final report): ``PRUNED`` - Optuna's TPE ranks pruned trials by
  their furthest step, then by value, so an early value never passes for a final one;
- a failed or diverged trial: ``FAIL`` (no value: TPE leaves it out);
- a trial that replayed another trial's stored result (same recipe): ``FAIL`` with the user attribute
  ``replay_of``, so the same evaluation does not enter the study twice.

With ``strategy.constraints`` a finished trial also carries its violations (<= 0: met) as Optuna 5's trial
constraints (``Trial.set_constraint``), which constrained MOTPE / NSGA-II read, and as the user attribute
``constraints``; a trial the scheduler stopped counts as violating each one (1.0).

Each study trial carries ``tune_trial_id`` and ``nas_lth_status`` user attributes. The state is pickled
by Tune with the experiment (``searcher-state-*.pkl``), so ``--resume`` keeps it.

For a live view, every told trial is also added to an Optuna journal file, ``<experiment>/optuna.journal``
(``optuna-dashboard runs/<experiment>/optuna.journal``), when the driver sets :data:`JOURNAL` (local storage).
The path lives in this module, not in the pickled searcher: a moved experiment writes to its new place.
"""

from __future__ import annotations

import logging

from optuna.samplers import GridSampler
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from nas_lth.experiment import journal
from nas_lth.experiment.trial_report import COMPLETED, TrialReport
from nas_lth.store.constraints import describe, violations

log = logging.getLogger(__name__)
JOURNAL: dict = {"path": None, "name": "nas_lth", "metric": None}  # set by the driver per run; path None: none


class StoredViolations:
    """Optuna's ``constraints_func`` as searches before Optuna 5's ``set_constraint`` used it (deprecated there):
    kept so that a searcher state pickled by such a search still unpickles on ``--resume``. New searches set
    each trial's constraints instead (:meth:`FidelitySearch.on_trial_complete`)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, trial) -> list[float]:
        return list(trial.user_attrs.get("constraints") or [1.0] * self.n)


class FidelitySearch(OptunaSearch):
    constraints: list[dict] = []  # strategy.constraints, as plain dicts (set by the driver; pickled with the state)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._report(trial_id, TrialReport.from_result(result))

    @property
    def multi_objective(self) -> bool:
        return isinstance(self._metric, list | tuple) and len(self._metric) > 1

    def _report(self, trial_id: str, rep: TrialReport) -> None:
        if rep.final or rep.fidelity <= 0 or rep.cached_from or self.multi_objective:
            return  # earlier rounds (fidelity 0), the final result (told at completion), replays; Optuna
            # keeps no intermediate values for multi-objective studies
        step = int(round(rep.fidelity))
        # a trial resumed from a checkpoint reports some epochs again: Optuna keeps the first value
        steps = self.__dict__.setdefault("_reported_steps", {}).setdefault(trial_id, set())
        if step not in steps:
            self._ot_trials[trial_id].report(rep.objective, step)
            steps.add(step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        rep = TrialReport.from_result(result)  # an empty one without a result: not final, no fidelity
        state, value, status = TrialState.PRUNED, None, "stopped"  # no final report: the scheduler stopped it
        if error:
            state, status = TrialState.FAIL, "failed"
        elif rep.cached_from and rep.cached_from != trial_id:
            state, status = TrialState.FAIL, "replayed"
            ot_trial.set_user_attr("replay_of", rep.cached_from)
        elif rep.final:
            status = rep.status
            value = self._values(rep) if rep.status == COMPLETED else None
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL  # FAIL: lacks an objective
        else:  # Tune hands the result that made the scheduler stop the trial to on_trial_complete only
            self._report(trial_id, rep)
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        ot_trial.set_user_attr("nas_lth_status", status)
        if self.constraints and state in (TrialState.COMPLETE, TrialState.PRUNED):
            found = violations(self.constraints, rep.to_tune()) if state == TrialState.COMPLETE else None
            if state == TrialState.COMPLETE:
                ot_trial.set_user_attr("constraints", found)
            for i, c in enumerate(self.constraints):  # unknown (stopped, a value missing): violated
                ot_trial.set_constraint(f"{i}: {describe(c)}", found[i] if found is not None else 1.0)
        try:
            self._ot_study.tell(ot_trial, value, state=state)
        except Exception as exc:  # noqa: BLE001 - e.g. a trial told twice after a restore: never fatal
            # GridSampler stops the study when its last point is told, which Optuna refuses outside optimize(); the
            # trial is stored all the same (Optuna sets its state before it raises): nothing to warn about
            done = "Study.stop" in str(exc) and isinstance(self._ot_study.sampler, GridSampler)
            (log.debug if done else log.warning)("optuna tell for trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)
        self.mirror(self._ot_study._storage.get_trial(ot_trial._trial_id))

    def mirror(self, frozen) -> None:
        """Add the told trial to the journal study (the live view); a failure costs the view, not the search."""
        if not JOURNAL["path"]:
            return
        try:
            keys = self._metric if isinstance(self._metric, list) else [self._metric]
            names = [JOURNAL.get("metric") or k if k == "objective" else k for k in keys]
            study = journal.study(JOURNAL["path"], JOURNAL["name"], self._ot_study.directions, names)
            if frozen.state.is_finished():
                study.add_trial(frozen)
        except Exception as exc:  # noqa: BLE001
            log.warning("optuna journal %s: %s", JOURNAL["path"], exc)

    def _values(self, rep: TrialReport):
        """The value(s) Optuna is told: the objective, or one per objective of a multi-objective study."""
        if not self.multi_objective:
            return rep.objective
        values = [rep.value(m) for m in self._metric]
        return None if any(v is None for v in values) else [float(v) for v in values]
