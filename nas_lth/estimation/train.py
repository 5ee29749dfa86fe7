"""The training loop: whole-tensor datasets, index-slice mini-batches, masks re-applied in place
after every optimizer step, evaluation every ``eval_every`` iterations.

Kept lean on purpose: per step it does what a hand-written PyTorch loop does plus one fused
``_foreach_mul_`` over the masked weights (benchmarks/train_speed.py measures the overhead).
Data order depends only on (seed, epoch), so a run resumed at an epoch boundary, or a rewound
ticket that starts at iteration k (``start=k``), sees the same batches as an uninterrupted run from
that point on. Every other random draw of training (dropout) comes from the global generator
re-seeded from (seed, epoch, first iteration) inside a forked RNG: repeatable, and the caller's
global RNG is left alone.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from nas_lth.data.base import Dataset, epoch_permutation
from nas_lth.estimation.hooks import RunHook
from nas_lth.estimation.metrics import evaluate, loss_fn
from nas_lth.models.layers import masked_layers
from nas_lth.models.layout import set_memory_format
from nas_lth.recipe import Training

State = dict[str, torch.Tensor]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def clone_state(model: nn.Module) -> State:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def autocast(device: torch.device, cfg: Training):
    """The forward pass's precision context: bfloat16 autocast when the recipe asks for it, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def make_optimizer(model: nn.Module, cfg: Training) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


@dataclass
class TrainResult:
    iterations: int = 0
    curve: list[dict] = field(default_factory=list)  # one record per evaluation
    best_val_loss: float = math.inf
    early_stop_iter: int = 0
    best_state: State | None = None  # weights at the early-stop iteration
    snapshots: dict[int, State] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)  # val_*/test_* at the end
    at_early_stop: dict[str, float] = field(default_factory=dict)  # val_*/test_* at early stop
    stopped_by_hook: bool = False
    wall_seconds: float = 0.0


class Trainer:
    """Trains ``model`` (already on the data's device) on ``data`` with ``cfg``.

    ``start`` is the iteration the run begins at (late resetting: a ticket rewound to iteration k
    continues the dense run's clock, data order and learning-rate schedule from k, with a fresh
    optimizer, as OpenLTH does). Resumable at epoch boundaries: :meth:`state_dict` /
    :meth:`load_state_dict`.
    """

    def __init__(self, model: nn.Module, data: Dataset, cfg: Training, *, seed: int,
                 track_best: bool = True, eval_at_epoch_end: bool = False, start: int = 0,
                 memory_format: str = "auto"):
        # The layout changes float rounding, not results: an exported ticket is reloaded in the layout it was
        # trained in (nas_lth.export). Set before the optimizer holds the parameters, in place: the caller's
        # model keeps it across rounds.
        self.memory_format = set_memory_format(model, memory_format)
        cl = self.memory_format == "channels_last"
        self._cl_input = cl and data.train.x.dim() == 4
        device = data.train.x.device
        if device.type == "cuda" and cl:
            # fixed shapes per run: let cuDNN time its algorithms once (CUDA runs are not bit-reproducible anyway)
            torch.backends.cudnn.benchmark = True
        self._autocast = lambda: autocast(device, cfg)
        self.model = model
        self.data = data
        self.cfg = cfg
        self.seed = seed
        self.track_best = track_best
        # the search reports once per epoch, so it wants a fresh evaluation at each epoch's end
        self.eval_at_epoch_end = eval_at_epoch_end
        self.optimizer = make_optimizer(model, cfg)
        self.n_train = len(data.train)
        self.iters_per_epoch = math.ceil(self.n_train / cfg.batch_size)
        self.start = self.iteration = int(start)
        self.result = TrainResult()
        # masks are fixed for a run; a dense run (all ones) skips the per-step multiply
        layers = [m for _, m in masked_layers(model) if not bool(m.mask.all())]
        self._mw = [m.weight for m in layers]
        self._mm = [m.mask for m in layers]
        self._post_step = getattr(model, "post_step", None)  # e.g. TextCNN's max-norm constraint
        # network slimming's sparsity term lambda * |gamma|, as its subgradient (Liu et al. 2017's updateBN)
        self._gammas = [m.weight for m in model.modules()
                        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None] \
            if cfg.bn_l1 > 0 else []

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        r = self.result
        return {
            "model": clone_state(self.model),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "iteration": self.iteration,
            "start": self.start,
            "result": {
                "curve": list(r.curve), "best_val_loss": r.best_val_loss,
                "early_stop_iter": r.early_stop_iter, "best_state": r.best_state,
                "snapshots": dict(r.snapshots), "wall_seconds": r.wall_seconds,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.start = int(state.get("start", 0))
        res = state["result"]
        self.result = TrainResult(
            iterations=self.iteration, curve=list(res["curve"]), best_val_loss=res["best_val_loss"],
            early_stop_iter=res["early_stop_iter"], best_state=res["best_state"],
            snapshots=dict(res["snapshots"]), wall_seconds=res["wall_seconds"],
        )

    # -- loop ----------------------------------------------------------------------------------
    def _lr_at_epoch(self, epoch: int) -> float:
        drops = sum(1 for m in self.cfg.lr_milestones if epoch >= m)
        return self.cfg.lr * self.cfg.lr_gamma**drops

    def _evaluate(self, train_loss: float | None) -> dict:
        """Evaluate on the validation split; ``train_loss`` is None before the first step."""
        with self._autocast():
            val = evaluate(self.model, self.data.val, self.data.multilabel)
        rec = {"iteration": self.iteration, "epoch": self.iteration / self.iters_per_epoch,
               "train_loss": math.nan if train_loss is None else train_loss}
        rec.update({f"val_{k}": v for k, v in val.items()})
        bad = [v for v in (train_loss, val["loss"]) if v is not None and not math.isfinite(v)]
        if bad:
            self.result.curve.append(rec)
            raise Diverged(f"loss is {bad[0]} at iteration {self.iteration}")
        r = self.result
        if val["loss"] < r.best_val_loss:
            r.best_val_loss = val["loss"]
            r.early_stop_iter = self.iteration
            if self.track_best:
                r.best_state = clone_state(self.model)
        r.curve.append(rec)
        return rec

    def run(self, iterations: int, *, snapshot_at: set[int] | frozenset[int] = frozenset(),
            hooks: Sequence[RunHook] = ()) -> TrainResult:
        """Train until iteration ``iterations`` of the run's clock (a resumed or rewound trainer
        continues from where it is), calling every hook (:mod:`nas_lth.estimation.hooks`)."""
        devices = [self.data.train.x.device] if self.data.train.x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self._run(iterations, snapshot_at, list(hooks))

    def _seed_global(self, epoch: int, offset: int) -> None:
        torch.manual_seed((self.seed * 1_000_003 + epoch * 7919 + offset + 1) % (2**63))

    def _checks(self, checkers: list[RunHook], first: bool = False) -> bool:
        """``on_check`` of the hooks due at this iteration (all of them at the run's start)."""
        due = [h for h in checkers if first or self.iteration % h.check_every == 0]
        return any([h.on_check(self, self.iteration) for h in due])  # a list: every hook runs

    def _step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the batch ``idx``; pruned weights are put back to zero in place."""
        x = self.data.train.x.index_select(0, idx)
        if self._cl_input:  # a no-op for one-channel images, a cheap copy for RGB batches
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = self.model(x)
            loss = loss_fn(out, self.data.train.y.index_select(0, idx), self.data.multilabel)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self._gammas:
            with torch.no_grad():
                for g in self._gammas:
                    g.grad.add_(torch.sign(g), alpha=self.cfg.bn_l1)
        self.optimizer.step()
        if self._mw:
            with torch.no_grad():
                torch._foreach_mul_(self._mw, self._mm)
        if self._post_step is not None:
            self._post_step()
        self.iteration += 1
        return loss.detach()

    def _run(self, iterations: int, snapshot_at, hooks: list[RunHook]) -> TrainResult:
        model, cfg, r = self.model, self.cfg, self.result
        checkers = [h for h in hooks if h.check_every]
        t0 = time.perf_counter()
        model.train()
        if self.iteration in snapshot_at:
            r.snapshots[self.iteration] = clone_state(model)
        if self.iteration == self.start and not r.curve:
            stop = self._eval_and_hooks(None, hooks)
            if self._checks(checkers, first=True) or stop:
                return self._finish(t0, stopped=True)
        loss_sum = torch.zeros((), device=self.data.train.x.device)
        n_loss = 0
        while self.iteration < iterations:
            epoch, offset = divmod(self.iteration, self.iters_per_epoch)
            self._seed_global(epoch, offset)
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr_at_epoch(epoch)
            perm = epoch_permutation(self.n_train, self.seed, epoch).to(self.data.train.x.device)
            stop_now = False
            for pos in range(offset * cfg.batch_size, self.n_train, cfg.batch_size):
                loss_sum += self._step(perm[pos : pos + cfg.batch_size])
                n_loss += 1
                if self.iteration in snapshot_at:
                    r.snapshots[self.iteration] = clone_state(model)
                if (self.iteration % cfg.eval_every == 0 or self.iteration == iterations
                        or (self.eval_at_epoch_end and self.iteration % self.iters_per_epoch == 0)):
                    stop_now = self._eval_and_hooks(float(loss_sum) / max(n_loss, 1), hooks)
                    loss_sum.zero_()
                    n_loss = 0
                if checkers:
                    stop_now = self._checks(checkers) or stop_now
                if stop_now or self.iteration >= iterations:
                    break
            if stop_now:
                return self._finish(t0, stopped=True)
            if self.iteration % self.iters_per_epoch == 0:
                r.wall_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                for h in hooks:
                    h.on_epoch(self)
        return self._finish(t0, stopped=False)

    def _eval_and_hooks(self, train_loss: float | None, hooks: list[RunHook]) -> bool:
        rec = self._evaluate(train_loss)
        return any([h.on_eval(self, rec) for h in hooks])

    def _finish(self, t0: float, stopped: bool) -> TrainResult:
        r = self.result
        r.wall_seconds += time.perf_counter() - t0
        r.iterations = self.iteration
        r.stopped_by_hook = stopped
        return r

    def final_metrics(self) -> None:
        """Val/test metrics at the end and at the early-stop iteration (test touched only here)."""
        r, data, ml = self.result, self.data, self.data.multilabel
        with self._autocast():
            r.final = _prefixed(self.model, data, ml)
            if r.best_state is not None:
                current = clone_state(self.model)
                self.model.load_state_dict(r.best_state)
                r.at_early_stop = _prefixed(self.model, data, ml)
                self.model.load_state_dict(current)


def _prefixed(model: nn.Module, data: Dataset, multilabel: bool) -> dict[str, float]:
    out = {f"val_{k}": v for k, v in evaluate(model, data.val, multilabel).items()}
    out.update({f"test_{k}": v for k, v in evaluate(model, data.test, multilabel).items()})
    return out
