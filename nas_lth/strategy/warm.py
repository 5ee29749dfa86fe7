"""Warm start: the completed trials of an earlier experiment enter a new search's Optuna study.

Each distinct completed recipe of the old trials table becomes a ``COMPLETE`` Optuna trial with the
new space's distributions (``study.add_trial``), so TPE starts from what is known. Only experiments
over the same fixed recipe qualify (a different budget or model would feed values of another
question), and every searched value must lie in the new space; anything else is a one-line error
naming the key, before Ray starts and before anything is stored.
"""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pandas as pd

from nas_lth.errors import UserError
from nas_lth.recipe import parse_stop_at
from nas_lth.space.optuna_space import distribution
from nas_lth.space.schema import Dimension, SearchSpace
from nas_lth.store import read
from nas_lth.store.analysis import unique_recipes
from nas_lth.store.schema import RECIPE_COLUMNS


def _column(key: str) -> str:
    return key.replace(".", "_")


def _stored(row: dict, key: str) -> Any:
    """The stored value of a searched key: its own column, or for a key inside a mapping stored as JSON text
    (``model_options.hidden``, ``dataset_options.max_len``) the value inside that column; None if absent."""
    if _column(key) in row:
        return row[_column(key)]
    head, _, rest = key.partition(".")
    text = row.get(head)
    if not rest or not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    for part in rest.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _same(a, b) -> bool:
    if isinstance(a, int | float) and not isinstance(a, bool) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def _value(key: str, dim: Dimension, stored, where: str) -> Any:
    """The stored cell as a value of ``dim`` (the stop_at column holds its label, e.g. '20', '0.5ep')."""
    if dim.kind == "choice":
        label = (lambda c: parse_stop_at(c).label()) if key == "stop_at" else (lambda c: c)
        for c in dim.choice:
            if _same(label(c), stored):
                return c
        raise UserError(f"{where}: search.{key} = {stored!r} is not one of this space's choices {list(dim.choice)}")
    v = float(stored)
    lo, hi = dim.int_ if dim.kind == "int" else dim.float_
    if not lo <= v <= hi:
        raise UserError(f"{where}: search.{key} = {stored!r} is outside this space's range [{lo}, {hi}]")
    return int(round(v)) if dim.kind == "int" else v


def _check_fixed(space: SearchSpace, trials: pd.DataFrame, old: str) -> None:
    for key, value in space.fixed_flat().items():
        col = _column(key)
        if col not in RECIPE_COLUMNS or col not in trials or isinstance(value, dict):
            continue
        there = [v for v in trials[col].dropna().unique()]
        if key == "stop_at":
            value = parse_stop_at(value).label()
        if there and not all(_same(value, v) for v in there):
            raise UserError(f"--warm-start {old}: fixed.{key} is {value!r} here but {there[:3]} there; an "
                            "experiment over another fixed recipe cannot warm-start this one")


def warm_trials(space: SearchSpace, old: str) -> list[optuna.trial.FrozenTrial]:
    """The distinct completed recipes of experiment ``old`` as trials of ``space``'s study."""
    try:
        trials = read(old).trials
    except UserError as exc:  # the reader's own line names the path and what is wrong
        raise UserError(f"--warm-start {exc}") from None
    except Exception as exc:  # noqa: BLE001 - missing folder, unreadable tables: one line
        raise UserError(f"--warm-start {old}: cannot read its trials table ({str(exc).splitlines()[0]})") from None
    if trials.empty or not {"trial_id", "status", "objective"} <= set(trials):
        raise UserError(f"--warm-start {old}: not a nas_lth experiment with finished trials (no trial rows)")
    _check_fixed(space, trials, old)
    done = trials[(trials.status == "completed") & ~trials.message.fillna("").str.startswith("same recipe")]
    fixed = space.fixed_flat()
    out = []
    for row in unique_recipes(done).to_dict("records"):
        where = f"--warm-start {old}: trial {row['trial_id']}"
        params, dists = {}, {}
        for key, dim in space.dims.items():
            if not dim.matches({**fixed, **params}):
                continue
            stored = _stored(row, key)
            if stored is None or (isinstance(stored, float) and math.isnan(stored)):
                raise UserError(f"{where}: search.{key} has no value there (another space)")
            params[key], dists[key] = _value(key, dim, stored, where), distribution(dim)
        out.append(optuna.trial.create_trial(  # Optuna holds a choice of lists as JSON text (Dimension.encode)
            state=optuna.trial.TrialState.COMPLETE, value=float(row["objective"]),
            params={k: space.dims[k].encode(v) for k, v in params.items()},
            distributions=dists, user_attrs={"warm_start_from": f"{old}#{row['trial_id']}"}))
    return out
