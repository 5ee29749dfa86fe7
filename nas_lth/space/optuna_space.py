"""A search space as an Optuna define-by-run function (what OptunaSearch samples from)."""

from __future__ import annotations

from typing import Any

from nas_lth.space.schema import Dimension, SearchSpace


class DefineByRun:
    """``fn(trial)`` samples every dimension whose ``when`` holds, in file order; conditional
    dimensions are simply not suggested, so TPE models them only where they exist.

    A list-valued choice is suggested as JSON text (Optuna's categorical values are scalars) and
    returned decoded: Ray's ``OptunaSearch`` lays the returned mapping over the suggested parameters, so
    the trial's config holds the list itself (``None`` when the space has no such choice).

    A class rather than a closure: Tune pickles the searcher, with this function, into its
    experiment checkpoint (that is what makes ``--resume`` continue the same Optuna study).
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.fixed = space.fixed_flat()

    def __call__(self, trial) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        decoded: dict[str, Any] = {}
        for key, dim in self.space.dims.items():
            if not dim.matches({**self.fixed, **values}):
                continue
            d = distribution(dim)
            if dim.kind == "choice":
                values[key] = dim.decode(trial.suggest_categorical(key, d.choices))
                if dim.encoded:
                    decoded[key] = values[key]
            elif dim.kind == "int":
                values[key] = trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
            else:
                values[key] = trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
        # OptunaSearch turns the suggested parameters, with these laid over them, into the trial config
        return decoded or None


def distribution(dim: Dimension):
    """The Optuna distribution of a dimension: what the define-by-run space samples from, and what a
    warm-started trial is recorded with (the two must agree for TPE to use the old trials)."""
    import optuna  # here: loading a space file needs no optuna

    if dim.kind == "choice":
        return optuna.distributions.CategoricalDistribution(dim.optuna_choices())
    if dim.kind == "int":
        lo, hi = dim.int_
        return optuna.distributions.IntDistribution(lo, hi, log=dim.log,
                                                    step=int(dim.step) if dim.step and not dim.log else 1)
    lo, hi = dim.float_
    return optuna.distributions.FloatDistribution(lo, hi, log=dim.log, step=None if dim.log else dim.step)


def define_by_run(space: SearchSpace) -> DefineByRun:
    return DefineByRun(space)
