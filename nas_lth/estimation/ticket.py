"""The ticket procedure (Frankle & Carbin 2019, generalised as in docs/design.md):

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

Round 0 can come from a shared :class:`~nas_lth.estimation.trajectory.DenseTrajectory`, and a ladder's
rounds from the round prefixes other ladders stored (:mod:`nas_lth.estimation.prefix`). The run can
be checkpointed at every epoch end and resumed from such a state (``run(resume=state)``).
"""

from __future__ import annotations

import time
from dataclasses import asdict

import torch

from nas_lth import pruning
from nas_lth.data.base import Dataset
from nas_lth.errors import UserError
from nas_lth.estimation.hooks import EarlyBirdStop, EpochCheckpoint, EvalListener, MaskPoint, RunHook
from nas_lth.estimation.prefix import PrefixStore
from nas_lth.estimation.replay import round0_from_trajectory
from nas_lth.estimation.rounds import (
    CheckpointInfo,
    CheckpointListener,
    EvalRecordListener,
    RoundListener,
    RoundResult,
    round_plan,
    to_device,
)
from nas_lth.estimation.train import Diverged, State, Trainer, TrainResult, clone_state
from nas_lth.estimation.trajectory import DenseTrajectory
from nas_lth.models import build_model, masked_layers, set_masks
from nas_lth.pruning import channels
from nas_lth.pruning.context import context_fn
from nas_lth.recipe import Recipe

Masks = dict[str, torch.Tensor]
__all__ = ["CheckpointInfo", "RoundResult", "TicketRun", "run_ticket"]


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
        on_round: RoundListener | None = None,
        on_eval: EvalRecordListener | None = None,
        on_checkpoint: CheckpointListener | None = None,
        eval_at_epoch_end: bool = False,
        floor: float | None = None,
        prefixes: PrefixStore | None = None,
    ):
        self.recipe = rc = recipe
        # a pruning ladder's sparsity floor: the run ends after the first round at or below it (rounds: the cap)
        self.floor = floor
        self.prefixes = prefixes  # a ladder's round prefixes: reused where stored, stored where computed
        self.data = data
        self.device = torch.device(device)
        self.variants = list(dict.fromkeys([rc.reinit, *controls]))
        self.trajectory = trajectory
        self.on_round, self.on_eval, self.on_checkpoint = on_round, on_eval, on_checkpoint
        self.eval_at_epoch_end = eval_at_epoch_end
        self.model = self._build(rc.seed)
        self.kinds = {n: m.kind for n, m in masked_layers(self.model)}
        self.rates = pruning.layer_rates(self.kinds, rc.effective_prune_rate())
        self.ipe = rc.iterations_per_epoch(len(data.train))
        self.budget_iters = max(1, int(round(rc.budget * self.ipe)))
        self.stop_iter = rc.stop.iteration(self.ipe, self.budget_iters)
        self.eb_every = rc.eb_check_every(len(data.train))
        rc.check_budget(len(data.train))
        self.groups = self._channel_groups() if rc.granularity == "channel" else None
        # progress (everything a checkpoint holds)
        self.generator = torch.Generator().manual_seed(rc.seed)
        self.theta0: State = clone_state(self.model)
        self.theta_k: State | None = None
        self.round = 0
        self.masks: Masks = {n: m.mask.detach().clone() for n, m in masked_layers(self.model)}
        self.masks_ready = True  # round 0 is dense
        self.runs_done: list[str] = []
        self.prev_stop = MaskPoint()  # from round - 1: selects this round's masks
        self.next_stop = MaskPoint()  # from this round: selects the next round's masks
        self.cumulative = 0
        self.rows: list[RoundResult] = []
        self._pending: dict | None = None  # a run interrupted mid-way (resume)
        # the recipe's own ticket after its evaluated last run (what an export writes): weights at the
        # end of training and at the early-stop iteration, on the CPU; None until that run completes
        self.final_weights: dict[str, State] | None = None
        # rounds taken from stored prefixes, and their iterations (in ``cumulative``, not trained by this run)
        self.reused_rounds: list[int] = []
        self.reused_iterations = 0

    def _build(self, seed: int) -> torch.nn.Module:
        rc, d = self.recipe, self.data
        return build_model(rc.model, d.input_shape, d.num_classes, seed=seed, options=rc.model_options,
                           meta=d.meta).to(self.device)

    # -- checkpoint ----------------------------------------------------------------------------
    def state_dict(self, pending: dict | None = None) -> dict:
        return {
            "version": 1, "round": self.round, "masks": self.masks, "masks_ready": self.masks_ready,
            "runs_done": list(self.runs_done), "prev_stop": asdict(self.prev_stop),
            "next_stop": asdict(self.next_stop), "cumulative": self.cumulative,
            "rows": [asdict(r) for r in self.rows], "theta_k": self.theta_k,
            "generator": self.generator.get_state(), "pending": pending,
            "final_weights": self.final_weights, "reused_rounds": list(self.reused_rounds),
            "reused_iterations": self.reused_iterations,
        }

    def load_state_dict(self, st: dict) -> None:
        # checkpoints are loaded on the CPU; the generator state must stay there
        st = {**to_device({k: v for k, v in st.items() if k != "generator"}, self.device),
              "generator": st["generator"]}
        self.round, self.masks, self.masks_ready = st["round"], st["masks"], st["masks_ready"]
        self.runs_done = list(st["runs_done"])
        self.prev_stop, self.next_stop = MaskPoint(**st["prev_stop"]), MaskPoint(**st["next_stop"])
        self.cumulative = st["cumulative"]
        self.rows = [RoundResult(**r) for r in st["rows"]]
        self.theta_k = st["theta_k"]
        self.generator.set_state(st["generator"])
        self._pending = st["pending"]
        self.final_weights = st.get("final_weights")
        self.reused_rounds = list(st.get("reused_rounds", []))
        self.reused_iterations = int(st.get("reused_iterations", 0))

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
                if not self.masks_ready and self._reuse_prefix(r):
                    pass  # the round's state, rows and ticket as another ladder left them
                else:
                    if not self.masks_ready:
                        self.masks = self._next_masks()
                        self.masks_ready = True
                    computed, start = False, self.cumulative
                    for name, trajectory, evaluate in round_plan(self.recipe, self.variants, r, self.floor is not None):
                        if name not in self.runs_done:
                            self._execute(r, name, trajectory=trajectory, evaluate=evaluate)
                            self.runs_done.append(name)
                            computed = True
                            self._checkpoint(CheckpointInfo(r, name, None, False))
                    if computed and r >= 1 and self.prefixes is not None and self.next_stop.state is not None:
                        self.prefixes.store(r, self._prefix_state(self.cumulative - start))
                if self.at_floor(r):
                    break
                self.prev_stop, self.next_stop = self.next_stop, MaskPoint()
                self.round, self.masks_ready, self.runs_done = r + 1, False, []
        except _Halt:
            pass
        return self.rows

    def _prefix_state(self, spent: int) -> dict:
        """The state after this round as another ladder continues from it: not this run's reuse accounting, but
        what the round cost to train (``round_iterations``). Only a state that can continue is kept (one with the
        next mask's weights: a reinit ladder's last round has none)."""
        st = self.state_dict()
        del st["reused_rounds"], st["reused_iterations"]
        # the previous stopping point's weights chose this round's masks: consumed, so not kept (its iteration is)
        st["prev_stop"] = {**st["prev_stop"], "state": None}
        return {**st, "round_iterations": int(spent)}

    def _reuse_prefix(self, r: int) -> bool:
        """Continue from a stored state after round ``r`` (another ladder computed it), if there is one: its rows
        of round ``r`` are emitted as this run's, marked in ``reused_rounds``, their training counted apart."""
        if self.prefixes is None or r < 1 or self.runs_done or self._pending is not None:
            return False
        st = self.prefixes.load(r)
        if st is None:
            return False
        reused, mine, spent = (self.reused_rounds, self.reused_iterations), self.cumulative, int(st["round_iterations"])
        self.load_state_dict({**st, "pending": None})
        # this run's clock goes on from its own count (its round 0 may have come from a trajectory, or not)
        self.cumulative = mine + spent
        self.reused_rounds, self.reused_iterations = [*reused[0], r], reused[1] + spent
        for row in self.rows:
            if row.round == r and self.on_round is not None:
                self.on_round(row)
        self._checkpoint(CheckpointInfo(r, self.runs_done[-1], None, False))
        return True

    def at_floor(self, r: int) -> bool:
        """Round ``r`` is a ladder's last: its masks are at or below the floor."""
        return self.floor is not None and r >= 1 and pruning.density(self.masks) <= self.floor

    def _first_iter(self, r: int) -> int:
        """Where round ``r``'s training starts on the dense run's clock: 0, or k after a rewind to k."""
        return self.recipe.rewind_to if r > 0 else 0

    def _start_state(self, r: int, name: str) -> State:
        rc = self.recipe
        if r == 0:
            return self.theta0
        if rc.rewind_to > 0 and self.theta_k is None:
            raise RuntimeError(f"no snapshot at rewind_to={rc.rewind_to}")  # a bug, not user input
        theta_k = self.theta_k if rc.rewind_to > 0 else self.theta0
        if name in ("traj", "original"):
            return pruning.reset_state("original", self.masks, theta_k)
        fresh = clone_state(self._build(rc.seed + 7919 * r)) if name == "random_reinit" else None
        # its own generator: asking for a control must not change the recipe's own masks
        gen = torch.Generator().manual_seed(rc.seed + 7919 * r + 1)
        return pruning.reset_state(name, self.masks, theta_k, init=self.theta0, fresh=fresh, generator=gen)

    def _next_masks(self) -> Masks:
        start, stop = self._start_state(self.round - 1, "traj"), self.prev_stop.state
        return self._select({n: start[f"{n}.weight"] for n in self.masks},
                            {n: stop[f"{n}.weight"] for n in self.masks}, stop, self.generator)

    def _channel_groups(self) -> list:
        rc = self.recipe
        groups = channels.channel_groups(self.model, self.data.train.x[:2])
        if not groups:
            raise UserError(f"granularity: channel: model {rc.model!r} has no channels to remove")
        if rc.scope == "layerwise":
            channels.check_rates(groups, self.kind_rates, rc.rounds)
        return groups

    @property
    def kind_rates(self) -> dict[str, float]:
        return dict(self.recipe.effective_prune_rate())

    def eb_view(self, masks: Masks) -> Masks:
        """What Early-Bird compares: the masks, or for channel tickets the channels (You et al. 2020)."""
        return masks if self.groups is None else channels.channel_vectors(self.groups, masks)

    def _select(self, w_init: dict, w_final: dict, state: State, generator: torch.Generator) -> Masks:
        """The criterion's masks for the next round from ``w_final`` (the weights of ``state``)."""
        rc = self.recipe
        if self.groups is not None:
            return channels.next_channel_masks(
                rc.criterion, self.groups, {f"{n}.weight": w for n, w in w_init.items()}, state, self.masks,
                self.kind_rates, scope=rc.scope, norm=rc.channel_norm, generator=generator)
        return pruning.next_masks(
            rc.criterion, w_init, w_final, self.masks, self.rates, scope=rc.scope, generator=generator,
            context_fn=context_fn(rc.criterion, self.model, state, self.data, rc),
            iterations=rc.synflow_iterations, kinds=self.kinds)

    def _candidate(self, w_init: dict, state: State) -> Masks:
        """The mask the criterion would select at weights ``state`` (Early-Bird); fixed tie-breaks at every
        check. ``state`` is only read (gradient contexts load it into a copy of the model)."""
        return self.eb_view(self._select(w_init, {n: state[f"{n}.weight"] for n in self.masks}, state,
                                         torch.Generator().manual_seed(self.recipe.seed)))

    # -- one training run ----------------------------------------------------------------------
    def _execute(self, r: int, name: str, *, trajectory: bool, evaluate: bool) -> None:
        if r == 0 and self.trajectory is not None:
            return round0_from_trajectory(self, trajectory, evaluate)
        rc = self.recipe
        pending, self._pending = self._pending, None
        if pending is not None and (pending["round"], pending["run"]) != (r, name):
            pending = None
        trainer, w_init_state = self._trainer(r, name, evaluate, pending)
        first = self._first_iter(r)
        stop_iter = None if self.stop_iter is None else max(self.stop_iter, first)
        snapshots = {rc.rewind_to} if r == 0 and rc.rounds > 0 and rc.rewind_to > 0 else set()
        if trajectory and stop_iter is not None:
            snapshots.add(stop_iter)
        # a trajectory-only run stops at the stopping point, but round 0 must also reach rewind_to
        must_reach = rc.rewind_to if r == 0 and rc.rounds > 0 else 0
        target = self.budget_iters if evaluate else max(must_reach, self.budget_iters if stop_iter is None
                                                        else stop_iter)
        final = evaluate and (r == rc.rounds or self.at_floor(r)) and name == rc.reinit
        eb = self._early_bird(w_init_state, evaluate, must_reach, pending) if trajectory and stop_iter is None \
            else None
        hooks: list[RunHook] = [EvalListener(lambda rec: self.on_eval and self.on_eval(r, name, rec))]
        hooks += [eb] if eb is not None else []
        hooks.append(EpochCheckpoint(lambda tr: self._epoch_checkpoint(tr, r, name, final, eb, w_init_state)))
        t0, before = time.perf_counter(), trainer.iteration
        status, message = "completed", ""
        try:
            res = trainer.run(target, snapshot_at=snapshots, hooks=hooks)
        except Diverged as exc:
            status, message, res = "diverged", str(exc), trainer.result
            res.iterations = trainer.iteration
        self.cumulative += trainer.iteration - before
        if r == 0 and rc.rewind_to in res.snapshots:
            self.theta_k = res.snapshots[rc.rewind_to]
        if trajectory:
            self.next_stop = self._mask_point(res, trainer, stop_iter, eb)
        if evaluate or status != "completed":
            earlier = pending["trainer"]["result"]["wall_seconds"] if pending else 0.0
            self._finish_run(r, name, trainer, res, status, message, final, t0 - earlier)
        if status != "completed":
            raise _Halt

    def _trainer(self, r: int, name: str, evaluate: bool, pending: dict | None) -> tuple[Trainer, dict]:
        """The run's trainer, started from its state (or resumed), and the weights it starts from."""
        start = None if pending else self._start_state(r, name)
        if start is not None:
            self.model.load_state_dict(start)
        set_masks(self.model, self.masks)
        trainer = Trainer(self.model, self.data, self.recipe.training, seed=self.recipe.seed, track_best=evaluate,
                          eval_at_epoch_end=self.eval_at_epoch_end, start=self._first_iter(r))
        if pending:
            trainer.load_state_dict(pending["trainer"])
            return trainer, pending["w_init"]
        return trainer, {f"{n}.weight": start[f"{n}.weight"] for n in self.masks}

    def _early_bird(self, w_init_state: dict, evaluate: bool, must_reach: int,
                    pending: dict | None) -> EarlyBirdStop:
        rc = self.recipe
        detector = pruning.EarlyBird(rc.eb_eps, rc.eb_window, alive=self.eb_view(self.masks))
        point = None
        if pending:
            detector.load_state_dict(pending["early_bird"])
            point = MaskPoint(**pending["stop"])
        w_init = {n: w_init_state[f"{n}.weight"] for n in self.masks}
        return EarlyBirdStop(detector, self.eb_every, lambda model: self._candidate(w_init, model.state_dict()),
                             clone_state, stop_when_drawn=not evaluate, must_reach=must_reach, point=point)

    def _epoch_checkpoint(self, tr: Trainer, r: int, name: str, final: bool, eb: EarlyBirdStop | None,
                          w_init_state: dict) -> None:
        if self.on_checkpoint is None:
            return
        pend = {"round": r, "run": name, "trainer": tr.state_dict(),
                "stop": asdict(eb.point) if eb else asdict(MaskPoint()),
                "early_bird": eb.detector.state_dict() if eb else None, "w_init": w_init_state}
        self._checkpoint(CheckpointInfo(r, name, tr, final), pend)

    def _mask_point(self, res: TrainResult, trainer: Trainer, stop_iter: int | None,
                    eb: EarlyBirdStop | None) -> MaskPoint:
        if stop_iter is not None:
            return MaskPoint(res.snapshots.get(stop_iter), stop_iter, None)
        if eb is not None and eb.point.eb_drawn:
            return eb.point
        return MaskPoint(clone_state(self.model), trainer.iteration, False)  # never settled: the last weights

    def _finish_run(self, r: int, name: str, trainer: Trainer, res: TrainResult, status: str, message: str,
                    final: bool, t0: float) -> None:
        rc = self.recipe
        if status == "completed":
            trainer.final_metrics()
            ladder_ticket = self.floor is not None and r >= 1 and name == rc.reinit  # a later ladder may end here
            if final or (r == 0 and rc.rounds == 0) or ladder_ticket:
                sets = {"end": clone_state(self.model), "early_stop": res.best_state}
                self.final_weights = {k: to_device(v, torch.device("cpu")) for k, v in sets.items() if v is not None}
        metrics = {**res.final, **{f"{k}_at_early_stop": v for k, v in res.at_early_stop.items()}}
        variant = "dense" if r == 0 else ("original" if name == "traj" else name)
        self._emit(RoundResult(
            round=r, variant=variant, control=variant not in ("dense", rc.reinit),
            weights_remaining=pruning.density(self.masks), mask_digest=pruning.digest(self.masks),
            mask_iter=self.prev_stop.iteration if r > 0 else None,
            early_bird_drawn=self.prev_stop.eb_drawn if r > 0 else None, status=status, message=message,
            iterations=trainer.iteration - trainer.start, cumulative_iterations=self.cumulative,
            early_stop_iter=res.early_stop_iter, metrics=metrics, curve=res.curve,
            wall_seconds=time.perf_counter() - t0))

    def _emit(self, row: RoundResult) -> None:
        self.rows.append(row)
        if self.on_round is not None:
            self.on_round(row)


def run_ticket(recipe: Recipe, data: Dataset, **kwargs) -> list[RoundResult]:
    return TicketRun(recipe, data, **kwargs).run()


def first_masks(recipe: Recipe, data: Dataset, trajectory: DenseTrajectory) -> Masks:
    """The masks round 1 trains, selected from the dense ``trajectory`` without training anything: for a one-shot
    recipe, the ticket's own masks. A grid of recipes uses them to see, before training, that two cells train the
    same ticket (e.g. ``large_init`` at every stopping point)."""
    run = TicketRun(recipe, data, trajectory=trajectory)
    round0_from_trajectory(run, trajectory=True, evaluate=False)
    run.prev_stop, run.round = run.next_stop, 1
    return run._next_masks()
