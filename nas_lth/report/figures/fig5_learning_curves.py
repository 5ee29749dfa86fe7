"""Figure 5: validation learning curves of the best tickets and of the dense network."""

from __future__ import annotations

import pandas as pd

from nas_lth.report.data import Metric, ReportData
from nas_lth.report.figures._common import (
    FigureResult,
    _epoch_axis,
    _figure,
    _legend_below,
    _none,
    _seed_of,
    register,
)

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]  # one per ranked ticket


def _panels(m: Metric) -> list[tuple[str, float, str]]:
    """(curve column, scale, y label) per panel."""
    if m.multilabel:
        return [(m.col("val"), 100.0, "validation micro-F1 (%)"), ("val_micro_precision", 100.0,
                "validation micro-precision (%)"), ("val_micro_recall", 100.0, "validation micro-recall (%)")]
    return [("val_acc", 100.0, "validation accuracy (%)"), ("val_loss", 1.0, "validation loss")]


def _final_run(curve: pd.DataFrame, reinit: str) -> pd.DataFrame:
    """The evaluated run of the last round: the ticket the trial's metrics describe."""
    runs = curve[~curve["run"].isin(["traj", "dense"])]
    if runs.empty:
        return runs
    last = runs[runs["round"] == runs["round"].max()]
    own = last[last["run"] == reinit]
    return (own if not own.empty else last[last["run"] == last["run"].iloc[0]]).sort_values("iteration")


def _best_with_curves(data: ReportData, top: int, missing: list[str]) -> pd.DataFrame:
    """The ``top`` completed tickets by validation value (fewer weights first on ties) that have curve rows."""
    val_col = data.metric.col("val")
    best = data.completed.dropna(subset=[val_col]) if val_col in data.trials else data.completed.iloc[:0]
    best = best.sort_values([val_col, "weights_remaining"], ascending=[False, True])
    best_with = best[best.trial_id.isin(set(data.curves.trial_id))].head(top)
    if best.empty:
        missing.append("no completed tickets")
    elif best_with.empty:
        missing.append("the best tickets have no curve rows")
    elif len(best_with) < min(top, len(best)):
        missing.append(f"only {len(best_with)} of the top {top} tickets have curve rows")
    return best_with


def _draw_tickets(axes: list, panels: list, curves: pd.DataFrame, best_with: pd.DataFrame,
                  missing: list[str]) -> int:
    """One line per ranked ticket in every panel, a triangle at its early-stop iteration; returns how many."""
    drawn = 0
    for rank, row in enumerate(best_with.itertuples(index=False)):
        run = _final_run(curves[curves.trial_id == row.trial_id], row.reinit)
        if run.empty:
            missing.append(f"trial {row.trial_id}: no curve rows of its final (evaluated) run")
            continue
        drawn += 1
        color = PALETTE[rank % len(PALETTE)]
        label = (f"#{rank + 1} {row.criterion}, {row.weights_pct:.3g}% weights, stop_at={row.stop_at} "
                 f"({row.trial_id})")
        for ax, (col, scale, _) in zip(axes, panels, strict=True):
            ax.plot(run.iteration, run[col] * scale, color=color, label=label)
            es = row.early_stop_iter
            if pd.notna(es):
                at = run.iloc[(run.iteration - es).abs().argsort()[:1]]
                ax.plot(at.iteration, at[col] * scale, marker="v", color=color, markersize=7, linestyle="none")
    return drawn


def _draw_dense(axes: list, panels: list, data: ReportData, dense: pd.DataFrame, best_with: pd.DataFrame) -> None:
    tid = dense.trial_id.iloc[0]
    if not best_with.empty:  # prefer the dense run of the best ticket's seed
        seed = _seed_of(data)
        same = [t for t in dense.trial_id.unique() if seed.get(t) == best_with.iloc[0]["seed"]]
        tid = same[0] if same else tid
    d = dense[dense.trial_id == tid].sort_values("iteration")
    for ax, (col, scale, _) in zip(axes, panels, strict=True):
        ax.plot(d.iteration, d[col] * scale, color="black", linestyle=(0, (1, 1.2)), linewidth=1.8,
                label="dense network")


@register(5, "learning_curves")
def learning_curves(data: ReportData, top: int = 3) -> FigureResult:
    m = data.metric
    key, title = "fig5_learning_curves", "Learning curves of the best tickets and the dense network"
    caption = (f"Validation curves of the final training of the top {top} completed tickets (by validation "
               f"{m.label}) and of the dense network (dotted black), against training iterations (epochs on the top "
               "axis); triangles mark each ticket's early-stop iteration."
               + (" Panels: micro-F1, micro-precision, micro-recall." if m.multilabel else ""))
    if data.curves.empty:
        return _none(key, title, caption, "no curves/ folder rows: learning curves not recorded")
    missing: list[str] = []
    best_with = _best_with_curves(data, top, missing)
    dense = data.curves[data.curves["run"] == "dense"]
    if dense.empty:
        missing.append("no dense learning curve (no curve rows with run == 'dense'): dense curve omitted")
    if best_with.empty and dense.empty:
        return _none(key, title, caption, "; ".join(missing))
    panels = [p for p in _panels(m) if p[0] in data.curves and data.curves[p[0]].notna().any()]
    if not panels:
        return _none(key, title, caption, f"the curves have no {m.col('val')} column")
    fig, axes = _figure(ncols=len(panels))
    drawn = _draw_tickets(axes, panels, data.curves, best_with, missing)
    if not dense.empty:
        _draw_dense(axes, panels, data, dense, best_with)
        drawn += 1
    if not drawn:
        return _none(key, title, caption, "; ".join(missing))
    for ax, (_, _, ylabel) in zip(axes, panels, strict=True):
        ax.set_xlabel("training iteration")
        ax.set_ylabel(ylabel)
        _epoch_axis(ax, data.ipe, axis="x")
    _legend_below(fig, axes, ncol=2)
    return FigureResult(key, title, caption, fig, missing=missing)
