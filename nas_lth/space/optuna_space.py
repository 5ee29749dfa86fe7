"""A search space as an Optuna define-by-run function (what OptunaSearch samples from)."""

from __future__ import annotations

from typing import Any

from nas_lth.space.schema import SearchSpace


class DefineByRun:
    """``fn(trial)`` samples every dimension whose ``when`` holds, in file order; conditional
    dimensions are simply not suggested, so TPE models them only where they exist.

    A class rather than a closure: Tune pickles the searcher, with this function, into its
    experiment checkpoint (that is what makes ``--resume`` continue the same Optuna study).
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.fixed = space.fixed_flat()

    def __call__(self, trial) -> None:
        values: dict[str, Any] = {}
        for key, dim in self.space.dims.items():
            if not dim.matches({**self.fixed, **values}):
                continue
            if dim.kind == "choice":
                values[key] = trial.suggest_categorical(key, dim.choice)
            elif dim.kind == "int":
                lo, hi = dim.int_
                step = int(dim.step) if dim.step and not dim.log else 1
                values[key] = trial.suggest_int(key, lo, hi, step=step, log=dim.log)
            else:
                lo, hi = dim.float_
                values[key] = trial.suggest_float(key, lo, hi, log=dim.log,
                                                  step=None if dim.log else dim.step)
        return None  # OptunaSearch turns the suggested parameters into the trial config


def define_by_run(space: SearchSpace) -> DefineByRun:
    return DefineByRun(space)
