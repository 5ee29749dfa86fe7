"""Multi-objective bookkeeping on plain arrays: non-dominated sorting, crowding distance, hypervolume.

Every function takes points to *minimise* (an objective to maximise enters negated), one row per point.
The scheduler (MO-ASHA's rung decisions) and the readers (fronts and hypervolume in summary and report) use
the same definitions.
"""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def nondominated_ranks(points) -> np.ndarray:
    """Front index of every point: 0 for the non-dominated ones, 1 for those dominated only by front 0, ..."""
    p = np.asarray(points, dtype=float)
    n = len(p)
    ranks = np.full(n, -1)
    left, r = set(range(n)), 0
    while left:
        front = [i for i in left if not any(dominates(p[j], p[i]) for j in left if j != i)]
        for i in front:
            ranks[i] = r
        left -= set(front)
        r += 1
    return ranks


def crowding(points) -> np.ndarray:
    """NSGA-II's crowding distance within one front (the extremes of each objective get infinity)."""
    p = np.asarray(points, dtype=float)
    n, m = p.shape if p.ndim == 2 else (len(p), 0)
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(p[:, k], kind="stable")
        span = p[order[-1], k] - p[order[0], k]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (p[order[2:], k] - p[order[:-2], k]) / span
    return d


def ranking(points) -> np.ndarray:
    """Indices from best to worst: by front, then by crowding distance (larger first), then by index."""
    p = np.asarray(points, dtype=float)
    ranks = nondominated_ranks(p)
    crowd = np.zeros(len(p))
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding(p[idx])
    return np.array(sorted(range(len(p)), key=lambda i: (ranks[i], -crowd[i], i)), dtype=int)


def hypervolume(points, ref) -> float:
    """Volume dominated by ``points`` (to minimise) and bounded by the reference point ``ref``; points not
    better than ``ref`` in every objective add nothing. Exact, by slicing along the first objective."""
    p = np.asarray(points, dtype=float).reshape(-1, len(ref))
    ref = np.asarray(ref, dtype=float)
    p = p[np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    if p.shape[1] == 1:
        return float(ref[0] - p[:, 0].min())
    p = p[np.argsort(p[:, 0], kind="stable")]
    volume = 0.0
    for i in range(len(p)):  # slab between this point's first coordinate and the next one's (or ref)
        upper = p[i + 1, 0] if i + 1 < len(p) else ref[0]
        if upper > p[i, 0]:
            volume += (upper - p[i, 0]) * hypervolume(p[: i + 1, 1:], ref[1:])
    return float(volume)


# ------------------------------------------------------------------ on a trials table

DEFAULT_WEIGHTS_REFERENCE = 0.5  # a ticket counts once it halves the network
DEFAULT_BELOW_DENSE = 0.05  # ... and stays within 5 points of the dense network's validation metric


def reference_point(df, objectives: list[tuple[str, str]], references: dict | None = None) -> dict[str, float]:
    """The hypervolume's reference value of each objective, in the metric's units: the space's (an objective's
    ``reference``), else the default. Defaults: a validation metric to maximise, the dense network's value
    (median of the rows' ``dense_<metric>``) minus 0.05, or 0 without one; ``weights_remaining`` 0.5; a count
    (``iterations_trained``, ``mask_iter``) or ``latency_ms``, 1.1x its largest value in ``df``. (A reference of
    accuracy 0 and all the weights let one near-useless, very sparse ticket hold most of a front's volume.)"""
    out = {}
    for metric, mode in objectives:
        given = (references or {}).get(metric)
        if given is not None:
            out[metric] = float(given)
        elif metric == "weights_remaining":
            out[metric] = DEFAULT_WEIGHTS_REFERENCE
        elif metric.startswith("val_"):
            dense = df[f"dense_{metric}"].astype(float).dropna() if f"dense_{metric}" in df else []
            if mode == "min":
                out[metric] = 1.0
            else:
                out[metric] = max(0.0, float(np.median(dense)) - DEFAULT_BELOW_DENSE) if len(dense) else 0.0
        else:
            x = df[metric].astype(float).to_numpy() if metric in df else np.array([])
            out[metric] = 1.1 * float(np.nanmax(np.abs(x))) if len(x) and np.isfinite(x).any() else 1.0
    return out


def objective_points(df, objectives: list[tuple[str, str]], references: dict | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``df`` as points to minimise, with the reference point for their hypervolume
    (:func:`reference_point`): a metric to maximise enters negated, ``weights_remaining`` as log10 (each factor
    of 10 fewer weights counts the same)."""
    ref_values = reference_point(df, objectives, references)
    cols, ref = [], []
    for metric, mode in objectives:
        x, r = df[metric].astype(float).to_numpy(), ref_values[metric]
        if metric == "weights_remaining":
            cols.append(np.log10(np.clip(x, 1e-12, None)))
            ref.append(float(np.log10(r)))
        else:
            cols.append(-x if mode == "max" else x)
            ref.append(-r if mode == "max" else r)
    return (np.column_stack(cols) if cols else np.zeros((len(df), 0))), np.array(ref)


def front(df, objectives: list[tuple[str, str]]):
    """The non-dominated rows of ``df`` (rows with a missing objective left out)."""
    df = df.dropna(subset=[m for m, _ in objectives])
    if df.empty:
        return df
    pts, _ = objective_points(df, objectives)
    return df[nondominated_ranks(pts) == 0]


def hypervolume_of(df, objectives: list[tuple[str, str]], ref=None, references: dict | None = None) -> float:
    df = df.dropna(subset=[m for m, _ in objectives])
    if df.empty:
        return 0.0
    pts, default = objective_points(df, objectives, references)
    return hypervolume(pts, default if ref is None else ref)


def hypervolume_curve(trials, objectives: list[tuple[str, str]], references: dict | None = None,
                      constraints: list | None = None, tickets=None):
    """(epochs spent, hypervolume of the tickets finished by then), one point per finished trial, in finishing
    order; epochs count every trial (stopped and infeasible ones too), from ``iterations_trained``. The tickets
    are the completed rows of ``trials``, or ``tickets`` (rows with a ``trial_id``: a ladder's every round,
    :func:`nas_lth.store.analysis.ladder_tickets`), counted once their trial has finished; tickets that miss a
    constraint add no volume. The reference point is the same at every step, from all the tickets."""
    import pandas as pd

    from nas_lth.store.constraints import feasible_rows

    if trials.empty or "finished_at" not in trials:
        return pd.DataFrame(columns=["epochs", "hypervolume"])
    t = trials.sort_values("finished_at")
    ipe = t["iterations_per_epoch"].astype(float) if "iterations_per_epoch" in t else np.nan
    epochs = (t["iterations_trained"].astype(float).fillna(0) / ipe).fillna(0).cumsum()
    pool = t[t["status"] == "completed"] if tickets is None else tickets
    pool = pool.dropna(subset=[m for m, _ in objectives])
    if pool.empty:
        return pd.DataFrame({"epochs": epochs.to_numpy(), "hypervolume": 0.0})
    _, ref = objective_points(pool, objectives, references)  # from every ticket, before the constraints
    pool = feasible_rows(pool, constraints or [])
    order = list(t["trial_id"])
    hv = [hypervolume_of(pool[pool["trial_id"].isin(order[: i + 1])], objectives, ref) for i in range(len(t))]
    return pd.DataFrame({"epochs": epochs.to_numpy(), "hypervolume": hv})


def curve_marks(curve, quantiles=(0.25, 0.5, 0.75, 1.0)) -> list:
    """The rows of a hypervolume curve at these fractions of its length (the summary's and report's excerpt)."""
    return [curve.iloc[min(len(curve) - 1, int(q * len(curve)))] for q in quantiles]
