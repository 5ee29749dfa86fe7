"""Multi-objective asynchronous successive halving, as a Ray Tune scheduler.

ASHA (Li et al. 2020) with the promotion rule of Schmucker et al. 2021 ("Multi-objective multi-fidelity
hyperparameter optimization"): rungs at ``grace_period * reduction_factor**k`` epochs (up to ``max_t``); when a
trial reaches a rung its objective vector there is recorded, the rung's recorded vectors are ordered by
non-dominated sorting (ties within a front broken by NSGA-II's crowding distance, larger first), and the trial
goes on when it is among the best ``ceil(n / reduction_factor)`` of the ``n`` recorded so far (the same share as
Ray's single-objective ASHA, whose cutoff is the ``1 - 1/rf`` percentile); otherwise it stops. Asynchronous
like ASHA: an early trial is judged against the few recorded before it.

Objectives that do not change with training are known at every rung: a ticket's weights remaining is fixed
once its final run starts, and the measured run is the one ASHA's fidelity counts. An objective a result does
not carry (one recorded only at the end, like ``mask_iter``) is left out of the rung's comparison.

With ``constraints`` (``strategy.constraints``), every ticket of a rung that meets them ranks above every one that
does not (Deb's constrained domination: the feasible ones by the order above, the others by their total
violation, smaller first); a ticket whose feasibility a result cannot tell yet (the dense network's value not
known) counts as feasible.

Each decision is appended to ``log_path`` (JSON lines: rung, trial, vector, its place, the count), so a reader
can see why a trial stopped; the tests recompute every decision from it.
"""

from __future__ import annotations

import json
import math

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nas_lth.store.constraints import total_violation
from nas_lth.store.pareto import ranking


class MultiObjectiveASHA(FIFOScheduler):
    def __init__(self, objectives: list[tuple[str, str]], time_attr: str = "fidelity", max_t: float = 100,
                 grace_period: float = 1, reduction_factor: float = 3, log_path: str | None = None,
                 constraints: list[dict] | None = None):
        super().__init__()
        self.objectives = list(objectives)  # (result key, "max" | "min")
        self.constraints = list(constraints or [])
        self.violation: dict[float, dict[str, float | None]] = {}
        self.time_attr, self.rf = time_attr, reduction_factor
        n = max(1, int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1e-9) + 1)
        self.rungs = [grace_period * reduction_factor ** k for k in reversed(range(n))]  # largest first
        self.recorded: dict[float, dict[str, list[float]]] = {r: {} for r in self.rungs}
        self.log_path = log_path
        self.num_stopped = 0

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives come with the constructor

    def _vector(self, result: dict) -> list[float] | None:
        out = []
        for key, mode in self.objectives:
            v = result.get(key)
            if v is None or not isinstance(v, int | float) or not math.isfinite(v):
                out.append(float("nan"))
            else:
                out.append(-float(v) if mode == "max" else float(v))
        return out

    def decide(self, trial_id: str, t: float, result: dict) -> str:
        """The rung decision for one result (the Tune hook's logic, without Tune objects)."""
        for rung in self.rungs:
            if t < rung or trial_id in self.recorded[rung]:
                continue
            self.recorded[rung][trial_id] = self._vector(result)
            cons = getattr(self, "constraints", [])  # a scheduler restored from before constraints has none
            viol = self.__dict__.setdefault("violation", {}).setdefault(rung, {})
            viol[trial_id] = total_violation(cons, result) if cons else None
            ids = list(self.recorded[rung])
            order = rung_order(np.array([self.recorded[rung][i] for i in ids], dtype=float), [viol.get(i) for i in ids])
            place = int(np.flatnonzero(order == ids.index(trial_id))[0])
            keep = math.ceil(len(ids) / self.rf)
            action = TrialScheduler.CONTINUE if place < keep else TrialScheduler.STOP
            rec = {"rung": rung, "trial_id": trial_id, "vector": self.recorded[rung][trial_id],
                   "place": place, "recorded": len(ids), "keep": keep, "action": action,
                   "rung_state": {i: self.recorded[rung][i] for i in ids}}
            if cons:
                rec["rung_violation"] = {i: viol.get(i) for i in ids}
            self._log(rec)
            return action
        return TrialScheduler.CONTINUE

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        t = result.get(self.time_attr)
        if not t or result.get("final") or result.get("cached_from"):
            return TrialScheduler.CONTINUE  # earlier rounds (fidelity 0), final results, replays
        action = self.decide(trial.trial_id, float(t), result)
        self.num_stopped += action == TrialScheduler.STOP
        return action

    def _log(self, rec: dict) -> None:
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def debug_string(self) -> str:
        return f"Using multi-objective ASHA: num_stopped={self.num_stopped}, rungs={self.rungs}"


def rung_order(pts: np.ndarray, violations: list[float | None]) -> np.ndarray:
    """Indices of a rung's recorded results from best to worst: the feasible ones (violation 0 or unknown) by
    non-dominated sorting and crowding over the objectives every result carries, then the infeasible ones by
    their total violation."""
    known = ~np.isnan(pts).any(axis=0)  # objectives every recorded result carries
    ok = [i for i, v in enumerate(violations) if not v]
    bad = sorted((i for i, v in enumerate(violations) if v), key=lambda i: (violations[i], i))
    sub = pts[np.ix_(ok, np.flatnonzero(known))] if ok else np.empty((0, 0))
    first = [ok[j] for j in ranking(sub)] if ok and known.any() else ok
    return np.array(first + bad, dtype=int)

