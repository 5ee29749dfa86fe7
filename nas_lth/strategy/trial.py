"""One Tune trial = one ticket recipe, run by the estimation part: :class:`Trial` owns what the
trainable holds while it runs (pending curve records, the last validation value, checkpoint clock,
shared-trajectory accounting), and reports :class:`~nas_lth.experiment.trial_report.TrialReport`s.

Reports once per epoch of the measured (final) training run - the fidelity ASHA promotes - with a
checkpoint each time, so a retried or resumed trial continues from its last epoch. Earlier rounds
checkpoint at the end of each run and at least every ``CHECKPOINT_EVERY_S`` seconds.
"""

from __future__ import annotations

import copy
import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import ray
import torch
from ray import tune

from nas_lth import plugins
from nas_lth.data import load_dataset
from nas_lth.device import pick_device
from nas_lth.errors import UserError
from nas_lth.estimation import TicketRun
from nas_lth.estimation.train import Diverged
from nas_lth.estimation.trajectory import compute_trajectory
from nas_lth.experiment.broker import NAMESPACE, broker_name, get_trajectory
from nas_lth.experiment.checkpoints import STATE_FILE
from nas_lth.experiment.memo import Memo
from nas_lth.experiment.prefixes import ExperimentPrefixes
from nas_lth.experiment.stage import unwrap
from nas_lth.experiment.tickets import copy_ticket, store_ticket
from nas_lth.experiment.trial_report import COMPLETED, DIVERGED, FAILED, STOPPED, TrialReport, finite_or_zero
from nas_lth.export.latency import DEFAULT_FORMS, example_batch, measure_latency
from nas_lth.pruning import density
from nas_lth.recipe import Recipe
from nas_lth.space.schema import SearchSpace, build_recipe
from nas_lth.store.constraints import total_violation
from nas_lth.store.fs import locate
from nas_lth.store.schema import ROUND_COLUMNS
from nas_lth.store.writer import stored_row
from nas_lth.strategy.plan import plan_key, snapshot_plan
from nas_lth.terms import DENSE_OF

CHECKPOINT_EVERY_S = 30.0
_DATA: dict[tuple, object] = {}  # per worker process: trials reusing an actor skip reloading
PLAN_KEYS = ("stop_at", "rewind_to", "eb_every")  # what the shared trajectory must be able to serve


def halvings(weights_remaining: float) -> float:
    """A ladder's position for the scheduler: how many times its weights were halved (1 = 50 %, 3 = 12.5 %)."""
    return -math.log2(max(float(weights_remaining), 1e-12))


def sparsest_within(tickets: list[tuple[float, float]], dense: float, within: float) -> float:
    """The ``sparsest_within`` objective of (weights remaining, validation metric) tickets: -log10 of the
    fewest weights among those within ``within`` of ``dense`` (>= 0: a tenth of the weights scores 1); with
    none within, the best ticket's shortfall below the bound (< 0), so every ticket within ranks higher."""
    bound = dense - within
    ok = [w for w, v in tickets if v >= bound]
    if ok:
        return -math.log10(max(min(ok), 1e-12))
    return max((v for _, v in tickets), default=0.0) - bound


def objective_metric(multilabel: bool) -> str:
    return "val_micro_f1" if multilabel else "val_acc"


@dataclass(frozen=True)
class TrialSpec:
    """What the driver hands every trial: the space's fixed recipe keys (validated once, on the
    driver), the values of the keys the shared trajectory depends on, and where to run."""

    name: str
    experiment: str
    source: str  # the space file, for error messages
    fixed: dict
    plan_values: dict = field(default_factory=dict)  # key -> every value it can take (None: a range)
    data_dir: str | None = None
    device: str = "auto"
    threads: int = 1
    checkpoint_every_s: float = 0.0
    metric: str | None = None  # the validation metric the search maximises (None: the dataset's default)
    required: tuple[str, ...] = ()  # result keys every report carries (a multi-objective searcher's metrics)
    latency: dict | None = None  # {"batch_size", "forms"} of a latency_ms objective: the trial times its ticket
    plugins: tuple[str, ...] = ()  # the space's plugins: imported before the recipe is read (a fresh worker)
    ladder_floor: float | None = None  # fidelity: rounds: a trial is a pruning ladder down to this sparsity
    sparsest_within: float | None = None  # the objective: the sparsest ticket within this of the dense metric
    share_rounds: bool = True  # a ladder continues from round prefixes other ladders stored
    constraints: tuple[dict, ...] = ()  # strategy.constraints: a ladder answers with its sparsest round meeting them

    @classmethod
    def from_space(cls, space: SearchSpace, **kw) -> TrialSpec:
        lat = space.spec.strategy.latency
        latency = None if lat is None else {"batch_size": lat.batch_size, "forms": list(lat.forms or DEFAULT_FORMS)}
        return cls(source=space.source, fixed=copy.deepcopy(space.spec.fixed),
                   plan_values={k: space.values_of(k) for k in PLAN_KEYS}, latency=latency,
                   plugins=tuple(space.spec.plugins), ladder_floor=space.spec.strategy.min_weights,
                   sparsest_within=space.spec.strategy.sparsest_within,
                   share_rounds=space.spec.strategy.share_rounds,
                   constraints=tuple(space.spec.strategy.constraint_dicts),
                   **kw)

    @property
    def ladder(self) -> bool:
        return self.ladder_floor is not None

    def recipe(self, config: dict) -> Recipe:
        return build_recipe(self.fixed, unwrap(config)[0], self.source)


def _dataset(recipe: Recipe, data_dir, device):
    opts = recipe.dataset_options or None
    key = (recipe.dataset, repr(sorted((opts or {}).items())), data_dir, recipe.seed, recipe.val_size, str(device))
    if key not in _DATA:
        if len(_DATA) >= 4:
            _DATA.clear()
        _DATA[key] = load_dataset(recipe.dataset, data_dir, seed=recipe.seed, val_size=recipe.val_size,
                                  device=device, options=opts)
    return _DATA[key]


def covered(run: TicketRun, iters: set[int], grids: set[int]) -> bool:
    """Whether a trajectory with this plan holds every snapshot this recipe needs."""
    def held(i: int) -> bool:
        return i in iters or any(i % g == 0 for g in grids)

    if run.stop_iter is None:
        if run.eb_every not in grids:
            return False
    elif not held(run.stop_iter):
        return False
    return run.recipe.rewind_to == 0 or held(run.recipe.rewind_to)


class Trial:
    def __init__(self, spec: TrialSpec, config: dict):
        self.spec, self.config = spec, config
        self.t_start = time.perf_counter()
        # results depend on the thread count (reduction order): fixed per trial from its resources, recorded
        torch.set_num_threads(max(1, spec.threads))
        self.base = TrialReport(trial_id=tune.get_context().get_trial_id(), node=socket.gethostname(),
                                torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
        self.loc = locate(spec.experiment)
        self.pending: list[dict] = []  # evaluation records not yet sent
        self.reported: list[dict] = []  # sent in earlier reports (kept in the checkpoint)
        # the first report of every attempt replaces what the driver holds for this trial: an attempt
        # that starts over (no checkpoint yet) replays evaluations the driver may already have
        self.reset = True
        self.last_ckpt, self.last_val = time.monotonic(), 0.0
        self.computed = self.shared = 0  # dense-trajectory iterations trained for everyone / reused
        self.metric = "val_acc"
        self.data = None
        self.latency: dict = {}  # the ticket's measured latency (latency_ms objective), once its mask is final
        self.level = 0.0  # a ladder's resource: halvings of the weights at its last finished round
        self.round_row: dict | None = None  # a ladder's finished round, not yet reported
        # a ladder's answer so far: the round its objective names (the last, the sparsest within the bound or meeting
        # the constraints), with that round's masks and ticket weights - what the trials row and the stored ticket
        # are at the end
        self.answer: dict | None = None

    # -- reporting -----------------------------------------------------------------------------
    def report(self, rep: TrialReport, state: dict | None = None) -> None:
        rep = replace(rep, evals=self.reported + self.pending if self.reset else list(self.pending),
                      evals_reset=self.reset)
        self.memo.record(rep, self.reported + self.pending)
        self.reported.extend(self.pending)
        self.pending.clear()
        self.reset = False
        payload = rep.to_tune(self.metric, self.spec.required)
        if state is None:
            tune.report(payload)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save({"ticket": state, "evals": list(self.reported), "restores": self.base.restores,
                        "computed": self.computed, "shared": self.shared, "answer": self.answer},
                       os.path.join(d, STATE_FILE))
            tune.report(payload, checkpoint=tune.Checkpoint.from_directory(d))
        self.last_ckpt = time.monotonic()

    def on_eval(self, rnd: int, run_name: str, rec: dict) -> None:
        self.pending.append({"round": rnd, "run": run_name, **rec})
        # a ladder's value is its last finished round's (on_round), not the one training now
        if not self.spec.ladder and self.metric in rec and math.isfinite(rec[self.metric]):
            self.last_val = rec[self.metric]

    def on_round(self, row) -> None:
        """A ladder's round is done (its evaluated ticket): the next report carries it as a rounds/ row, and the
        scheduler's resource becomes its level of weights remaining (halvings)."""
        if row.control:
            return
        self.level = halvings(row.weights_remaining)
        self.last_val = finite_or_zero(row.metrics.get(self.metric)) if row.status == COMPLETED else 0.0
        self.round_row = self._round_row(row)
        if row.round >= 1 and row.status == COMPLETED and self._answers(row):
            run = self.run_
            self.answer = {"round": row.round, "masks": {n: m.detach().cpu().clone() for n, m in run.masks.items()},
                           "weights": {k: {n: t.detach().cpu().clone() for n, t in st.items()}
                                       for k, st in (run.final_weights or {}).items()}}

    def _answers(self, row) -> bool:
        """Whether a ladder's finished round is its answer so far: every round is (the objective is the last
        round's metric), with sparsest_within a round within the bound, with constraints (multi-objective) a
        round that meets them (later rounds are sparser)."""
        within = self.spec.sparsest_within
        if within is None and self.spec.constraints:
            return total_violation(list(self.spec.constraints), {**row.metrics, **self._dense_known()}) == 0.0
        if within is None:
            return True
        value, ref = row.metrics.get(self.metric), self._dense_metrics().get(self.metric)
        return value is not None and ref is not None and value >= ref - within

    def _round_row(self, row) -> dict:
        rec = row.record()
        out = {k: rec.get(k) for k in ROUND_COLUMNS if k in rec}
        # round 0 served by the shared dense trajectory another trial trained, a later round by a stored prefix
        reused = (row.round == 0 and self.shared > 0) or row.round in self.run_.reused_rounds
        out.update(experiment=self.spec.name, iterations_trained=row.iterations, reused=reused)
        return out

    def _trained(self, state: dict, tr=None) -> dict:
        """A report's training accounting: what this trial trained (the dense run it computed for everyone
        included), and what it reused (the shared dense run, other ladders' round prefixes)."""
        reused = int(state.get("reused_iterations", 0))
        return {"iterations_trained": state["cumulative"] - reused + self.computed
                + (tr.iteration if tr is not None else 0),
                "trajectory_iterations_trained": self.computed, "shared_iterations": self.shared + reused}

    def _ladder_checkpoint(self, state: dict, info) -> None:
        """A ladder reports after every round (with the round's row and a checkpoint) and, within a round, at
        most every CHECKPOINT_EVERY_S with the last finished round's level and value (the scheduler has judged
        that level already)."""
        tr, run = info.trainer, self.run_
        if tr is None and (run.at_floor(info.round) or info.round >= run.recipe.rounds):
            return  # the ladder's last round: the final report carries it (a scheduler never stops a ladder there)
        if tr is not None and time.monotonic() - self.last_ckpt < max(CHECKPOINT_EVERY_S,
                                                                        self.spec.checkpoint_every_s):
            return
        row, self.round_row = self.round_row, None
        self.report(replace(
            self.base, objective=self.last_val, fidelity=self.level, round=info.round,
            weights_remaining=density(state["masks"]), round_rows=[row] if row else [], **self._trained(state, tr),
            metrics=self._dense_known()), state)

    def on_checkpoint(self, state: dict, info) -> None:
        if self.spec.ladder:
            return self._ladder_checkpoint(state, info)
        tr, run = info.trainer, self.run_
        since = time.monotonic() - self.last_ckpt
        if tr is not None and info.final:
            if tr.iteration >= run.budget_iters:
                return  # the final report follows, with test metrics
            fidelity, keep = tr.iteration / run.ipe, since >= self.spec.checkpoint_every_s
            self._measure_latency(tr.model)  # the final run's mask is the ticket's: known at every rung
        else:
            if tr is not None and since < max(CHECKPOINT_EVERY_S, self.spec.checkpoint_every_s):
                return
            fidelity, keep = 0.0, True
        self.report(replace(
            self.base, objective=self.last_val, fidelity=fidelity, round=info.round,
            weights_remaining=density(state["masks"]), **self._trained(state, tr),
            metrics={**self._dense_known(), **(self.latency if info.final else {})}),
            state if keep else None)

    def _dense_metrics(self) -> dict:
        """The dense network's metrics once known (from the shared trajectory or this run's round 0), else {}."""
        run = getattr(self, "run_", None)
        if run is None:
            return {}
        if run.trajectory is not None:
            return run.trajectory.metrics
        return next((r.metrics for r in run.rows if r.round == 0), {})

    def _dense_known(self) -> dict:
        """The dense network's validation metrics as ``dense_<metric>``: every report carries them once known, so a
        constraint relative to the dense network (``min_vs_dense``) can be judged at a scheduler's rung."""
        dense = self._dense_metrics()
        return {col: dense[k] for k, col in DENSE_OF.items() if dense.get(k) is not None}

    def _measure_latency(self, model) -> None:
        """Time the ticket's forward pass (``nas_lth.export.latency``) once per attempt, on the trial's device
        and threads. Latency depends on the architecture and the mask, not on the weights' values, so the
        final run's model at any epoch is timed as its trained ticket would be."""
        lat = self.spec.latency
        if lat is None or self.latency or self.data is None:
            return
        x = example_batch(self.data.test.x, lat["batch_size"])
        self.latency = measure_latency(model, x, forms=lat["forms"])

    # -- the trial -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            plugins.load(self.spec.plugins, where=f"{self.spec.source}: plugins")  # no-op where the hook did it
            recipe = self.spec.recipe(self.config)
            dev = pick_device("cuda" if self.spec.device == "auto" and ray.get_gpu_ids() else
                              ("cpu" if self.spec.device == "auto" else self.spec.device))
            data = _dataset(recipe, self.spec.data_dir, dev)
        except UserError as exc:  # a bad recipe fails the same way on every retry: record it, go on
            tune.report(replace(self.base, status=FAILED, final=True, message=str(exc))
                        .to_tune(self.metric, self.spec.required))
            return
        self.metric = self.spec.metric or objective_metric(data.multilabel)
        self.data = data
        self.base = replace(self.base, device=str(dev))
        resume = self._restore()
        self.memo = Memo(self.loc, recipe, dev, self.base.trial_id, self.metric, self.spec.required)
        if self._replay_stored_row():
            return
        # The same recipe already ran to completion in this experiment (another trial, or this one
        # before its driver died: Tune's last snapshot may still show it running): replay, never retrain.
        if self.memo.replay(self.base, lambda source: copy_ticket(self.loc, source, self.base.trial_id)):
            return
        ladder = self.spec.ladder
        self.run_ = run = TicketRun(recipe, data, device=dev, on_eval=self.on_eval, eval_at_epoch_end=True,
                                    floor=self.spec.ladder_floor, on_round=self.on_round if ladder else None,
                                    prefixes=ExperimentPrefixes(self.loc, recipe, dev)
                                    if ladder and self.spec.share_rounds else None)
        self.base = replace(self.base, layer_kinds=",".join(sorted(set(run.kinds.values()))),
                            iterations_per_epoch=run.ipe)
        run.on_checkpoint = self.on_checkpoint
        traj_key = None
        if resume is None or resume["round"] == 0:
            traj_key = self._attach_trajectory(run, recipe, data, dev)
            if traj_key is False:
                return
            # every report names the dense run it shares: a stopped trial's row too (the report reads that run's
            # test metrics from the rows that share it)
            self.base = replace(self.base, trajectory_key=traj_key)
        self._final(run, run.run(resume=resume), data, traj_key)

    def _replay_stored_row(self) -> bool:
        """A trial whose row is stored already ended under an earlier driver that died before Tune saved
        that (Tune starts it again on --resume): report the stored outcome, train nothing, so the row is
        written once. Completed trials replay through the memo (with their epoch reports); failed ones
        run again, as ``--resume`` re-runs errored trials by design."""
        row = stored_row(self.loc, self.base.trial_id)
        if row is None or row.get("status") not in (STOPPED, DIVERGED):
            return False
        final = row["status"] == DIVERGED
        tune.report(replace(
            self.base, status=row["status"] if final else self.base.status, final=final,
            fidelity=float(row.get("epochs_trained") or 0.0), objective=finite_or_zero(row.get("objective")),
            weights_remaining=row.get("weights_remaining"), cached_from=self.base.trial_id,
            message="ended before the driver stopped: stored row kept, nothing trained")
            .to_tune(self.metric, self.spec.required))
        return True

    def _restore(self) -> dict | None:
        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        try:
            with ckpt.as_directory() as d:  # a retry after a fault, or a resumed experiment
                saved = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a copy cut short by a killed driver: start over, not fail
            print(f"trial {self.base.trial_id}: checkpoint unreadable ({type(exc).__name__}); starts over",
                  flush=True)
            return None
        self.reported = list(saved["evals"])
        # the dense run this trial trained for everyone (or reused) before the fault still counts as it did
        self.computed, self.shared = int(saved.get("computed", 0)), int(saved.get("shared", 0))
        self.answer = saved.get("answer")
        self.base = replace(self.base, restores=int(saved.get("restores", 0)) + 1)
        return saved["ticket"]

    def _attach_trajectory(self, run: TicketRun, recipe: Recipe, data, dev):
        """Serve round 0 from the shared dense trajectory (its key), None when this recipe needs
        snapshots the plan lacks, False when the dense network diverged (reported)."""
        iters, grids = snapshot_plan(self.spec.plan_values, recipe, run.ipe)
        if not covered(run, iters, grids):
            return None
        key = plan_key(recipe, iters, grids)
        broker = ray.get_actor(broker_name(self.spec.name), namespace=NAMESPACE)

        def compute(beat):
            return compute_trajectory(recipe, data, snapshot_iters=iters, device=dev, grids=grids, key=key,
                                      on_eval=lambda _r: beat())

        try:
            run.trajectory, computed_here = get_trajectory(key, self.loc, self.base.trial_id, broker, compute)
        except Diverged as exc:  # the dense net itself diverged: a result of the recipe, not a fault
            self.report(replace(self.base, status=DIVERGED, final=True, fidelity=float(recipe.budget),
                                message=f"dense network: {exc}", round=0, weights_remaining=1.0))
            return False
        if computed_here:  # this trial trained the dense net for everyone: its curve goes with it
            self.computed = run.trajectory.iterations
            self.pending[:0] = [{"round": 0, "run": "dense", **rec} for rec in run.trajectory.curve]
        elif not self.computed:  # (a trial restored after computing it keeps its credit, not also a reuse)
            self.shared = run.trajectory.iterations
        return key

    def _final(self, run: TicketRun, rows: list, data, traj_key: str | None) -> None:
        recipe = run.recipe
        own = [r for r in rows if r.variant in (recipe.reinit, "dense")]
        final = own if self.spec.ladder else [r for r in own if r.round == recipe.rounds]  # a ladder: its last
        row = final[-1] if final else rows[-1]
        diverged = ""
        if self.spec.ladder and row.status != COMPLETED:
            done = [r for r in own if r.round >= 1 and r.status == COMPLETED]
            if done:  # a ladder that diverged at round r ends at r - 1, as at a floor: its rounds before r are results
                diverged = (f"diverged at round {row.round} ({row.weights_remaining:.2%} of the weights; "
                            f"{row.message or 'non-finite loss'}): the ladder ends at round {done[-1].round}")
                row = done[-1]
        rec = row.record()
        value = finite_or_zero(rec.get(self.metric)) if row.status == COMPLETED else 0.0
        dense = next((r for r in rows if r.round == 0), None)
        if dense is None and run.trajectory is not None:
            dense_metrics, dense_early_stop = run.trajectory.metrics, run.trajectory.early_stop_iter
        elif dense is not None:
            dense_metrics, dense_early_stop = dense.metrics, dense.early_stop_iter
        else:
            dense_metrics, dense_early_stop = {}, None
        within, dense_value = self.spec.sparsest_within, dense_metrics.get(self.metric)
        if within is not None and dense_value is not None and row.status == COMPLETED:
            done = [r for r in own if r.round >= 1 and r.status == COMPLETED] if self.spec.ladder else [row]
            value = sparsest_within([(r.weights_remaining, finite_or_zero(r.metrics.get(self.metric)))
                                     for r in done], float(dense_value), within)
        ticket = {}
        if self.spec.ladder and self.answer is not None and row.status == COMPLETED:
            # the ladder's answer (the sparsest round within the bound, or meeting the constraints) is its row and
            # its ticket, not its last round
            answer = next((r for r in own if r.round == self.answer["round"]), None)
            if answer is not None:
                row, rec = answer, answer.record()
                ticket = {"masks": self.answer["masks"], "weights": self.answer["weights"]}
                if within is None:  # the objective is the answer's metric (sparsest_within scored every round)
                    value = finite_or_zero(rec.get(self.metric))
        message = rec.pop("message", "") or diverged
        if diverged and not ticket:  # the run's weights are the diverged round's now: no ticket to store
            message += "; no ticket stored (no round within the bound)"
        elif row.status == COMPLETED and run.final_weights:
            try:
                store_ticket(self.loc, run, data, row, self.base.trial_id, experiment_name=self.spec.name, **ticket,
                             plugins=self.spec.plugins)
            except OSError as exc:  # storage trouble costs the ticket file, not the trial's measured result
                message = f"ticket not stored: {exc}"
        for k in ("round", "weights_remaining", "status"):
            rec.pop(k, None)
        if row.status == COMPLETED and not diverged:
            self._measure_latency(run.model)
        metrics = {**rec, **self.latency, "epochs_trained": row.iterations / run.ipe,
                   "dense_early_stop_iter": dense_early_stop,
                   "dense_objective": dense_metrics.get(self.metric),
                   "trial_wall_seconds": time.perf_counter() - self.t_start,
                   **{f"dense_{k}": dense_metrics.get(k) for k in ("val_acc", "test_acc", "val_micro_f1",
                                                                   "test_micro_f1")}}
        self.report(replace(
            self.base, status=row.status, final=True, objective=value,
            round_rows=[self._round_row(r) for r in own] if self.spec.ladder else [],
            fidelity=halvings(row.weights_remaining) if self.spec.ladder else float(recipe.budget),
            round=row.round, weights_remaining=row.weights_remaining, message=message,
            **self._trained({"cumulative": run.cumulative, "reused_iterations": run.reused_iterations}),
            trajectory_key=traj_key, metrics=metrics))
