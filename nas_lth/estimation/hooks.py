"""What happens beside training, as named hooks with one protocol (the trainer calls every hook).

- :class:`EvalListener`: hands each evaluation record on (the search's learning curves);
- :class:`EarlyBirdStop`: Early-Bird mask checks; stops a trajectory run once the mask is drawn;
- :class:`EpochCheckpoint`: saves the run's state at every epoch boundary (resume, fault tolerance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from nas_lth.pruning import EarlyBird

if TYPE_CHECKING:
    from nas_lth.estimation.train import Trainer

State = dict


class RunHook:
    """Every method is optional. ``on_eval`` and ``on_check`` return True to stop training now.
    ``check_every`` > 0: ``on_check`` runs before the first step and after every ``check_every``-th
    iteration of the run's clock."""

    check_every: int = 0

    def on_eval(self, trainer: Trainer, rec: dict) -> bool:
        return False

    def on_check(self, trainer: Trainer, iteration: int) -> bool:
        return False

    def on_epoch(self, trainer: Trainer) -> None:
        return None


class EvalListener(RunHook):
    def __init__(self, fn: Callable[[dict], None]):
        self.fn = fn

    def on_eval(self, trainer, rec):
        self.fn(rec)
        return False


class EpochCheckpoint(RunHook):
    def __init__(self, fn: Callable[[Trainer], None]):
        self.fn = fn

    def on_epoch(self, trainer):
        self.fn(trainer)


@dataclass
class MaskPoint:
    """Where a trajectory run stopped: the weights that select the next mask."""

    state: State | None = None
    iteration: int | None = None
    eb_drawn: bool | None = None


class EarlyBirdStop(RunHook):
    """At every check, the mask the criterion would pick now (``candidate(model)``) goes to the
    detector; once drawn, the weights are kept in ``point``. A run that trains only for its mask
    (``stop_when_drawn``) stops there, or as soon as it has reached ``must_reach`` (round 0 must
    still pass the rewind point)."""

    def __init__(self, detector: EarlyBird, every: int, candidate: Callable[[nn.Module], dict],
                 clone: Callable[[nn.Module], State], *, stop_when_drawn: bool, must_reach: int = 0,
                 point: MaskPoint | None = None):
        self.detector, self.check_every, self.candidate, self.clone = detector, every, candidate, clone
        self.stop_when_drawn, self.must_reach = stop_when_drawn, must_reach
        self.point = point or MaskPoint()

    def _done(self, iteration: int) -> bool:
        return self.stop_when_drawn and iteration >= self.must_reach

    def on_eval(self, trainer, rec):
        return bool(self.point.eb_drawn) and self._done(rec["iteration"])

    def on_check(self, trainer, iteration):
        if self.point.eb_drawn:
            return self._done(iteration)
        if self.detector.update(self.candidate(trainer.model)):
            self.point = MaskPoint(self.clone(trainer.model), iteration, True)
            return self._done(iteration)
        return False
