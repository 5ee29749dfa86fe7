"""Figure 7: the search's progress, objective and best-so-far against the compute spent, and trial outcomes."""

from __future__ import annotations

import pandas as pd

from nas_lth.report.data import ReportData
from nas_lth.report.figures._common import STATUS_COLOR, FigureResult, _figure, register
from nas_lth.store import STATUSES


def _work_axis(t: pd.DataFrame, ipe: float | None) -> tuple[pd.Series, str]:
    """Cumulative training work in finishing order: epochs (iterations_trained / iterations per epoch),
    iterations if the curves do not give the epoch length, epochs_trained if iterations were not recorded."""
    if t["iterations_trained"].notna().any():
        work = t["iterations_trained"].fillna(0.0).cumsum()
        if ipe:
            return work / ipe, "training epochs spent (cumulative, all trials and rounds)"
        return work, "training iterations spent (cumulative, all trials and rounds)"
    return t["epochs_trained"].fillna(0.0).cumsum(), "epochs trained (cumulative)"


def _statuses(t: pd.DataFrame) -> list[str]:
    """The known statuses in their fixed order, then any others found."""
    return [*STATUSES, *sorted(set(t.status) - set(STATUSES))]


def _progress_panel(ax, t: pd.DataFrame, x: pd.Series, xlabel: str, values: pd.Series, done: pd.Series,
                    best: pd.Series, obj_label: str) -> None:
    """Each trial's objective coloured by outcome, and the best so far among completed trials."""
    for status in _statuses(t):
        sel = (t.status == status) & values.notna()
        if sel.any():
            ax.scatter(x[sel], values[sel] * 100, s=20, color=STATUS_COLOR.get(status, "#333333"),
                       label=status, zorder=2, alpha=0.85)
    if done.any():
        ax.plot(x[best.notna()], best[best.notna()] * 100, drawstyle="steps-post", color="black",
                label="best so far (completed)", zorder=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{obj_label} (%)")
    ax.set_xlim(left=0)


def _outcomes_panel(ax, t: pd.DataFrame) -> None:
    names = _statuses(t)
    counts = [int((t.status == s).sum()) for s in names]
    bars = ax.bar(names, counts, color=[STATUS_COLOR.get(s, "#333333") for s in names])
    ax.bar_label(bars, labels=[str(c) for c in counts], padding=2)
    ax.set_ylabel("trials")
    ax.set_title(f"Trial outcomes ({len(t)} trials)")
    ax.set_ylim(0, max(counts) * 1.15 + 0.5)
    ax.grid(axis="x", visible=False)


@register(7, "search_progress")
def search_progress(data: ReportData) -> FigureResult:
    m = data.metric
    key, title = "fig7_search_progress", "Search progress"
    t = data.trials
    obj = "objective" if t["objective"].notna().any() else m.col("val")
    obj_label = (f"validation {m.label}" if obj == m.col("val") or obj == "objective" else obj)
    # x axes. The rows are in finishing order (the modification time of each trial's file, see data.py). The
    # schema has no start/finish timestamps, and file times are lost by copies that do not preserve them, so
    # the time axis is the *cumulative* sum of the trials' own wall_seconds in that order: compute spent by
    # the search so far (trial-seconds; with k parallel trials the wall clock is about 1/k of it). The second
    # axis is cumulative training work (see _work_axis).
    wall = t["wall_seconds"].fillna(0.0).cumsum()
    work, work_label = _work_axis(t, data.ipe)
    caption = (f"Left and middle: each trial's objective ({obj_label}, coloured by outcome) and the best so far among "
               f"completed trials (step line), against the compute spent by the search: cumulative trial wall-clock "
               f"seconds and cumulative training epochs, in finishing order ({data.order_note}). Right: trial "
               "outcomes (stopped = ended early by the scheduler, diverged = loss became non-finite, failed = "
               "error).")
    fig, axes = _figure(ncols=3, width=15.0, height=4.3, gridspec_kw={"width_ratios": [1.2, 1.2, 0.8]})
    missing = []
    if not t["wall_seconds"].notna().any():
        missing.append("no wall_seconds recorded: the time axis is empty")
    values = t[obj]
    done = (t.status == "completed") & values.notna()
    best = values.where(done).cummax()
    _progress_panel(axes[0], t, wall, "search compute (cumulative trial wall-clock seconds)", values, done, best,
                    obj_label)
    _progress_panel(axes[1], t, work, work_label, values, done, best, obj_label)
    if not done.any():
        missing.append("no completed trial: no best-so-far line")
    if not values.notna().any():
        missing.append(f"no trial has an objective value ({obj})")
    _outcomes_panel(axes[2], t)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="best", frameon=False)
    return FigureResult(key, title, caption, fig, missing=missing)
