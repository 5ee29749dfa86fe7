"""Figure 4: early tickets, the accuracy (micro-F1) of a mask against the point at which it was chosen."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nas_lth.report.data import ReportData
from nas_lth.report.figures._common import (
    KNOWN_CRITERIA,
    SPLIT,
    FigureResult,
    _dense_line,
    _epoch_axis,
    _figure,
    _none,
    criterion_colors,
    register,
)


def _stop_order(comp: pd.DataFrame) -> list[str]:
    med = comp.groupby("stop_at")["mask_iter"].median()
    return sorted(comp.stop_at.unique(), key=lambda s: (np.isnan(med.get(s, np.nan)), med.get(s, 0.0), s))


def _caption(label: str, split: str) -> str:
    return (f"Left: mean final {SPLIT[split]} {label} per criterion and stopping point (stop_at: when the mask "
            "is selected; columns ordered by the iteration at which the mask was chosen, which is annotated with "
            "the share of the training budget it took); mean over all weights levels and seeds (n trials). The "
            "colour is the difference from the dense network on a diverging scale centred on it (without a dense "
            "value: centred on the middle of the cells), and the scale is never narrower than the widest min-max "
            "spread of a cell's trials, so differences within the trial-to-trial noise look alike. "
            f"Right: {label} against the iteration at which the mask was chosen (training spent to find it; "
            "epochs on the top axis), mean and min-max per criterion.")


def _tickets(data: ReportData, col: str) -> tuple[pd.DataFrame, str]:
    """The completed trials with a value and a stopping point, or no rows and why. Only the recipe's own
    tickets if there are any: the figure asks when to choose the mask, not how to reinitialise it."""
    comp = data.completed.dropna(subset=[col])
    own = comp[comp.reinit == "original"]
    comp = own if not own.empty else comp
    if comp.empty:
        return comp, "no completed trials"
    comp = comp[comp.stop_at != "?"]
    return comp, "" if not comp.empty else "no completed trial has stop_at recorded"


def _stop_labels(comp: pd.DataFrame, stops: list[str], ipe: float | None) -> list[str]:
    """Each stopping point with the median iteration its masks were chosen at and its share of the budget."""
    budget_iters = None
    if ipe and comp["budget"].notna().any():
        budget_iters = float(comp["budget"].median()) * ipe
    labels = []
    for s in stops:
        mi = comp[comp.stop_at == s]["mask_iter"].median()
        lab = s
        if pd.notna(mi):
            lab += f"\n@{mi:.0f} it"
            if budget_iters:
                lab += f"\n{100 * mi / budget_iters:.0f}% of budget"
        labels.append(lab)
    return labels


def _annotate(ax, im, diff: pd.DataFrame, mean: pd.DataFrame, count: pd.DataFrame) -> None:
    """Write each cell's value and count, in black or white for contrast with its colour."""
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            v = mean.iat[i, j]
            if np.isnan(v):
                continue
            rgba = im.cmap(im.norm(diff.iat[i, j]))
            lum = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
            ax.text(j, i, f"{v:.2f}\nn={int(count.iat[i, j])}", ha="center", va="center", fontsize=8,
                    color="black" if lum > 0.5 else "white")


def color_scale(mean: pd.DataFrame, spread: pd.DataFrame, dense: float | None) -> tuple[float, float]:
    """(centre, half-width) of the heatmap's diverging colour scale, in the cells' unit: centred on the dense
    network (else on the middle of the cell means), at least as wide as the farthest cell and as the widest
    min-max spread of one cell's trials - one seed's noise must not fill the scale."""
    vals = mean.to_numpy(dtype=float)
    vals = vals[~np.isnan(vals)]
    centre = float(dense) if dense is not None and np.isfinite(dense) else float((vals.max() + vals.min()) / 2)
    widest = float(np.nanmax(spread.to_numpy(dtype=float))) if spread.notna().any().any() else 0.0
    half = max(float(np.abs(vals - centre).max()), widest, 0.05)
    return centre, half


def _heatmap(fig, ax, comp: pd.DataFrame, col: str, crits: list[str], stops: list[str], ipe: float | None,
             what: str, dense: float | None) -> None:
    """Left panel: mean value per (criterion, stopping point), coloured by its difference from the dense network
    (see :func:`color_scale`)."""
    pivot = comp.pivot_table(index="criterion", columns="stop_at", values=col, aggfunc=["mean", "min", "max", "size"])
    mean = pivot["mean"].reindex(index=crits, columns=stops) * 100.0
    spread = (pivot["max"] - pivot["min"]).reindex(index=crits, columns=stops) * 100.0
    count = pivot["size"].reindex(index=crits, columns=stops)
    centre, half = color_scale(mean, spread, dense)
    diff = mean - centre
    im = ax.imshow(np.ma.masked_invalid(diff.to_numpy(dtype=float)), cmap="RdBu", vmin=-half, vmax=half,
                   aspect="auto")
    _annotate(ax, im, diff, mean, count)
    ax.set_xticks(range(len(stops)))
    ax.set_xticklabels(_stop_labels(comp, stops, ipe), fontsize=8)
    ax.set_yticks(range(len(crits)))
    ax.set_yticklabels(crits)
    ax.set_xlabel("stopping point of the mask (stop_at)")
    ax.set_title(f"Mean {what} (%) by criterion and stopping point")
    ax.grid(False)
    ref = f"dense network ({centre:.2f} %)" if dense is not None else f"middle of the cells ({centre:.2f} %)"
    fig.colorbar(im, ax=ax, label=f"pp above the {ref}; scale ±{half:.2f} pp", shrink=0.9)


def _vs_mask_iter(ax, data: ReportData, comp: pd.DataFrame, col: str, crits: list[str], split: str) -> None:
    """Right panel: mean and min-max per criterion against the iteration at which the mask was chosen."""
    colors = criterion_colors(data.trials.criterion)
    d = comp.dropna(subset=["mask_iter"])
    for crit in crits:
        g = d[d.criterion == crit].groupby("mask_iter")[col].agg(["mean", "min", "max"]).sort_index() * 100.0
        if g.empty:
            continue
        ax.errorbar(g.index, g["mean"], yerr=[g["mean"] - g["min"], g["max"] - g["mean"]], color=colors[crit],
                    marker="o", capsize=3, label=crit)
    dense = data.dense(split)
    if not dense.empty:
        _dense_line(ax, dense, 100.0)
    ax.set_xlabel("iteration the mask was chosen at")
    ax.set_title("vs the training spent to find the mask", pad=8)
    ax.set_ylabel(f"{SPLIT[split]} {data.metric.label} (%)")
    ax.set_xlim(left=min(0.0, float(d.mask_iter.min())) - 0.02 * max(1.0, float(d.mask_iter.max())))
    _epoch_axis(ax, data.ipe, axis="x")
    ax.legend(loc="best", frameon=False)


@register(4, "early_tickets")
def early_tickets(data: ReportData) -> FigureResult:
    m = data.metric
    key, title = "fig4_early_tickets", f"Early tickets: {m.label} vs the stopping point of the mask"
    col = data.value_column("test") or data.value_column("val")
    split = "test" if col == data.value_column("test") else "val"
    caption = _caption(m.label, split)
    if col is None:
        return _none(key, title, caption, f"no completed trial has a value of {m.label} (validation or test)")
    comp, reason = _tickets(data, col)
    if reason:
        return _none(key, title, caption, reason)
    missing = []
    stops = _stop_order(comp)
    rank = {c: i for i, c in enumerate(KNOWN_CRITERIA)}
    crits = sorted(comp.criterion.unique(), key=lambda c: (rank.get(c, 99), c))
    if len(stops) < 2:
        missing.append(f"a single stopping point (stop_at={stops[0]}): nothing to compare across stopping points")
    has_mask = comp["mask_iter"].notna().any()
    if not has_mask:
        missing.append("no mask_iter recorded: the right panel (accuracy vs mask iteration) is omitted")
    left = max(6.0, 1.6 + 1.1 * len(stops))  # the heatmap grows with the stopping points
    fig, axes = _figure(ncols=2 if has_mask else 1, width=left + (5.4 if has_mask else 0), height=4.6,
                        gridspec_kw={"width_ratios": [left, 5.4]} if has_mask else None)
    dense = data.dense(split)
    _heatmap(fig, axes[0], comp, col, crits, stops, data.ipe, f"{SPLIT[split]} {m.label}",
             100.0 * float(dense.mean()) if not dense.empty else None)
    if has_mask:
        _vs_mask_iter(axes[1], data, comp, col, crits, split)
    return FigureResult(key, title, caption, fig, missing=missing)
