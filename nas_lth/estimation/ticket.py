"""The ticket procedure (Frankle & Carbin 2019, generalised as in DESIGN.md):

    round 0: train the dense net from theta_0; keep theta_k (rewind point) and the weights at the
             stopping point (an iteration, an epoch fraction, the end, or the Early-Bird point).
    round r: score the surviving weights (criterion), prune ``prune_rate`` of them, reset the kept
             weights (rewind to theta_k; reinit variant for the evaluated ticket), train again - from
             iteration k to the budget on the dense run's clock, data order and learning-rate
             schedule resumed at k (late resetting as in Frankle et al. 2019/2020 and OpenLTH).

A round that starts at k cannot stop before k: with ``stop_at`` earlier than ``rewind_to`` the
next mask is chosen at k, the round's first weights, and ``mask_iter`` says so.

A round's training serves twice: its metrics rate the round's ticket and its weights at the stopping
point select the next mask. Rounds that are not evaluated (``eval_rounds: last``) train only up to
the stopping point, which is where early tickets save compute. Masks always come from the
``original`` trajectory, so a reinit variant is a control of the *same* masks (as in the LTH paper).

Round 0 can come from a shared :class:`~nas_lth.estimation.trajectory.DenseTrajectory`. The run can
be checkpointed at every epoch end and resumed from such a state (``run(resume=state)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from nas_lth import pruning
from nas_lth.data.base import Dataset
from nas_lth.estimation.recipe import Recipe
from nas_lth.estimation.train import Diverged, State, Trainer, clone_state, epoch_permutation
from nas_lth.estimation.trajectory import DenseTrajectory
from nas_lth.models import build_model, masked_layers, set_masks
from nas_lth.pruning import context as ctx

Masks = dict[str, torch.Tensor]


@dataclass
class RoundResult:
    round: int
    variant: str  # "dense", or the reinit variant the ticket was trained from
    control: bool  # True for a reinit control that is not the recipe's own variant
    weights_remaining: float
    mask_digest: str
    mask_iter: int | None  # iteration of the previous run at which this ticket's mask was chosen
    early_bird_drawn: bool | None
    status: str  # completed | diverged
    message: str = ""
    iterations: int = 0  # trained in this round's run
    cumulative_iterations: int = 0  # trained by this procedure when the row was finished
    early_stop_iter: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0

    def record(self) -> dict:
        """Flat row without the curve (CLI --json, Parquet)."""
        d = asdict(self)
        d.pop("curve")
        d.update(d.pop("metrics"))
        return d


@dataclass
class CheckpointInfo:
    round: int
    run: str  # "dense", "traj" (trajectory only) or a reinit variant
    trainer: Trainer | None  # the run in progress (None between runs)
    final: bool  # the evaluated run of the last round: the one the search's fidelity counts


RoundHook = Callable[[RoundResult], None]
EvalHook = Callable[[int, str, dict], None]  # (round, run, eval record)
CheckpointHook = Callable[[dict, CheckpointInfo], None]


@dataclass
class _Stop:
    """Where a trajectory run stopped: the weights that select the next mask."""

    state: State | None = None
    iteration: int | None = None
    eb_drawn: bool | None = None


class _Halt(Exception):
    """A training run diverged: later rounds cannot be computed."""


class TicketRun:
    def __init__(
        self,
        recipe: Recipe,
        data: Dataset,
        *,
        device: torch.device | str = "cpu",
        controls: tuple[str, ...] = (),
        trajectory: DenseTrajectory | None = None,
        on_round: RoundHook | None = None,
        on_eval: EvalHook | None = None,
        on_checkpoint: CheckpointHook | None = None,
        eval_at_epoch_end: bool = False,
    ):
        self.recipe = rc = recipe
        self.data = data
        self.device = torch.device(device)
        self.variants = list(dict.fromkeys([rc.reinit, *controls]))
        self.trajectory = trajectory
        self.on_round, self.on_eval, self.on_checkpoint = on_round, on_eval, on_checkpoint
        self.eval_at_epoch_end = eval_at_epoch_end
        self.model = build_model(rc.model, data.input_shape, data.num_classes, seed=rc.seed,
                                 options=rc.model_options, meta=data.meta).to(self.device)
        self.kinds = {n: m.kind for n, m in masked_layers(self.model)}
        self.rates = pruning.layer_rates(self.kinds, rc.effective_prune_rate())
        self.criterion = pruning.get_criterion(rc.criterion)
        self.ipe = rc.iterations_per_epoch(len(data.train))
        self.budget_iters = max(1, int(round(rc.budget * self.ipe)))
        self.stop_iter = rc.stop.iteration(self.ipe, self.budget_iters)
        self.eb_every = rc.eb_check_every(len(data.train))
        rc.check_budget(len(data.train))
        # progress (everything a checkpoint holds)
        self.generator = torch.Generator().manual_seed(rc.seed)
        self.theta0: State = clone_state(self.model)
        self.theta_k: State | None = None
        self.round = 0
        self.masks: Masks = {n: m.mask.detach().clone() for n, m in masked_layers(self.model)}
        self.masks_ready = True  # round 0 is dense
        self.runs_done: list[str] = []
        self.prev_stop = _Stop()  # from round - 1: selects this round's masks
        self.next_stop = _Stop()  # from this round: selects the next round's masks
        self.cumulative = 0
        self.rows: list[RoundResult] = []
        self._pending: dict | None = None  # a run interrupted mid-way (resume)
        # the recipe's own ticket after its evaluated last run (what an export writes): weights at the
        # end of training and at the early-stop iteration, on the CPU; None until that run completes
        self.final_weights: dict[str, State] | None = None

    # -- checkpoint ----------------------------------------------------------------------------
    def state_dict(self, pending: dict | None = None) -> dict:
        return {
            "version": 1, "round": self.round, "masks": self.masks, "masks_ready": self.masks_ready,
            "runs_done": list(self.runs_done), "prev_stop": asdict(self.prev_stop),
            "next_stop": asdict(self.next_stop), "cumulative": self.cumulative,
            "rows": [asdict(r) for r in self.rows], "theta_k": self.theta_k,
            "generator": self.generator.get_state(), "pending": pending,
            "final_weights": self.final_weights,
        }

    def load_state_dict(self, st: dict) -> None:
        # checkpoints are loaded on the CPU; the generator state must stay there
        st = {**_to_device({k: v for k, v in st.items() if k != "generator"}, self.device),
              "generator": st["generator"]}
        self.round, self.masks, self.masks_ready = st["round"], st["masks"], st["masks_ready"]
        self.runs_done = list(st["runs_done"])
        self.prev_stop, self.next_stop = _Stop(**st["prev_stop"]), _Stop(**st["next_stop"])
        self.cumulative = st["cumulative"]
        self.rows = [RoundResult(**r) for r in st["rows"]]
        self.theta_k = st["theta_k"]
        self.generator.set_state(st["generator"])
        self._pending = st["pending"]
        self.final_weights = st.get("final_weights")

    def _checkpoint(self, info: CheckpointInfo, pending: dict | None = None) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.state_dict(pending), info)

    # -- procedure -----------------------------------------------------------------------------
    def run(self, resume: dict | None = None) -> list[RoundResult]:
        rc = self.recipe
        if resume is not None:
            self.load_state_dict(resume)
        try:
            while self.round <= rc.rounds:
                r = self.round
                if not self.masks_ready:
                    self.masks = self._next_masks()
                    self.masks_ready = True
                for name, trajectory, evaluate in self._plan(r):
                    if name not in self.runs_done:
                        self._execute(r, name, trajectory=trajectory, evaluate=evaluate)
                        self.runs_done.append(name)
                        self._checkpoint(CheckpointInfo(r, name, None, False))
                self.prev_stop, self.next_stop = self.next_stop, _Stop()
                self.round, self.masks_ready, self.runs_done = r + 1, False, []
        except _Halt:
            pass
        return self.rows

    def _plan(self, r: int) -> list[tuple[str, bool, bool]]:
        """(run name, picks the next stopping point, produces a row) for round ``r``."""
        rc = self.recipe
        if r == 0:
            dense_row = rc.eval_rounds == "all" or rc.rounds == 0
            return [("dense", rc.rounds > 0, dense_row)]
        evaluate = rc.eval_rounds == "all" or r == rc.rounds
        more = r < rc.rounds
        plan = []
        if "original" in self.variants and evaluate:
            plan.append(("original", more, True))
        elif more:
            plan.append(("traj", True, False))
        if evaluate:
            plan += [(v, False, True) for v in self.variants if v != "original"]
        return plan

    def _start_state(self, r: int, name: str) -> State:
        rc = self.recipe
        if r == 0:
            return self.theta0
        if rc.rewind_to > 0 and self.theta_k is None:
            raise RuntimeError(f"no snapshot at rewind_to={rc.rewind_to}")  # a bug, not user input
        theta_k = self.theta_k if rc.rewind_to > 0 else self.theta0
        if name in ("traj", "original"):
            return pruning.reset_state("original", self.masks, theta_k)
        fresh = None
        if name == "random_reinit":
            fresh = clone_state(build_model(rc.model, self.data.input_shape, self.data.num_classes,
                                            seed=rc.seed + 7919 * r, options=rc.model_options, meta=self.data.meta))
        # its own generator: asking for a control must not change the recipe's own masks
        gen = torch.Generator().manual_seed(rc.seed + 7919 * r + 1)
        return pruning.reset_state(name, self.masks, theta_k, init=self.theta0, fresh=fresh, generator=gen)

    def _first_iter(self, r: int) -> int:
        """Where round ``r``'s training starts on the dense run's clock: 0, or k after a rewind to k."""
        return self.recipe.rewind_to if r > 0 else 0

    def _next_masks(self) -> Masks:
        rc = self.recipe
        start = self._start_state(self.round - 1, "traj")
        stop = self.prev_stop.state
        w_init = {n: start[f"{n}.weight"] for n in self.masks}
        w_final = {n: stop[f"{n}.weight"] for n in self.masks}
        return pruning.next_masks(
            rc.criterion, w_init, w_final, self.masks, self.rates, scope=rc.scope, generator=self.generator,
            context_fn=self._context_fn(stop) if self.criterion.needs else None,
            iterations=rc.synflow_iterations, kinds=self.kinds,
        )

    def _context_fn(self, state: State, masks_base: Masks | None = None):
        """Gradients for SNIP/GraSP/SynFlow at ``state`` with the candidate masks applied."""
        import copy

        net = copy.deepcopy(self.model)
        net.load_state_dict({k: v.to(self.device) for k, v in state.items()})
        rc, data = self.recipe, self.data

        def batches():
            perm = epoch_permutation(len(data.train), rc.seed + 1, 0).to(data.train.x.device)
            bs = rc.training.batch_size
            for i in range(rc.score_batches):
                idx = perm[i * bs : (i + 1) * bs]
                yield data.train.x[idx], data.train.y[idx]

        def grasp_sample():
            perm = epoch_permutation(len(data.train), rc.seed + 1, 0).to(data.train.x.device)
            idx = ctx.class_balanced_indices(data.train.y, rc.samples_per_class, perm)
            return data.train.x[idx], data.train.y[idx]

        def fn(current: Masks):
            set_masks(net, current)
            if "grad" in self.criterion.needs:
                return ctx.snip_grads(net, batches(), multilabel=data.multilabel)
            if "hess_grad" in self.criterion.needs:
                x, y = grasp_sample()
                return ctx.grasp_hess_grads(net, x, y, multilabel=data.multilabel,
                                            temperature=rc.grasp_temperature)
            return ctx.synflow_grads(net, data.input_shape)

        return fn

    def _candidate_masks(self, w_init: dict, weights: dict, state_fn: Callable[[], State]) -> Masks:
        """The mask the criterion would select now (Early-Bird); fixed tie-breaks at every check."""
        rc = self.recipe
        return pruning.next_masks(
            rc.criterion, w_init, weights, self.masks, self.rates, scope=rc.scope,
            generator=torch.Generator().manual_seed(rc.seed),
            context_fn=self._context_fn(state_fn()) if self.criterion.needs else None,
            iterations=rc.synflow_iterations, kinds=self.kinds)

    # -- round 0 from a shared trajectory ------------------------------------------------------
    def _from_trajectory(self, r: int, name: str, *, trajectory: bool, evaluate: bool) -> None:
        rc, traj = self.recipe, self.trajectory
        if traj.budget_iters != self.budget_iters:
            raise ValueError(f"trajectory {traj.key} has {traj.budget_iters} iterations, recipe needs "
                             f"{self.budget_iters}")
        if rc.rounds > 0 and rc.rewind_to > 0:
            self.theta_k = self._snapshot(rc.rewind_to)
        if trajectory:
            if self.stop_iter is not None:
                self.next_stop = _Stop(self._snapshot(self.stop_iter), self.stop_iter, None)
            else:  # replay Early-Bird over the stored check grid
                detector = pruning.EarlyBird(rc.eb_eps, rc.eb_window, alive=self.masks)
                w_init = {n: self.theta0[f"{n}.weight"] for n in self.masks}
                grid = traj.grid(self.eb_every)
                if not grid:
                    raise ValueError(f"trajectory {traj.key} has no snapshots every {self.eb_every} iterations "
                                     "for early_bird")
                for it in grid:
                    snap = self._snapshot(it)
                    cand = self._candidate_masks(w_init, {n: snap[f"{n}.weight"] for n in self.masks},
                                                 lambda snap=snap: snap)
                    if detector.update(cand):
                        self.next_stop = _Stop(snap, it, True)
                        break
                else:
                    self.next_stop = _Stop(self._snapshot(grid[-1]), grid[-1], False)
        if evaluate:
            row = RoundResult(
                round=0, variant="dense", control=False, weights_remaining=1.0,
                mask_digest=pruning.digest(self.masks), mask_iter=None, early_bird_drawn=None,
                status="completed", iterations=traj.iterations, cumulative_iterations=self.cumulative,
                early_stop_iter=traj.early_stop_iter, metrics=dict(traj.metrics), curve=list(traj.curve),
                wall_seconds=0.0)
            self._emit(row)

    def _snapshot(self, it: int) -> State:
        if it == 0:
            return self.theta0
        try:
            return _to_device(self.trajectory.snapshots[it], self.device)
        except KeyError:
            raise ValueError(f"trajectory {self.trajectory.key} has no snapshot at iteration {it}") from None

    # -- one training run ----------------------------------------------------------------------
    def _execute(self, r: int, name: str, *, trajectory: bool, evaluate: bool) -> None:
        rc = self.recipe
        if r == 0 and self.trajectory is not None:
            if not torch.equal(next(iter(self.trajectory.theta0.values())).cpu(),
                               next(iter(self.theta0.values())).cpu()):
                raise ValueError("trajectory was computed from a different initialisation")
            self.theta0 = _to_device(self.trajectory.theta0, self.device)
            return self._from_trajectory(r, name, trajectory=trajectory, evaluate=evaluate)

        pending, self._pending = self._pending, None
        if pending is not None and (pending["round"], pending["run"]) != (r, name):
            pending = None
        start = None if pending else self._start_state(r, name)
        if start is not None:
            self.model.load_state_dict(start)
        set_masks(self.model, self.masks)
        first = self._first_iter(r)
        trainer = Trainer(self.model, self.data, rc.training, seed=rc.seed, track_best=evaluate,
                          eval_at_epoch_end=self.eval_at_epoch_end, start=first)
        early_bird = trajectory and self.stop_iter is None
        detector = pruning.EarlyBird(rc.eb_eps, rc.eb_window, alive=self.masks) if early_bird else None
        stop = _Stop()
        if pending:
            trainer.load_state_dict(pending["trainer"])
            stop = _Stop(**pending["stop"])
            if detector is not None:
                detector.load_state_dict(pending["early_bird"])
            w_init_state = pending["w_init"]
        else:
            w_init_state = {f"{n}.weight": start[f"{n}.weight"] for n in self.masks}
        w_init = {n: w_init_state[f"{n}.weight"] for n in self.masks}
        snapshots = {rc.rewind_to} if r == 0 and rc.rounds > 0 and rc.rewind_to > 0 else set()
        stop_iter = None if self.stop_iter is None else max(self.stop_iter, first)
        if trajectory and stop_iter is not None:
            snapshots.add(stop_iter)
        # a trajectory-only run stops at the stopping point, but round 0 must also reach rewind_to
        must_reach = rc.rewind_to if r == 0 and rc.rounds > 0 else 0
        stop_target = stop_iter if stop_iter is not None else self.budget_iters
        target = self.budget_iters if evaluate else max(must_reach, stop_target)
        final = evaluate and r == rc.rounds and name == rc.reinit

        def on_eval(rec: dict, model: nn.Module) -> bool:
            if self.on_eval is not None:
                self.on_eval(r, name, rec)
            # drawn earlier; a trajectory-only run still trains to reach rewind_to
            return bool(stop.eb_drawn) and not evaluate and rec["iteration"] >= must_reach

        def on_check(it: int, model: nn.Module) -> bool:
            if stop.eb_drawn:
                return not evaluate and it >= must_reach
            cand = self._candidate_masks(w_init, {n: m.weight.detach() for n, m in masked_layers(model)},
                                         lambda: clone_state(model))
            if detector.update(cand):
                stop.state, stop.iteration, stop.eb_drawn = clone_state(model), it, True
                return not evaluate and it >= must_reach
            return False

        def on_epoch(tr: Trainer) -> None:
            if self.on_checkpoint is None:
                return
            pend = {"round": r, "run": name, "trainer": tr.state_dict(), "stop": asdict(stop),
                    "early_bird": detector.state_dict() if detector else None, "w_init": w_init_state}
            self._checkpoint(CheckpointInfo(r, name, tr, final), pend)

        t0 = time.perf_counter()
        status, message = "completed", ""
        before = trainer.iteration
        try:
            res = trainer.run(target, snapshot_at=snapshots, on_eval=on_eval, on_epoch=on_epoch,
                              on_check=on_check if detector is not None else None, check_every=self.eb_every)
        except Diverged as exc:
            status, message, res = "diverged", str(exc), trainer.result
            res.iterations = trainer.iteration
        self.cumulative += trainer.iteration - before
        if r == 0 and rc.rewind_to in res.snapshots:
            self.theta_k = res.snapshots[rc.rewind_to]
        if trajectory:
            if stop_iter is not None:
                stop = _Stop(res.snapshots.get(stop_iter), stop_iter, None)
            elif not stop.eb_drawn:  # Early-Bird never converged: the mask comes from the last weights
                stop = _Stop(clone_state(self.model), trainer.iteration, False)
            self.next_stop = stop
        if evaluate or status != "completed":
            if status == "completed":
                trainer.final_metrics()
                if final or (r == 0 and rc.rounds == 0):
                    sets = {"end": clone_state(self.model), "early_stop": res.best_state}
                    self.final_weights = {k: _to_device(v, torch.device("cpu")) for k, v in sets.items()
                                          if v is not None}
            metrics = {**res.final, **{f"{k}_at_early_stop": v for k, v in res.at_early_stop.items()}}
            variant = "dense" if r == 0 else ("original" if name == "traj" else name)
            self._emit(RoundResult(
                round=r, variant=variant, control=variant not in ("dense", rc.reinit),
                weights_remaining=pruning.density(self.masks), mask_digest=pruning.digest(self.masks),
                mask_iter=self.prev_stop.iteration if r > 0 else None,
                early_bird_drawn=self.prev_stop.eb_drawn if r > 0 else None, status=status,
                message=message, iterations=trainer.iteration - trainer.start, cumulative_iterations=self.cumulative,
                early_stop_iter=res.early_stop_iter, metrics=metrics, curve=res.curve,
                wall_seconds=time.perf_counter() - t0 + (pending["trainer"]["result"]["wall_seconds"]
                                                         if pending else 0.0),
            ))
        if status != "completed":
            raise _Halt

    def _emit(self, row: RoundResult) -> None:
        self.rows.append(row)
        if self.on_round is not None:
            self.on_round(row)


def _to_device(obj, device: torch.device):
    """Tensors anywhere in nested dicts/lists moved to ``device`` (other values unchanged)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    return obj


def run_ticket(recipe: Recipe, data: Dataset, **kwargs) -> list[RoundResult]:
    return TicketRun(recipe, data, **kwargs).run()
