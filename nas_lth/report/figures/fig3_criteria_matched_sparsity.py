"""Figure 3: the pruning criteria side by side at matched weights levels (box plots)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from nas_lth.report.data import ReportData
from nas_lth.report.figures._common import (
    SPLIT,
    FigureResult,
    _dense_line,
    _figure,
    _none,
    _series_order,
    criterion_colors,
    register,
    series_label,
)


def _levels(comp: pd.DataFrame, max_levels: int, missing: list[str]) -> list:
    """The weights levels to show, dense first: those holding at least two (criterion, reinit) series (the
    matched comparisons), else every level; at most ``max_levels``, the most populated ones."""
    per_level = comp.groupby("level").apply(lambda g: len(g[["criterion", "reinit"]].drop_duplicates()),
                                            include_groups=False)
    matched = per_level[per_level >= 2].index
    if len(matched) == 0:
        missing.append("no weights level holds more than one criterion: the boxes are not matched comparisons")
        levels = list(comp.level.value_counts().index)
    else:
        levels = list(matched)
    if len(levels) > max_levels:
        counts = comp[comp.level.isin(levels)].level.value_counts()
        levels = list(counts.index[:max_levels])
        missing.append(f"only the {max_levels} most populated weights levels are shown")
    if comp.criterion.nunique() < 2:
        missing.append("a single criterion in this experiment: nothing to compare across criteria")
    return sorted(levels, reverse=True)


def _box(ax, vals: pd.Series, pos: float, width: float, color, control: bool, rng) -> None:
    """One box (hatched for a reinit control) with its trials as jittered dots."""
    bp = ax.boxplot([vals.to_numpy()], positions=[pos], widths=width * 0.85, patch_artist=True,
                    showfliers=False, manage_ticks=False)
    for box in bp["boxes"]:
        box.set(facecolor=(*color[:3], 0.35), edgecolor=color, hatch="//" if control else None)
    for part in ("medians", "whiskers", "caps"):
        for line in bp[part]:
            line.set(color=color)
    ax.scatter(pos + rng.uniform(-width * 0.2, width * 0.2, len(vals)), vals, s=10, color=color,
               zorder=3, edgecolors="none")


def _boxes(ax, comp: pd.DataFrame, col: str, levels: list, series: list, colors: dict) -> list:
    """A group of boxes per level, one box per series; returns the legend patches."""
    width = 0.8 / max(1, len(series))
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same figure
    handles: list = []
    for j, (crit, reinit) in enumerate(series):
        for i, lev in enumerate(levels):
            vals = comp[(comp.level == lev) & (comp.criterion == crit) & (comp.reinit == reinit)][col] * 100.0
            if not vals.empty:
                _box(ax, vals, i - 0.4 + width * (j + 0.5), width, colors[crit], reinit != "original", rng)
        handles.append(Patch(facecolor=(*colors[crit][:3], 0.35), edgecolor=colors[crit],
                             label=series_label(crit, reinit), hatch="//" if reinit != "original" else None))
    return handles


@register(3, "criteria_matched_sparsity")
def criteria_at_matched_sparsity(data: ReportData, max_levels: int = 8) -> FigureResult:
    m = data.metric
    key, title = "fig3_criteria_matched_sparsity", "Criteria compared at matched sparsity"
    col = data.value_column("test") or data.value_column("val")
    split = "test" if col == data.value_column("test") else "val"
    caption = (f"Final {SPLIT[split]} {m.label} per pruning criterion at each weights level (trials whose weights "
               "remaining agree within 10 % form a level), pooled over the other recipe parameters. Boxes: "
               "quartiles and median over trials/seeds; dots: individual trials; hatched boxes: reinit controls.")
    if col is None:
        return _none(key, title, caption, f"no completed trial has a value of {m.label} (validation or test)")
    comp = data.completed.dropna(subset=[col, "level"])
    if comp.empty:
        return _none(key, title, caption, "no completed trial has both weights remaining and a metric value")
    missing: list[str] = []
    levels = _levels(comp, max_levels, missing)
    series = _series_order(comp[comp.level.isin(levels)])
    colors = criterion_colors(data.trials.criterion)
    fig, (ax,) = _figure(width=max(6.0, min(13.0, 1.0 + 0.45 * len(levels) * max(1, len(series)))), height=4.6)
    handles = _boxes(ax, comp, col, levels, series, colors)
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels([f"{lev:.3g} %\n(n={int((comp.level == lev).sum())})" for lev in levels])
    ax.set_xlim(-0.6, len(levels) - 0.4)
    ax.set_xlabel("weights level (weights remaining, dense on the left; n = trials)")
    ax.set_ylabel(f"{SPLIT[split]} {m.label} (%)")
    ax.grid(axis="x", visible=False)
    dense = data.dense(split)
    if not dense.empty:
        handles.append(_dense_line(ax, dense, 100.0))
    ax.legend(handles=handles, loc="best", frameon=False)
    return FigureResult(key, title, caption, fig, missing=missing)
