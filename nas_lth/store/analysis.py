"""Summaries of a trials table: best tickets and the Pareto front (accuracy vs weights remaining).

Only full-fidelity rows count: ASHA hands the searcher a stopped trial's early value, which is not
comparable with a value after the full budget.
"""

from __future__ import annotations

import pandas as pd

from nas_lth.store.schema import RECIPE_COLUMNS


def full_fidelity(trials: pd.DataFrame) -> pd.DataFrame:
    if trials.empty or "status" not in trials:
        return trials
    return trials[trials.status == "completed"]


def pareto_front(trials: pd.DataFrame, acc: str = "val_acc", cost: str = "weights_remaining") -> pd.DataFrame:
    """Rows not dominated in (higher ``acc``, lower ``cost``), sorted by cost."""
    df = full_fidelity(trials).dropna(subset=[acc, cost])
    if df.empty:
        return df
    df = df.sort_values([cost, acc], ascending=[True, False])
    keep, best = [], float("-inf")
    for idx, value in zip(df.index, df[acc], strict=True):
        if value > best:
            keep.append(idx)
            best = value
    return df.loc[keep]


def unique_recipes(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct recipe (a searcher may propose the same one again), with ``trials`` = how
    many trials ran it."""
    cols = [c for c in RECIPE_COLUMNS if c in trials.columns]
    if trials.empty or not cols:
        return trials
    key = pd.util.hash_pandas_object(trials[cols], index=False)  # null-safe row hash
    counts = key.map(key.value_counts())
    return trials.assign(trials=counts)[~key.duplicated()]


def round_tickets(trials: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """Every evaluated pruned round of every ladder (``strategy.fidelity: rounds``) as a ticket row: the trial's
    recipe columns with the round's metrics, ``rounds`` = the round (the recipe that stops there), ``status`` =
    the round's. A ladder's every round is a ticket in its own right: fronts read these, not one row per ladder."""
    if rounds.empty or trials.empty:
        return pd.DataFrame()
    recipe = [c for c in RECIPE_COLUMNS if c in trials.columns and c != "rounds"]
    r = rounds[rounds["round"] >= 1].drop(columns=[c for c in recipe if c in rounds.columns])
    out = r.merge(trials[["trial_id", *recipe]], on="trial_id", how="inner")
    return out.assign(rounds=out["round"])


def ladder_tickets(trials: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """The completed pruned rounds of every ladder as trial-like rows (:func:`round_tickets` with ``status``
    completed), with the trial's other columns too (dense metrics, finishing time, seed, ...): what fronts,
    hypervolumes and constraints read."""
    tickets = round_tickets(trials, rounds)
    if tickets.empty:
        return tickets
    tickets = tickets[tickets.status == "completed"]
    extra = [c for c in trials.columns if c not in tickets.columns]
    return tickets.merge(trials[["trial_id", *extra]], on="trial_id", how="left")


def best_tickets(trials: pd.DataFrame, acc: str = "val_acc", n: int = 5) -> pd.DataFrame:
    df = unique_recipes(full_fidelity(trials).dropna(subset=[acc]))
    return df.sort_values([acc, "weights_remaining"], ascending=[False, True]).head(n)
