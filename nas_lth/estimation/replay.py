"""Round 0 of a ticket run served by a shared dense trajectory instead of training it again: the
weights at the rewind and stopping points, or Early-Bird replayed over the stored checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nas_lth import pruning
from nas_lth.estimation.hooks import MaskPoint
from nas_lth.estimation.rounds import RoundResult, to_device

if TYPE_CHECKING:
    from nas_lth.estimation.ticket import TicketRun

State = dict[str, torch.Tensor]


def shared_snapshot(run: TicketRun, it: int) -> State:
    if it == 0:
        return run.theta0
    try:
        return to_device(run.trajectory.snapshots[it], run.device)
    except KeyError:
        raise ValueError(f"trajectory {run.trajectory.key} has no snapshot at iteration {it}") from None


def round0_from_trajectory(run: TicketRun, trajectory: bool, evaluate: bool) -> None:
    """What round 0 would have produced (``trajectory``: the next stopping point; ``evaluate``: the
    dense row), from ``run.trajectory``."""
    rc, traj = run.recipe, run.trajectory
    if traj.budget_iters != run.budget_iters:
        raise ValueError(f"trajectory {traj.key} has {traj.budget_iters} iterations, recipe needs {run.budget_iters}")
    if not torch.equal(next(iter(traj.theta0.values())).cpu(), next(iter(run.theta0.values())).cpu()):
        raise ValueError("trajectory was computed from a different initialisation")
    run.theta0 = to_device(traj.theta0, run.device)
    if rc.rounds > 0 and rc.rewind_to > 0:
        run.theta_k = shared_snapshot(run, rc.rewind_to)
    if trajectory and run.stop_iter is not None:
        run.next_stop = MaskPoint(shared_snapshot(run, run.stop_iter), run.stop_iter, None)
    elif trajectory:
        run.next_stop = _replay_early_bird(run)
    if evaluate:
        run._emit(RoundResult(
            round=0, variant="dense", control=False, weights_remaining=1.0,
            mask_digest=pruning.digest(run.masks), mask_iter=None, early_bird_drawn=None,
            status="completed", iterations=traj.iterations, cumulative_iterations=run.cumulative,
            early_stop_iter=traj.early_stop_iter, metrics=dict(traj.metrics), curve=list(traj.curve)))


def _replay_early_bird(run: TicketRun) -> MaskPoint:
    rc = run.recipe
    detector = pruning.EarlyBird(rc.eb_eps, rc.eb_window, alive=run.eb_view(run.masks))
    w_init = {n: run.theta0[f"{n}.weight"] for n in run.masks}

    def detect(state: State) -> bool:
        return detector.update(run._candidate(w_init, to_device(state, run.device)))

    point = run.trajectory.replay_early_bird(run.eb_every, detect)
    return MaskPoint(to_device(point.state, run.device), point.iteration, point.eb_drawn)
