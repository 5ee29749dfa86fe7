"""Figure 6: the Pareto front of the completed tickets, value against weights remaining and against compute."""

from __future__ import annotations

import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from nas_lth.report.data import ReportData
from nas_lth.report.figures._common import (
    DENSE_COLOR,
    FigureResult,
    _figure,
    _legend_below,
    _none,
    _weights_axis,
    criterion_colors,
    register,
)
from nas_lth.store.analysis import pareto_front

COST_LABEL = {"iterations_trained": "training iterations spent by the trial (all rounds, log scale)",
              "wall_seconds": "wall-clock seconds of the trial (log scale)"}


def _panels(comp: pd.DataFrame, trials: pd.DataFrame, missing: list[str]) -> list[tuple[str, str]]:
    """(cost column, x label) per panel: weights remaining, and compute (iterations if recorded, else seconds)."""
    cost2 = next((c for c in ("iterations_trained", "wall_seconds") if trials[c].notna().any()), None)
    panels = []
    if comp["weights_remaining"].notna().any():
        panels.append(("weights_remaining", "weights remaining (%, log scale)"))
    else:
        missing.append("no completed trial has weights_remaining: the weights panel is omitted")
    if cost2:
        panels.append((cost2, COST_LABEL[cost2]))
    else:
        missing.append("no compute column (iterations_trained, wall_seconds): the compute panel is omitted")
    return panels


def _panel(ax, data: ReportData, comp: pd.DataFrame, cost: str, colors: dict) -> None:
    """Every trial in grey, the completed ones by criterion, the front as a step line."""
    col, trials = data.metric.col("val"), data.trials
    scale = 100.0 if cost == "weights_remaining" else 1.0
    allv = trials.dropna(subset=[col, cost])
    allv = allv[allv[cost] > 0]
    ax.scatter(allv[cost] * scale, allv[col] * 100, s=18, color="#cccccc", label="all trials", zorder=1)
    for crit in sorted(comp.criterion.unique()):
        g = comp[comp.criterion == crit].dropna(subset=[cost])
        ax.scatter(g[cost] * scale, g[col] * 100, s=22, color=colors[crit], label=crit, zorder=2,
                   edgecolors="white", linewidths=0.5)
    front = pareto_front(trials, acc=col, cost=cost)
    front = front[front[cost] > 0]
    if not front.empty:
        ax.plot(front[cost] * scale, front[col] * 100, color="black", drawstyle="steps-post", linewidth=1.3,
                marker="o", markerfacecolor="none", markersize=9, label="Pareto front", zorder=3)
    ax.set_title(f"vs {'weights remaining' if cost == 'weights_remaining' else 'compute'} "
                 f"({len(front)} tickets on the front)")
    if cost == "weights_remaining":
        dense = data.dense("val")
        if not dense.empty:
            ax.scatter([100.0], [dense.mean() * 100], marker="*", s=140, color=DENSE_COLOR, zorder=4,
                       label="dense network")
        _weights_axis(ax, pd.concat([allv[cost] * 100, pd.Series([100.0])]))
    else:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


@register(6, "pareto")
def pareto(data: ReportData) -> FigureResult:
    m = data.metric
    key, title = "fig6_pareto", f"Pareto front: validation {m.label} vs weights remaining and vs compute"
    col = m.col("val")
    trials = data.trials
    caption = (f"Non-dominated full-budget tickets (higher validation {m.label}, fewer weights / less compute): "
               "the validation metric is what the search optimises, so the front is not selected on test data. "
               "Light grey: every trial with a value (including stopped and diverged ones, whose metric is not at "
               "full budget); coloured: completed trials by criterion; black step line: the Pareto front.")
    if col not in trials or not trials[col].notna().any():
        return _none(key, title, caption, f"no trial has a value of validation {m.label} (column {col})")
    comp = data.completed.dropna(subset=[col])
    if comp.empty:
        return _none(key, title, caption, "no completed (full-budget) trials: no Pareto front")
    colors = criterion_colors(trials.criterion)
    missing: list[str] = []
    panels = _panels(comp, trials, missing)
    if not panels:
        return _none(key, title, caption, "; ".join(missing))
    fig, axes = _figure(ncols=len(panels))
    for ax, (cost, xlabel) in zip(axes, panels, strict=True):
        _panel(ax, data, comp, cost, colors)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"validation {m.label} (%)")
    _legend_below(fig, axes)
    return FigureResult(key, title, caption, fig, missing=missing)
