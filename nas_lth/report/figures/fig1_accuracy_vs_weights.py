"""Figure 1: test and validation accuracy (micro-F1) of the tickets against the weights remaining."""

from __future__ import annotations

from nas_lth.report.data import ReportData
from nas_lth.report.figures._common import (
    SPLIT,
    FigureResult,
    _cap,
    _dense_line,
    _figure,
    _legend_below,
    _lines,
    _none,
    _weights_axis,
    criterion_colors,
    register,
)


@register(1, "accuracy_vs_weights")
def accuracy_vs_weights(data: ReportData) -> FigureResult:
    m = data.metric
    key, title = "fig1_accuracy_vs_weights", f"{_cap(m.label)} vs weights remaining"
    caption = (f"Final test and validation {m.label} of the tickets (full-budget trials) against the fraction of "
               "weights remaining (log scale, dense on the left). Lines: mean over trials/seeds at the same "
               "(criterion, weights level); bands: min-max range; dashed/open markers: reinit controls of the same "
               "masks; dotted grey line: the dense network.")
    comp = data.completed
    panels = [(s, c) for s in ("test", "val") if (c := data.value_column(s))]
    if comp.empty:
        return _none(key, title, caption, "no completed (full-budget) trials yet")
    comp = comp.dropna(subset=["weights_remaining"])
    if comp.empty:
        return _none(key, title, caption, "no completed trial has weights_remaining recorded")
    if not panels:
        return _none(key, title, caption, f"no completed trial has a value of {m.label} (validation or test)")
    colors = criterion_colors(data.trials.criterion)
    fig, axes = _figure(ncols=len(panels))
    missing, spread = [], False
    for ax, (split, col) in zip(axes, panels, strict=True):
        spread |= _lines(ax, comp, col, 100.0, colors)
        dense = data.dense(split)
        if dense.empty:
            missing.append(f"no dense reference for the {SPLIT[split]} {m.label}")
        else:
            _dense_line(ax, dense, 100.0)
        _weights_axis(ax, comp.weights_pct)
        ax.set_ylabel(f"{SPLIT[split]} {m.label} (%)")
        ax.set_title(f"{_cap(SPLIT[split])} {m.label}")
    if "test" not in dict(panels):
        missing.append(f"no test {m.label} recorded: only the validation panel is drawn")
    if not spread:
        missing.append("no spread: a single trial per (criterion, weights level); more seeds give the min-max bands")
    _legend_below(fig, axes)
    return FigureResult(key, title, caption, fig, missing=missing)
