"""Reuse the result of a recipe that already ran to completion in the same experiment.

This also covers a trial that finished while its driver was killed (SIGKILL, a lost head node): Tune's
last experiment snapshot may not know it finished, so ``--resume`` starts it again, and it replays.

A recipe with its seed is deterministic on a given device kind, and a searcher over categorical
dimensions (TPE in particular) proposes the same configuration again and again. Training it again
would only reproduce the same numbers, so the trial replays the stored per-epoch reports - the
scheduler sees exactly what it saw the first time - and the final result, marked with its source.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from ray import tune

from nas_lth.experiment.trial_report import COMPLETED, REPLAY_MESSAGES, TrialReport
from nas_lth.recipe import Recipe
from nas_lth.store.fs import Location


class Memo:
    def __init__(self, experiment: Location, recipe: Recipe, device, trial_id: str, metric: str = "val_acc",
                 required: tuple[str, ...] = ()):
        self.trial_id, self.metric, self.required = trial_id, metric, required
        blob = json.dumps([recipe.model_dump(mode="json"), str(getattr(device, "type", device))],
                          sort_keys=True).encode()
        self.key = hashlib.sha256(blob).hexdigest()[:24]
        self.path = experiment.join("memo", f"{self.key}.json")
        self.reports: list[dict] = []

    def record(self, rep: TrialReport, evals: list[dict]) -> None:
        """Called with every report of the trial (and all its evaluations so far); stores the final
        one with the epoch reports and the curve."""
        if rep.final:
            if rep.status == COMPLETED:
                final = {k: v for k, v in replace(rep, evals=[]).to_tune().items() if not isinstance(v, list | dict)}
                self.path.write_bytes(json.dumps({"trial_id": self.trial_id, "reports": self.reports,
                                                  "final": final, "evals": evals,
                                                  "round_rows": rep.round_rows}).encode())
        elif rep.fidelity > 0:
            self.reports.append({"fidelity": rep.fidelity, "objective": rep.objective, "round": rep.round,
                                 "weights_remaining": rep.weights_remaining, "status": rep.status})

    def replay(self, base: TrialReport, before_final=None) -> bool:
        """Replay the stored reports; ``before_final(source_trial_id)`` runs before the final one (the
        trial's stored files must exist when its row appears)."""
        if not self.path.exists():
            return False
        stored = json.loads(self.path.read_bytes())
        # The source trial's curve, so every trial has one; sent whole (replacing) with every report
        # because Tune may fold results that arrive this fast into the last one.
        evals = stored.get("evals", [])
        source = stored["trial_id"]
        for rep in stored["reports"]:  # marked as replayed: the searcher must not learn them twice
            tune.report(replace(base, **rep, evals=evals, evals_reset=True, cached_from=source)
                        .to_tune(self.metric, self.required))
        final = TrialReport.from_result(stored["final"])
        if before_final is not None:
            before_final(source)
        # another trial's result cost this one nothing; its own (finished before the driver stopped) cost what it did
        own = source == self.trial_id
        trained = (final.iterations_trained or 0, final.trajectory_iterations_trained or 0) if own else (0, 0)
        shared = (final.shared_iterations or 0) + (0 if own else (final.iterations_trained or 0))
        message = (f"{REPLAY_MESSAGES[0]} {source}: result reused, nothing trained" if source != self.trial_id
                   else f"{REPLAY_MESSAGES[1]}: stored result replayed, nothing trained")
        # a ladder's rounds (fidelity: rounds): its own again (written once), or another trial's, marked reused
        rounds = [{**r, "reused": r.get("reused") or source != self.trial_id} for r in stored.get("round_rows", [])]
        tune.report(replace(
            final, trial_id=base.trial_id, node=base.node, device=base.device, torch_threads=base.torch_threads,
            torch_version=base.torch_version, restores=base.restores, evals=evals, evals_reset=True,
            iterations_trained=trained[0], trajectory_iterations_trained=trained[1], shared_iterations=shared,
            message=message,
            cached_from=source, round_rows=rounds).to_tune(self.metric, self.required))
        return True
