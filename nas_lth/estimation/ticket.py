"""The ticket procedure (Frankle & Carbin 2019, generalised as in DESIGN.md):

    round 0: train the dense net from theta_0; keep theta_k (rewind point) and the weights at the
             stopping point (an iteration, an epoch fraction, the end, or the Early-Bird point).
    round r: score the surviving weights (criterion), prune ``prune_rate`` of them, reset the kept
             weights (rewind to theta_k; reinit variant for the evaluated ticket), train again.

A round's training serves twice: its metrics rate the round's ticket and its weights at the stopping
point select the next mask. Rounds that are not evaluated (``eval_rounds: last``) train only up to
the stopping point, which is where early tickets save compute. Masks always come from the
``original`` trajectory, so a reinit variant is a control of the *same* masks (as in the LTH paper).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from nas_lth import pruning
from nas_lth.data.base import Dataset
from nas_lth.errors import UserError
from nas_lth.estimation.recipe import Recipe
from nas_lth.estimation.train import Diverged, State, Trainer, clone_state, epoch_permutation
from nas_lth.models import build_model, layer_kinds, masked_layers, set_masks
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
    cumulative_iterations: int = 0  # trained by the whole procedure when this row was finished
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


RoundHook = Callable[[RoundResult], None]
EvalHook = Callable[[int, str, dict], None]  # (round, variant, eval record)


class TicketRun:
    def __init__(
        self,
        recipe: Recipe,
        data: Dataset,
        *,
        device: torch.device | str = "cpu",
        controls: tuple[str, ...] = (),
        on_round: RoundHook | None = None,
        on_eval: EvalHook | None = None,
    ):
        self.recipe = recipe
        self.data = data
        self.device = torch.device(device)
        self.variants = list(dict.fromkeys([recipe.reinit, *controls]))
        self.on_round = on_round
        self.on_eval = on_eval
        self.model = build_model(recipe.model, data.input_shape, data.num_classes, seed=recipe.seed,
                                 options=recipe.model_options).to(self.device)
        self.theta0 = clone_state(self.model)
        self.kinds = layer_kinds(self.model)
        self.rates = pruning.layer_rates(self.kinds, recipe.prune_rate)
        self.criterion = pruning.get_criterion(recipe.criterion)
        self.generator = torch.Generator().manual_seed(recipe.seed)
        n_train = len(data.train)
        self.ipe = recipe.iterations_per_epoch(n_train)
        self.budget_iters = max(1, int(round(recipe.budget * self.ipe)))
        self.stop_iter = recipe.stop.iteration(self.ipe, self.budget_iters)
        if self.stop_iter is not None and self.stop_iter > self.budget_iters:
            raise UserError(f"stop_at {recipe.stop_at!r} is iteration {self.stop_iter}, beyond the budget of "
                            f"{self.budget_iters} iterations ({recipe.budget:g} epochs)")
        if recipe.rewind_to > self.budget_iters:
            raise UserError(f"rewind_to {recipe.rewind_to} is beyond the budget of {self.budget_iters} "
                            "iterations")
        self.cumulative = 0
        self.rows: list[RoundResult] = []

    # -- public --------------------------------------------------------------------------------
    def run(self) -> list[RoundResult]:
        rc = self.recipe
        masks: Masks = {n: m.mask.detach().clone() for n, m in masked_layers(self.model)}
        dense_metrics = rc.eval_rounds == "all" or rc.rounds == 0
        rewind_needed = rc.rounds > 0 and rc.rewind_to > 0
        try:
            run = self._train(self.theta0, masks, 0, "dense", evaluate=dense_metrics,
                              extra_snapshots={rc.rewind_to} if rewind_needed else set(),
                              mask_iter=None, eb_drawn=None)
        except _Stop:
            return self.rows
        theta_k = run.snapshots.get(rc.rewind_to, self.theta0) if rewind_needed else self.theta0
        start_state, stop_state, mask_iter, eb_drawn = self.theta0, run.stop_state, run.stop_at, run.eb_drawn

        for r in range(1, rc.rounds + 1):
            masks = self._next_masks(masks, start_state, stop_state)
            start_state = pruning.reset_state("original", masks, theta_k)
            evaluate = rc.eval_rounds == "all" or r == rc.rounds
            try:
                if "original" in self.variants and evaluate:
                    run = self._train(start_state, masks, r, "original", evaluate=True,
                                      mask_iter=mask_iter, eb_drawn=eb_drawn)
                elif r < rc.rounds:  # the trajectory only: train up to the stopping point
                    run = self._train(start_state, masks, r, "original", evaluate=False,
                                      mask_iter=mask_iter, eb_drawn=eb_drawn)
                if evaluate:
                    for variant in self.variants:
                        if variant == "original":
                            continue
                        fresh = None
                        if variant == "random_reinit":
                            fresh = clone_state(build_model(
                                rc.model, self.data.input_shape, self.data.num_classes,
                                seed=rc.seed + 7919 * r, options=rc.model_options))
                        state = pruning.reset_state(variant, masks, theta_k, init=self.theta0, fresh=fresh,
                                                    generator=self.generator)
                        self._train(state, masks, r, variant, evaluate=True, mask_iter=mask_iter,
                                    eb_drawn=eb_drawn, trajectory=False)
            except _Stop:
                return self.rows
            stop_state, mask_iter, eb_drawn = run.stop_state, run.stop_at, run.eb_drawn
        return self.rows

    # -- pieces --------------------------------------------------------------------------------
    def _next_masks(self, masks: Masks, start_state: State, stop_state: State) -> Masks:
        rc = self.recipe
        w_init = {n: start_state[f"{n}.weight"] for n in masks}
        w_final = {n: stop_state[f"{n}.weight"] for n in masks}
        return pruning.next_masks(
            rc.criterion, w_init, w_final, masks, self.rates, scope=rc.scope, generator=self.generator,
            context_fn=self._context_fn(stop_state) if self.criterion.needs else None,
            iterations=rc.synflow_iterations,
        )

    def _context_fn(self, state: State):
        net = copy.deepcopy(self.model)
        net.load_state_dict(state)
        rc, data = self.recipe, self.data

        def batches():
            perm = epoch_permutation(len(data.train), rc.seed + 1, 0).to(data.train.x.device)
            bs = rc.training.batch_size
            for i in range(rc.score_batches):
                idx = perm[i * bs : (i + 1) * bs]
                yield data.train.x[idx], data.train.y[idx]

        def fn(current: Masks):
            set_masks(net, current)
            if "grad" in self.criterion.needs:
                return ctx.snip_grads(net, batches(), multilabel=data.multilabel)
            if "hess_grad" in self.criterion.needs:
                return ctx.grasp_hess_grads(net, batches(), multilabel=data.multilabel)
            return ctx.synflow_grads(net, data.input_shape)

        return fn

    def _train(self, start: State, masks: Masks, rnd: int, variant: str, *, evaluate: bool,
               mask_iter: int | None, eb_drawn: bool | None, extra_snapshots: set[int] = frozenset(),
               trajectory: bool = True) -> _RunOut:
        """One training run from ``start`` with ``masks``. ``trajectory`` runs also pick the next
        stopping point; ``evaluate`` runs train the full budget and produce a row."""
        rc = self.recipe
        self.model.load_state_dict(start)
        set_masks(self.model, masks)
        trainer = Trainer(self.model, self.data, rc.training, seed=rc.seed, track_best=evaluate)
        out = _RunOut()
        early_bird = trajectory and self.stop_iter is None
        snapshots = set(extra_snapshots)
        if trajectory and self.stop_iter is not None:
            snapshots.add(self.stop_iter)
        target = self.budget_iters if evaluate else (self.stop_iter if self.stop_iter is not None
                                                     else self.budget_iters)
        detector = pruning.EarlyBird(rc.eb_eps, rc.eb_window) if early_bird else None
        w_init = {n: start[f"{n}.weight"] for n in masks}

        def on_eval(rec: dict, model: nn.Module) -> bool:
            if self.on_eval is not None:
                self.on_eval(rnd, variant, rec)
            if detector is None or out.eb_drawn or rec["iteration"] == 0:
                return False
            w_now = {n: m.weight.detach() for n, m in masked_layers(model)}
            state_now = clone_state(model) if self.criterion.needs else None
            candidate = pruning.next_masks(
                rc.criterion, w_init, w_now, masks, self.rates, scope=rc.scope,
                generator=torch.Generator().manual_seed(rc.seed),  # same tie-breaks at every check
                context_fn=self._context_fn(state_now) if state_now is not None else None,
                iterations=rc.synflow_iterations)
            rec["eb_distance"] = detector.last_distance
            if detector.update(candidate):
                out.eb_drawn, out.stop_at, out.stop_state = True, rec["iteration"], clone_state(model)
                return not evaluate
            return False

        t0 = time.perf_counter()
        status, message = "completed", ""
        try:
            res = trainer.run(target, snapshot_at=snapshots, on_eval=on_eval)
        except Diverged as exc:
            status, message, res = "diverged", str(exc), trainer.result
            res.iterations = trainer.iteration
        self.cumulative += trainer.iteration
        out.snapshots = res.snapshots
        if trajectory and self.stop_iter is not None:
            out.stop_at, out.stop_state = self.stop_iter, res.snapshots.get(self.stop_iter)
        elif early_bird and not out.eb_drawn:  # never converged: the mask comes from the last weights
            out.eb_drawn, out.stop_at, out.stop_state = False, trainer.iteration, clone_state(self.model)
        if evaluate or status != "completed":
            if status == "completed":
                trainer.final_metrics()
            metrics = {**res.final, **{f"{k}_at_early_stop": v for k, v in res.at_early_stop.items()}}
            row = RoundResult(
                round=rnd, variant=variant, control=variant not in ("dense", rc.reinit),
                weights_remaining=pruning.density(masks), mask_digest=pruning.digest(masks),
                mask_iter=mask_iter, early_bird_drawn=eb_drawn, status=status, message=message,
                iterations=trainer.iteration, cumulative_iterations=self.cumulative,
                early_stop_iter=res.early_stop_iter, metrics=metrics, curve=res.curve,
                wall_seconds=time.perf_counter() - t0,
            )
            self.rows.append(row)
            if self.on_round is not None:
                self.on_round(row)
        if status != "completed":
            raise _Stop
        return out


@dataclass
class _RunOut:
    snapshots: dict[int, State] = field(default_factory=dict)
    stop_at: int | None = None
    stop_state: State | None = None
    eb_drawn: bool | None = None


class _Stop(Exception):
    """A training run diverged: later rounds cannot be computed."""


def run_ticket(recipe: Recipe, data: Dataset, **kwargs) -> list[RoundResult]:
    return TicketRun(recipe, data, **kwargs).run()
