"""The confirmation stage: after the search, the ``strategy.confirm.top`` distinct recipes with the best
full-budget validation objective are trained again from scratch, each with every fresh seed of
``strategy.confirm.seeds``, as Ray trials of the same experiment.

It is a second Tune experiment inside the search's folder (``<experiment>/confirm/``: its own Tune state,
so an interrupted stage resumes where it stopped), with a grid over the plan, FIFO scheduling (every trial
runs its full budget) and no searcher (nothing it measures feeds the search). Its rows land in the same
``trials/`` and ``curves/`` tables with ``stage = "confirm"``, their seed and ``confirm_of``; each seed's
dense trajectory is computed once and shared, as in the search.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from nas_lth.experiment.stage import CONFIRM, confirm_config
from nas_lth.space import SearchSpace
from nas_lth.store.analysis import full_fidelity, unique_recipes
from nas_lth.store.confirmed import confirmation
from nas_lth.store.fs import Location

FOLDER = "confirm"
TABLE = "confirmed"


@dataclass
class ConfirmOutcome:
    planned: int
    done: int

    @property
    def interrupted(self) -> bool:
        return self.done < self.planned


def top_recipes(search: pd.DataFrame, metric: str, n: int) -> list[str]:
    """Trial ids of the ``n`` best distinct full-budget recipes (ties: fewer weights, then trial id)."""
    done = full_fidelity(search)
    if done.empty or metric not in done:
        return []
    ranked = unique_recipes(done.dropna(subset=[metric])).sort_values(
        [metric, "weights_remaining", "trial_id"], ascending=[False, True, True])
    return ranked["trial_id"].head(n).tolist()


def plan(space: SearchSpace, search: pd.DataFrame, configs: dict[str, dict], metric: str) -> list[dict]:
    """One config per (recipe, fresh seed); ``configs``: the search trials' Tune configs by trial id. Recipes
    rank by the search's objective: the metric, or with ``sparsest_within`` the score of the ladder's sparsest
    round within the bound."""
    conf = space.spec.strategy.confirm
    if conf is None:
        return []
    key = "objective" if space.spec.strategy.sparsest_within is not None else metric
    top = [t for t in top_recipes(search, key, len(configs)) if t in configs][: conf.top]
    return [confirm_config(configs[t], seed, t) for t in top for seed in space.confirm_seeds()]


def run_confirm(tune_config, run_config, exp: Location, trainable, configs: dict[str, dict], space: SearchSpace,
                metric: str, trust_state: bool = False) -> ConfirmOutcome | None:
    """Run (or resume) the stage; None when the space asks for none or no recipe completed."""
    from ray import tune

    from nas_lth.store import read

    if space.spec.strategy.confirm is None:
        return None
    # the search is over, so its rows - and with them the plan - are what they were when the stage began
    todo = plan(space, read(exp.uri).trials, configs, metric)
    if not todo:
        return None
    loc = exp.join(FOLDER)
    from nas_lth.experiment.restore import add_runtime_callbacks, restorable, restore_tuner
    from nas_lth.experiment.signing import TUNER_FILE, sign

    if restorable(loc, trust_state):
        tuner, _ = restore_tuner(loc.uri, trainable, exp)
    else:
        tuner = tune.Tuner(trainable, param_space={CONFIRM: tune.grid_search(todo)}, tune_config=tune_config,
                           run_config=run_config)
        sign(loc, [loc.join(TUNER_FILE)])
        add_runtime_callbacks(tuner, loc)
    try:
        tuner.fit()
    finally:
        sign(loc)
    res = read(exp.uri)
    out = ConfirmOutcome(len(todo), len(res.confirm))
    if not out.interrupted:
        verdict = confirmation(res.trials, res.confirm, res.rounds, metric, space.spec.strategy.sparsest_within)
        if verdict is not None:  # derived from the rows (the report recomputes it): a convenience copy
            exp.join(f"{TABLE}.parquet").write_parquet(pa.Table.from_pandas(verdict.table, preserve_index=False))
    return out
