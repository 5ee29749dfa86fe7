"""The dense trajectory: what every ticket of a (model, data, seed, training) setting shares.

Round 0 of the ticket procedure - training the dense network - does not depend on the criterion,
the stopping point, the rewind point or the reinit variant. A :class:`DenseTrajectory` keeps its
initial weights, the weights at every iteration a search space may stop or rewind at (and on the
Early-Bird check grid, or the evaluation grid for stop/rewind ranges), and the dense net's metrics, so that each
trial pays only for its own rounds. It is content-addressed by :func:`trajectory_key`.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nas_lth.data.base import Dataset
from nas_lth.estimation.hooks import EvalListener, MaskPoint
from nas_lth.estimation.train import State, Trainer, clone_state
from nas_lth.models import build_model
from nas_lth.recipe import Recipe, dense_key_fields


def trajectory_key(recipe: Recipe) -> str:
    """Hash of the recipe fields the dense run depends on (the fields the recipe marks *dense*)."""
    d = recipe.model_dump(include=set(dense_key_fields()))
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


@dataclass
class DenseTrajectory:
    key: str
    theta0: State
    snapshots: dict[int, State]
    iterations: int  # trained to compute it
    budget_iters: int
    eval_every: int
    grids: list[int] = field(default_factory=list)  # cadences whose multiples (and 0) have snapshots
    metrics: dict[str, float] = field(default_factory=dict)  # dense val/test metrics at the end
    early_stop_iter: int = 0
    curve: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({k: getattr(self, k) for k in self.__dataclass_fields__}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, map_location="cpu") -> DenseTrajectory:
        """The trajectory of a file's bytes; ValueError when they are not a whole, consistent one."""
        # weights_only: a trajectory file from shared storage never gets to run code on load
        try:
            obj = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        except Exception as exc:  # zip, pickle and unpickler-policy errors alike: not a trajectory file
            raise ValueError(f"not a readable trajectory file ({type(exc).__name__})") from None
        if not isinstance(obj, dict) or set(obj) != set(cls.__dataclass_fields__):
            raise ValueError("not a trajectory: its fields are not those of DenseTrajectory")
        traj = cls(**obj)
        traj._check_states()
        return traj

    def _check_states(self) -> None:
        """Every snapshot holds the same tensors as the initial weights (a file cut or edited does not)."""
        def shapes(state) -> dict:
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise ValueError("a state of the trajectory is not a mapping of tensors")
            return {k: tuple(v.shape) for k, v in state.items()}

        want = shapes(self.theta0)
        if not isinstance(self.snapshots, dict) or (self.grids and self.budget_iters not in self.snapshots):
            raise ValueError("the trajectory lacks its snapshots")
        for it, state in self.snapshots.items():
            if not isinstance(it, int) or shapes(state) != want:
                raise ValueError(f"snapshot {it!r} does not match the initial weights")

    def replay_early_bird(self, every: int, detect: Callable[[State], bool]) -> MaskPoint:
        """Early-Bird over the stored checks (0, every, 2*every, ...): the first snapshot at which
        ``detect(state)`` fires, else the last weights (the mask never settled)."""
        grid = self.grid(every)
        if not grid:
            raise ValueError(f"trajectory {self.key} has no snapshots every {every} iterations for early_bird")
        for it in grid:
            state = self.theta0 if it == 0 else self.snapshots[it]
            if detect(state):
                return MaskPoint(state, it, True)
        # as a run that trains itself: the mask comes from the weights at the end of the budget
        return MaskPoint(self.snapshots[self.budget_iters], self.budget_iters, False)

    def grid(self, every: int) -> list[int]:
        """Iterations 0, every, 2*every, ... up to the budget, if this trajectory keeps them all
        (where Early-Bird checks happen); else []."""
        its = list(range(0, self.budget_iters + 1, every))
        held = all(i == 0 or i in self.snapshots for i in its) and self.budget_iters in self.snapshots
        return its if held else []


def compute_trajectory(recipe: Recipe, data: Dataset, *, snapshot_iters: set[int], device="cpu",
                       grids: set[int] | frozenset[int] = frozenset(), key: str | None = None,
                       on_eval: Callable[[dict], None] | None = None) -> DenseTrajectory:
    """Train the dense net for the recipe's budget, keeping weights at ``snapshot_iters``, at every
    multiple of each cadence in ``grids`` and at the end (Early-Bird replay needs the last weights
    when the mask never settles)."""
    model = build_model(recipe.model, data.input_shape, data.num_classes, seed=recipe.seed,
                        options=recipe.model_options, meta=data.meta).to(device)
    theta0 = clone_state(model)
    trainer = Trainer(model, data, recipe.training, seed=recipe.seed, track_best=True)
    budget = max(1, int(round(recipe.budget * trainer.iters_per_epoch)))
    wanted = {i for i in snapshot_iters if 0 <= i <= budget}
    for every in grids:
        wanted |= set(range(every, budget + 1, every))
    if grids:
        wanted.add(budget)
    t0 = time.perf_counter()
    res = trainer.run(budget, snapshot_at=wanted, hooks=[EvalListener(on_eval)] if on_eval is not None else [])
    trainer.final_metrics()
    metrics = {**res.final, **{f"{k}_at_early_stop": v for k, v in res.at_early_stop.items()}}
    snaps = {i: {k: v.cpu() for k, v in s.items()} for i, s in res.snapshots.items()}
    return DenseTrajectory(
        key=key or trajectory_key(recipe), theta0={k: v.cpu() for k, v in theta0.items()}, snapshots=snaps,
        iterations=trainer.iteration, budget_iters=budget, eval_every=recipe.training.eval_every,
        grids=sorted(grids),
        metrics=metrics, early_stop_iter=res.early_stop_iter, curve=res.curve,
        wall_seconds=time.perf_counter() - t0,
    )
