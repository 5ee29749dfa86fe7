"""Driver-side Tune callback: one Parquet row per finished trial, its curve, and live progress."""

from __future__ import annotations

import json
import math
import sys
import time

from ray.tune import Callback

from nas_lth.experiment.diskfull import is_disk_full
from nas_lth.experiment.goals import epochs_spent, meets
from nas_lth.experiment.stage import unwrap
from nas_lth.experiment.trial_report import FAILED, TrialReport
from nas_lth.recipe import Recipe
from nas_lth.space.schema import SearchSpace
from nas_lth.store import write_curve, write_round, write_trial
from nas_lth.store.fs import Location
from nas_lth.store.schema import RECIPE_COLUMNS, TRIAL_COLUMNS
from nas_lth.store.writer import stored_row

ADOPTED = "adopted"  # <trial id>.json: the orphan row that stands for a trial (ResultsCallback.find_orphans)


def recipe_columns(space: SearchSpace, config: dict, layer_kinds: str | None = None) -> dict:
    """The recipe as table columns (:meth:`Recipe.columns`: null where a value does not act, and for
    layer kinds the model does not have; ``layer_kinds``: comma-separated kinds the trial reported)."""
    raw = space.recipe_dict(unwrap(config)[0])
    present = set(layer_kinds.split(",")) if layer_kinds else None
    try:
        return Recipe.model_validate(raw).columns(present)
    except Exception:  # a recipe that failed validation is still recorded, with the scalars it had
        return {k: (str(v) if isinstance(v, str | int | float) and k == "stop_at" else v)
                for k, v in raw.items() if k in RECIPE_COLUMNS and isinstance(v, str | int | float | bool)}


class ResultsCallback(Callback):
    """Writes ``trials/<id>.parquet`` and ``curves/<id>.parquet`` when a trial ends, and prints one
    progress line per finished trial (the periodic table comes from the progress reporter)."""

    epoch_budget: float | None = None  # a callback restored from an older experiment's tuner.pkl lacks it
    disk_full = False  # a trial failed on a full disk during this run (experiment.diskfull)

    def __init__(self, space: SearchSpace, experiment: Location, name: str, metric: str, quiet: bool = False,
                 target=None, epoch_budget: float | None = None):
        self.space = space
        self.experiment = experiment
        self.name = name
        self.metric = metric
        self.quiet = quiet
        self.curves: dict[str, list[dict]] = {}
        self.finished: dict[str, str] = {}  # trial id -> status, for the summary
        self.target = target  # strategy.stop_when: the search ends once a ticket meets it
        self.target_met_by: str | None = None
        self.epoch_budget = epoch_budget  # strategy.epoch_budget: the search ends once its trials trained this much
        self.latest: dict[str, TrialReport] = {}  # each trial's latest report, for the epochs spent
        self.adopted: dict[str, str] = {}  # Tune trial id -> the orphan row that stands for it (find_orphans)
        self.orphans: list[dict] = []
        self.t0 = time.monotonic()

    def setup(self, **info):
        self.t0 = time.monotonic()  # a restored callback carries the first run's clock

    # -- state survives Tuner.restore (pending curves of unfinished trials) --------------------
    def get_state(self) -> dict:
        return {"curves": self.curves, "finished": self.finished}

    def set_state(self, state: dict) -> None:
        self.curves = state.get("curves", {})
        self.finished = state.get("finished", {})

    # -- Tune hooks ----------------------------------------------------------------------------
    def on_trial_result(self, iteration, trials, trial, result, **info):
        rep = TrialReport.from_result(result)
        self.__dict__.setdefault("latest", {})[trial.trial_id] = rep
        self._write_round(trial.trial_id, rep)
        if rep.evals_reset:
            self.curves[trial.trial_id] = []
        self.curves.setdefault(trial.trial_id, []).extend(rep.evals)

    def _write_round(self, trial_id: str, rep: TrialReport) -> None:
        """A ladder trial's finished round: ``rounds/<trial_id>-<round>.parquet``, once (``write_round``)."""
        row_id = self.__dict__.get("adopted", {}).get(trial_id, trial_id)  # an adopted trial writes as its row
        for row in rep.round_rows or []:
            write_round(self.experiment, row_id, row)

    def on_trial_complete(self, iteration, trials, trial, **info):
        rep = TrialReport.from_result(trial.last_result)
        self._write_round(trial.trial_id, rep)  # the final report may carry the last (diverged) round
        status = rep.status if rep.final else "stopped"  # stopped: by the scheduler before its full budget
        self._write(trial, rep, status, rep.message)
        if self.target is not None and self.target_met_by is None and meets(rep, self.target, self.metric):
            self.target_met_by = trial.trial_id

    def on_experiment_end(self, trials, **info):
        # Tune stops the other running trials without on_trial_complete when a stopper ends the
        # experiment; record them (their work counts). After a SIGINT they stay unrecorded: --resume
        # continues them.
        if self.target_met_by is not None:
            why = f"search ended: trial {self.target_met_by} met strategy.stop_when"
        elif self.epoch_budget is not None and epochs_spent(self.__dict__.get("latest", {})) >= self.epoch_budget:
            why = f"search ended: strategy.epoch_budget of {self.epoch_budget:g} epochs spent"
        else:
            return
        for trial in trials:
            if trial.trial_id not in self.finished and trial.last_result:
                self._write(trial, TrialReport.from_result(trial.last_result), "stopped", why)

    def on_trial_error(self, iteration, trials, trial, **info):
        rep = TrialReport.from_result(trial.last_result)
        msg = ""
        if trial.error_file:
            try:
                with open(trial.error_file) as f:
                    msg = f.read().strip().splitlines()[-1][:500]
            except OSError:
                msg = "see the trial's error file"
        if is_disk_full(msg):  # not the recipe's fault: no failed row; --resume runs the trial again
            self.disk_full = True
            return
        self._write(trial, rep, "failed", msg or "trial raised an exception")

    def restore_missing(self, trials) -> list[str]:
        """Rewrite, from Tune's saved state (``trials`` as it has them), the rows of finished trials whose files
        are gone or unreadable: a trial it saved as finished wrote its row before, so a missing row was lost,
        and would never come back (Tune does not re-run a finished trial; the experiment would count as
        unfinished forever). Their curves are not restorable."""
        from nas_lth.errors import UserError
        from nas_lth.store import read

        adopted = self.load_adopted()
        finished = [t for t in trials if t.status in ("TERMINATED", "ERROR") and t.last_result
                    and t.trial_id not in adopted]
        if not finished:  # a new experiment (no trials/ folder yet), or nothing finished before
            return []
        try:
            res = read(self.experiment.uri)
            stored = {str(t) for df in (res.trials, res.confirm) if "trial_id" in df for t in df.trial_id}
        except UserError:  # the whole trials/ folder is gone
            stored = set()
        restored = []
        for trial in finished:
            if trial.trial_id in stored:
                continue
            rep = TrialReport.from_result(trial.last_result)
            status = "failed" if trial.status == "ERROR" else (rep.status if rep.final else "stopped")
            self._write(trial, rep, status, (rep.message + "; " if rep.message else "") +
                        "row restored from Tune's state after its file was lost (curve not restorable)", force=True)
            restored.append(trial.trial_id)
        if restored:
            print(f"restored the rows of {len(restored)} finished trial(s) whose files were missing or unreadable: "
                  f"{', '.join(restored)}", flush=True)
        return restored

    def find_orphans(self, trials) -> list[str]:
        """Rows of trials that Tune's restored state does not know: a driver killed after a trial was created
        and stored its row, but before Tune saved a snapshot naming it. The restored searcher draws that trial
        again under a new id; the first new trial with the same recipe and stage adopts the orphan row (one row
        per trial of the search) instead of storing a second one (:meth:`_write`)."""
        from nas_lth.errors import UserError
        from nas_lth.store import read

        try:
            res = read(self.experiment.uri)
        except UserError:
            return []
        ids = {t.trial_id for t in trials}
        # a row adopted by a trial Tune knows is that trial's; one adopted by a trial Tune forgot is an orphan again
        known = ids | {row for trial_id, row in self.load_adopted().items() if trial_id in ids}
        self.orphans = [r for df in (res.trials, res.confirm) if "trial_id" in df
                        for r in df.to_dict("records") if str(r["trial_id"]) not in known]
        return [str(r["trial_id"]) for r in self.orphans]

    def load_adopted(self) -> dict[str, str]:
        """``adopted/<trial id>.json`` files: the Tune trial whose row is an orphan's (written when it adopts, so
        that a resume knows it before Tune's callback state is restored)."""
        adopted = {}
        for f in self.experiment.join(ADOPTED).list(".json"):
            try:
                adopted[f.name.removesuffix(".json")] = str(json.loads(f.read_bytes())["row"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        self.adopted = adopted
        return adopted

    def _orphan_for(self, columns: dict) -> dict | None:
        """The first orphan row whose recipe and stage columns equal ``columns``. A value missing on either side
        matches: a stopped trial's row leaves out prune rates of layer kinds it did not report, a completed
        one's does not."""
        def same(a, b) -> bool:
            missing = (a is None or (isinstance(a, float) and math.isnan(a)),
                       b is None or (isinstance(b, float) and math.isnan(b)))
            return any(missing) or a == b

        for orphan in self.__dict__.get("orphans", []):
            if all(same(orphan.get(k), v) for k, v in columns.items()):
                return orphan
        return None

    # -- rows ----------------------------------------------------------------------------------
    def _write(self, trial, rep: TrialReport, status: str, message: str, force: bool = False) -> None:
        row = {k: rep.value(k) for k in TRIAL_COLUMNS if rep.value(k) is not None}
        if status == FAILED:  # a trial that raised has no result: no 0.0 (the report's default) stands for one
            row.pop("objective", None)
        columns = {**recipe_columns(self.space, trial.config, rep.layer_kinds), **unwrap(trial.config)[1]}
        row.update(experiment=self.name, trial_id=trial.trial_id, **columns)
        if not force and trial.trial_id in self.__dict__.get("adopted", {}):  # adopted a row before: it stands
            self.curves.pop(trial.trial_id, None)
            self.finished[trial.trial_id] = status
            return
        orphan = None if force or stored_row(self.experiment, trial.trial_id) else self._orphan_for(columns)
        if orphan is not None:  # this trial is an orphan's second draw: its row stands (find_orphans)
            self.orphans.remove(orphan)
            self.experiment.join(ADOPTED, f"{trial.trial_id}.json").write_bytes(
                json.dumps({"row": str(orphan["trial_id"])}).encode())
            self.__dict__.setdefault("adopted", {})[trial.trial_id] = str(orphan["trial_id"])
            self.finished[trial.trial_id] = str(orphan["status"])
            self.curves.pop(trial.trial_id, None)
            if not self.quiet:
                print(f"trial {trial.trial_id}: drawn again after a driver died; the row of trial "
                      f"{orphan['trial_id']} (same recipe, stored before Tune's last snapshot) stands for it",
                      flush=True)
            return
        if status == "stopped":
            row["epochs_trained"] = rep.fidelity
        row.update(status=status, message=message or rep.message or "",
                   wall_seconds=rep.metrics.get("time_total_s"), finished_at=time.time())
        curve = self.curves.pop(trial.trial_id, [])
        # a stored row is final (nas_lth.store.writer): a trial replayed after a resume keeps it, curve and all
        kept = write_trial(self.experiment, trial.trial_id, row, replace=force)
        if kept is not None:
            self.finished[trial.trial_id] = str(kept.get("status"))
            return
        write_curve(self.experiment, trial.trial_id,
                    [{"experiment": self.name, "trial_id": trial.trial_id, **c} for c in curve])
        self.finished[trial.trial_id] = status
        if not self.quiet:
            # a ladder's row is its answer: the round it is (its recipe's rounds are only the cap)
            self._print(row, self.space.spec.strategy.ladders, rep.round)

    def _print(self, row: dict, ladder: bool = False, ladder_round: int | None = None) -> None:
        def f(v, spec):
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

        wr = row.get("weights_remaining")
        stage = f"confirm of {row['confirm_of']} seed={row.get('seed')} " if row.get("stage") == "confirm" else ""
        rounds = f"round={'-' if ladder_round is None else ladder_round}" if ladder else f"rounds={row.get('rounds')}"
        print(f"[{time.monotonic() - self.t0:6.0f}s] trial {row['trial_id']} {row['status']:<9} {stage}"
              f"criterion={row.get('criterion')} stop_at={row.get('stop_at')} {rounds} "
              f"weights={f(None if wr is None else 100 * wr, '.2f')}% "
              f"{self.metric}={f(row.get(self.metric) if row['status'] != FAILED else None, '.4f')}"
              + (f"  ({row['message'][:80]})" if row.get("message") else ""), file=sys.stdout, flush=True)
