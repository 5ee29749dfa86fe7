"""Figure 2: the early-stop iteration of the final ticket training against the weights remaining."""

from __future__ import annotations

import pandas as pd

from nas_lth.report.data import ReportData
from nas_lth.report.figures._common import (
    PANEL,
    FigureResult,
    _dense_line,
    _epoch_axis,
    _figure,
    _lines,
    _none,
    _seed_of,
    _weights_axis,
    criterion_colors,
    register,
)


def _dense_early_stop(data: ReportData) -> pd.Series:
    """The dense network's early-stop iteration, one per seed: a ``dense_early_stop_iter`` column if the search
    recorded one, else the iteration of minimum validation loss of the dense runs in the curves."""
    t = data.trials
    if "dense_early_stop_iter" in t and t["dense_early_stop_iter"].notna().any():
        d = t.dropna(subset=["dense_early_stop_iter"])
        return pd.to_numeric(d.groupby(d["seed"].fillna(-1))["dense_early_stop_iter"].first()).astype(float)
    c = data.curves
    dense = c[c["run"] == "dense"].dropna(subset=["val_loss"])
    if dense.empty:
        return pd.Series(dtype=float)
    best = dense.loc[dense.groupby("trial_id")["val_loss"].idxmin(), ["trial_id", "iteration"]]
    best["seed"] = best["trial_id"].map(_seed_of(data))
    return best.groupby(best["seed"].fillna(-1))["iteration"].first().astype(float)


@register(2, "early_stop_vs_weights")
def early_stop_vs_weights(data: ReportData) -> FigureResult:
    key, title = "fig2_early_stop_vs_weights", "Early-stop iteration vs weights remaining"
    caption = ("Iteration of minimum validation loss (early-stop iteration) of the final ticket training against "
               "weights remaining: winning tickets learn faster (lower is faster). Same encoding as figure 1; "
               "the dense network's early-stop iteration comes from its learning curve.")
    comp = data.completed.dropna(subset=["early_stop_iter", "weights_remaining"])
    if comp.empty:
        return _none(key, title, caption, "no completed trial has an early-stop iteration and weights remaining")
    colors = criterion_colors(data.trials.criterion)
    fig, (ax,) = _figure(width=PANEL[0] + 1.2)
    missing = []
    spread = _lines(ax, comp, "early_stop_iter", 1.0, colors)
    dense = _dense_early_stop(data)
    if dense.empty:
        missing.append("no dense early-stop iteration (no dense_early_stop_iter column, no curve rows with "
                       "run == 'dense')")
    else:
        _dense_line(ax, dense, 1.0)
    _weights_axis(ax, comp.weights_pct)
    ax.set_ylabel("early-stop iteration (training iterations)")
    ax.set_ylim(bottom=0)
    _epoch_axis(ax, data.ipe, axis="y")
    if not spread:
        missing.append("no spread: a single trial per (criterion, weights level)")
    ax.legend(loc="best", frameon=False)
    return FigureResult(key, title, caption, fig, missing=missing)
