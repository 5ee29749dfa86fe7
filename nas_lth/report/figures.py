"""The report's figures, one function per figure.

Each function takes a :class:`~nas_lth.report.data.ReportData` and returns a :class:`FigureResult`: a
matplotlib ``Figure`` (or ``None`` with the reason) plus notes on what is missing from it. Figures are built
with the object-oriented API (``matplotlib.figure.Figure``, rendered by Agg when saved): no pyplot, no
global backend switch, nothing left open.

Conventions shared by the figures (as in Frankle & Carbin 2019): weights remaining on a log axis with the
dense net (100 %) on the left; one colour per pruning criterion; the recipe's own tickets solid, reinit
controls (random_reinit, reshuffle, signed_constant) dashed; a line is the mean over the trials (seeds) at
the same (criterion, reinit, weights level), its band the min-max range; the dense network a grey line.
Metrics are the final ones (end of the budget) of full-fidelity trials (status ``completed``) unless a
caption says otherwise; multi-label experiments use micro-F1 instead of accuracy.
"""

from __future__ import annotations

import io
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from nas_lth.report.data import ReportData
from nas_lth.store import STATUSES
from nas_lth.store.analysis import pareto_front

DPI = 130
STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
    "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 1.6, "lines.markersize": 5,
    "figure.facecolor": "white", "savefig.facecolor": "white",
}
PANEL = (5.4, 4.2)  # inches per panel

KNOWN_CRITERIA = [
    "large_final", "small_final", "large_init", "small_init", "large_init_large_final", "small_init_small_final",
    "magnitude_increase", "movement", "random", "large_final_same_sign", "snip", "grasp", "synflow",
]
REINIT_STYLE = {  # line style, marker
    "original": ("-", "o"),
    "random_reinit": ("--", "s"),
    "reshuffle": ((0, (6, 2, 1.5, 2)), "^"),
    "signed_constant": ((0, (2.5, 1.5)), "D"),
}
STATUS_COLOR = {"completed": "#2a9d55", "stopped": "#e0a020", "diverged": "#d1495b", "failed": "#7d7d7d"}
DENSE_COLOR = "#444444"
SPLIT = {"val": "validation", "test": "test"}


@dataclass
class FigureResult:
    key: str  # file stem of the PNG
    title: str
    caption: str  # what the figure shows
    figure: Figure | None = None
    reason: str = ""  # why there is no figure (figure is None)
    error: bool = False  # the reason is a bug in the report (an exception), not missing data
    missing: list[str] = field(default_factory=list)  # what the drawn figure lacks

    def png(self) -> bytes:
        buf = io.BytesIO()
        assert self.figure is not None
        self.figure.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()


# -- shared helpers --------------------------------------------------------------------------------------


def _figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None,
            **kw) -> tuple[Figure, list]:
    fig = Figure(figsize=(width or PANEL[0] * ncols, height or PANEL[1] * nrows), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, list(axes.flat)


def criterion_colors(criteria) -> dict[str, tuple]:
    """A colour per criterion present: the criteria in DESIGN.md order take tab10's distinct colours first
    (the same experiment always gets the same colours in every figure)."""
    cmap = mpl.colormaps["tab20"]
    palette = [cmap(i) for i in (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)]
    rank = {c: i for i, c in enumerate(KNOWN_CRITERIA)}
    names = sorted(set(criteria), key=lambda c: (rank.get(c, 99), c))
    return {c: palette[i % len(palette)] for i, c in enumerate(names)}


def _style(reinit: str):
    return REINIT_STYLE.get(reinit, ("--", "x"))


def series_label(criterion: str, reinit: str) -> str:
    return criterion if reinit == "original" else f"{criterion} ({reinit})"


def _series_order(df: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = df[["criterion", "reinit"]].drop_duplicates().itertuples(index=False, name=None)
    rank = {c: i for i, c in enumerate(KNOWN_CRITERIA)}
    return sorted(pairs, key=lambda p: (p[1] != "original", rank.get(p[0], 99), p[0], p[1]))


def aggregate(df: pd.DataFrame, ycol: str) -> pd.DataFrame:
    """Mean, min, max and count of ``ycol`` per (criterion, reinit, weights level)."""
    d = df.dropna(subset=[ycol, "level"])
    if d.empty:
        return pd.DataFrame(columns=["criterion", "reinit", "level", "x", "mean", "lo", "hi", "n"])
    return (d.groupby(["criterion", "reinit", "level"])
            .agg(x=("weights_pct", "mean"), mean=(ycol, "mean"), lo=(ycol, "min"), hi=(ycol, "max"),
                 n=(ycol, "size"))
            .reset_index().sort_values("x", ascending=False))


def _lines(ax, df: pd.DataFrame, ycol: str, scale: float, colors: dict) -> bool:
    """Mean line with a min-max band per (criterion, reinit); True if any point has a spread."""
    agg = aggregate(df, ycol)
    spread = False
    for crit, reinit in _series_order(df):
        g = agg[(agg.criterion == crit) & (agg.reinit == reinit)]
        if g.empty:
            continue
        ls, marker = _style(reinit)
        color = colors[crit]
        ax.plot(g.x, g["mean"] * scale, linestyle=ls, marker=marker, color=color, label=series_label(crit, reinit),
                markerfacecolor="white" if reinit != "original" else color)
        if (g.n > 1).any():
            spread = True
            ax.fill_between(g.x, g.lo * scale, g.hi * scale, color=color, alpha=0.15, linewidth=0)
    return spread


_WEIGHT_TICKS = [100, 70, 50, 30, 20, 10, 7, 5, 3, 2, 1, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001]


def _weights_axis(ax, pct: pd.Series) -> None:
    """Log-scaled weights-remaining axis, 100 % on the left."""
    vals = pd.to_numeric(pct, errors="coerce").dropna()
    vals = vals[vals > 0]
    lo = float(vals.min()) if not vals.empty else 1.0
    hi = max(100.0, float(vals.max()) if not vals.empty else 100.0)
    ax.set_xscale("log")
    ax.set_xlim(hi * 1.15, lo / 1.15)
    ticks = [t for t in _WEIGHT_TICKS if lo / 1.15 <= t <= hi * 1.15]
    if len(ticks) < 3:  # a narrow range: label its ends too
        ticks = sorted({*ticks, round(lo, 3), round(hi, 3)}, reverse=True)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weights remaining (%, log scale)")


def _dense_line(ax, values: pd.Series, scale: float, what: str = "dense network") -> Line2D:
    vals = values.dropna() * scale
    mean = float(vals.mean())
    unit = " %" if scale == 100.0 else ""
    label = f"{what} ({mean:.4g}{unit}" + (f", mean of {len(vals)} seeds)" if len(vals) > 1 else ")")
    line = ax.axhline(mean, color=DENSE_COLOR, linestyle=(0, (1, 1.5)), linewidth=1.4, label=label, zorder=1)
    if len(vals) > 1 and vals.max() > vals.min():
        ax.axhspan(float(vals.min()), float(vals.max()), color=DENSE_COLOR, alpha=0.08, linewidth=0, zorder=0)
    return line


def _legend_below(fig: Figure, axes: list, ncol: int = 4) -> None:
    handles, labels, seen = [], [], set()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in seen and not lab.startswith("_"):
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(handles)), frameon=False)


def _epoch_axis(ax, ipe: float | None, axis: str = "x") -> None:
    """A secondary axis in epochs for an axis in iterations."""
    if not ipe:
        return
    if axis == "x":
        sec = ax.secondary_xaxis("top", functions=(lambda it: it / ipe, lambda ep: ep * ipe))
        sec.set_xlabel("epochs")
    else:
        sec = ax.secondary_yaxis("right", functions=(lambda it: it / ipe, lambda ep: ep * ipe))
        sec.set_ylabel("epochs")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _none(key: str, title: str, caption: str, reason: str) -> FigureResult:
    return FigureResult(key, title, caption, None, reason)


def _seed_of(data: ReportData) -> dict:
    """trial id -> seed."""
    t = data.trials.drop_duplicates("trial_id")
    return dict(zip(t.trial_id, t.seed, strict=True))


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


# -- 1. accuracy vs weights remaining ---------------------------------------------------------------------


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


# -- 2. early-stop iteration vs weights remaining ---------------------------------------------------------


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


# -- 3. criteria at matched sparsity ----------------------------------------------------------------------


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
    missing = []
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
    levels = sorted(levels, reverse=True)
    series = _series_order(comp[comp.level.isin(levels)])
    colors = criterion_colors(data.trials.criterion)
    width = 0.8 / max(1, len(series))
    fig, (ax,) = _figure(width=max(6.0, min(13.0, 1.0 + 0.45 * len(levels) * max(1, len(series)))), height=4.6)
    rng = np.random.default_rng(0)
    handles: list = []
    for j, (crit, reinit) in enumerate(series):
        for i, lev in enumerate(levels):
            vals = comp[(comp.level == lev) & (comp.criterion == crit) & (comp.reinit == reinit)][col] * 100.0
            if vals.empty:
                continue
            pos = i - 0.4 + width * (j + 0.5)
            bp = ax.boxplot([vals.to_numpy()], positions=[pos], widths=width * 0.85, patch_artist=True,
                            showfliers=False, manage_ticks=False)
            for box in bp["boxes"]:
                box.set(facecolor=(*colors[crit][:3], 0.35), edgecolor=colors[crit],
                        hatch="//" if reinit != "original" else None)
            for part in ("medians", "whiskers", "caps"):
                for line in bp[part]:
                    line.set(color=colors[crit])
            ax.scatter(pos + rng.uniform(-width * 0.2, width * 0.2, len(vals)), vals, s=10, color=colors[crit],
                       zorder=3, edgecolors="none")
        handles.append(Patch(facecolor=(*colors[crit][:3], 0.35), edgecolor=colors[crit],
                             label=series_label(crit, reinit), hatch="//" if reinit != "original" else None))
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


# -- 4. early tickets: accuracy vs the stopping point of the mask ------------------------------------------


def _stop_order(comp: pd.DataFrame) -> list[str]:
    med = comp.groupby("stop_at")["mask_iter"].median()
    return sorted(comp.stop_at.unique(), key=lambda s: (np.isnan(med.get(s, np.nan)), med.get(s, 0.0), s))


def early_tickets(data: ReportData) -> FigureResult:
    m = data.metric
    key, title = "fig4_early_tickets", f"Early tickets: {m.label} vs the stopping point of the mask"
    col = data.value_column("test") or data.value_column("val")
    split = "test" if col == data.value_column("test") else "val"
    caption = (f"Left: mean final {SPLIT[split]} {m.label} per criterion and stopping point (stop_at: when the mask "
               "is selected; columns ordered by the iteration at which the mask was chosen, which is annotated with "
               "the share of the training budget it took); mean over all weights levels and seeds (n trials). "
               f"Right: {m.label} against the iteration at which the mask was chosen (training spent to find it; "
               "epochs on the top axis), mean and min-max per criterion.")
    if col is None:
        return _none(key, title, caption, f"no completed trial has a value of {m.label} (validation or test)")
    comp = data.completed.dropna(subset=[col])
    own = comp[comp.reinit == "original"]
    comp = own if not own.empty else comp
    if comp.empty:
        return _none(key, title, caption, "no completed trials")
    comp = comp[comp.stop_at != "?"]
    if comp.empty:
        return _none(key, title, caption, "no completed trial has stop_at recorded")
    missing = []
    stops = _stop_order(comp)
    rank = {c: i for i, c in enumerate(KNOWN_CRITERIA)}
    crits = sorted(comp.criterion.unique(), key=lambda c: (rank.get(c, 99), c))
    if len(stops) < 2:
        missing.append(f"a single stopping point (stop_at={stops[0]}): nothing to compare across stopping points")
    has_mask = comp["mask_iter"].notna().any()
    if not has_mask:
        missing.append("no mask_iter recorded: the right panel (accuracy vs mask iteration) is omitted")
    ncols = 2 if has_mask else 1
    fig, axes = _figure(ncols=ncols, width=max(6.0, 1.6 + 1.1 * len(stops)) + (5.4 if has_mask else 0), height=4.6,
                        gridspec_kw={"width_ratios": [max(6.0, 1.6 + 1.1 * len(stops)), 5.4]} if has_mask else None)
    ax = axes[0]
    mean = comp.pivot_table(index="criterion", columns="stop_at", values=col, aggfunc="mean").reindex(
        index=crits, columns=stops) * 100.0
    count = comp.pivot_table(index="criterion", columns="stop_at", values=col, aggfunc="size").reindex(
        index=crits, columns=stops)
    arr = np.ma.masked_invalid(mean.to_numpy(dtype=float))
    im = ax.imshow(arr, cmap="viridis", aspect="auto")
    norm = im.norm
    for i in range(len(crits)):
        for j in range(len(stops)):
            v = mean.iat[i, j]
            if np.isnan(v):
                continue
            rgba = im.cmap(norm(v))
            lum = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
            ax.text(j, i, f"{v:.1f}\nn={int(count.iat[i, j])}", ha="center", va="center", fontsize=8,
                    color="black" if lum > 0.5 else "white")
    budget_iters = None
    if data.ipe and comp["budget"].notna().any():
        budget_iters = float(comp["budget"].median()) * data.ipe
    labels = []
    for s in stops:
        mi = comp[comp.stop_at == s]["mask_iter"].median()
        lab = s
        if pd.notna(mi):
            lab += f"\n@{mi:.0f} it"
            if budget_iters:
                lab += f"\n{100 * mi / budget_iters:.0f}% of budget"
        labels.append(lab)
    ax.set_xticks(range(len(stops)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_yticks(range(len(crits)))
    ax.set_yticklabels(crits)
    ax.set_xlabel("stopping point of the mask (stop_at)")
    ax.set_title(f"Mean {SPLIT[split]} {m.label} (%) by criterion and stopping point")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=f"{SPLIT[split]} {m.label} (%)", shrink=0.9)
    if has_mask:
        ax2 = axes[1]
        colors = criterion_colors(data.trials.criterion)
        d = comp.dropna(subset=["mask_iter"])
        for crit in crits:
            g = d[d.criterion == crit].groupby("mask_iter")[col].agg(["mean", "min", "max"]).sort_index() * 100.0
            if g.empty:
                continue
            ax2.errorbar(g.index, g["mean"], yerr=[g["mean"] - g["min"], g["max"] - g["mean"]], color=colors[crit],
                         marker="o", capsize=3, label=crit)
        dense = data.dense(split)
        if not dense.empty:
            _dense_line(ax2, dense, 100.0)
        ax2.set_xlabel("iteration at which the mask was chosen (training iterations)")
        ax2.set_title("vs the training spent to find the mask")
        ax2.set_ylabel(f"{SPLIT[split]} {m.label} (%)")
        ax2.set_xlim(left=min(0.0, float(d.mask_iter.min())) - 0.02 * max(1.0, float(d.mask_iter.max())))
        _epoch_axis(ax2, data.ipe, axis="x")
        ax2.legend(loc="best", frameon=False)
    return FigureResult(key, title, caption, fig, missing=missing)


# -- 5. learning curves -----------------------------------------------------------------------------------


def _final_run(curve: pd.DataFrame, reinit: str) -> pd.DataFrame:
    """The evaluated run of the last round: the ticket the trial's metrics describe."""
    runs = curve[~curve["run"].isin(["traj", "dense"])]
    if runs.empty:
        return runs
    last = runs[runs["round"] == runs["round"].max()]
    own = last[last["run"] == reinit]
    return (own if not own.empty else last[last["run"] == last["run"].iloc[0]]).sort_values("iteration")


def learning_curves(data: ReportData, top: int = 3) -> FigureResult:
    m = data.metric
    key, title = "fig5_learning_curves", "Learning curves of the best tickets and the dense network"
    val_col = m.col("val")
    if m.multilabel:
        panels = [(val_col, 100.0, "validation micro-F1 (%)"), ("val_micro_precision", 100.0,
                  "validation micro-precision (%)"), ("val_micro_recall", 100.0, "validation micro-recall (%)")]
    else:
        panels = [("val_acc", 100.0, "validation accuracy (%)"), ("val_loss", 1.0, "validation loss")]
    caption = (f"Validation curves of the final training of the top {top} completed tickets (by validation "
               f"{m.label}) and of the dense network (dotted black), against training iterations (epochs on the top "
               "axis); triangles mark each ticket's early-stop iteration."
               + (" Panels: micro-F1, micro-precision, micro-recall." if m.multilabel else ""))
    if data.curves.empty:
        return _none(key, title, caption, "no curves/ folder rows: learning curves not recorded")
    best = data.completed.dropna(subset=[val_col]) if val_col in data.trials else data.completed.iloc[:0]
    best = best.sort_values([val_col, "weights_remaining"], ascending=[False, True])
    have = set(data.curves.trial_id)
    best_with = best[best.trial_id.isin(have)].head(top)
    dense = data.curves[data.curves["run"] == "dense"]
    missing = []
    if best.empty:
        missing.append("no completed tickets")
    elif best_with.empty:
        missing.append("the best tickets have no curve rows")
    elif len(best_with) < min(top, len(best)):
        missing.append(f"only {len(best_with)} of the top {top} tickets have curve rows")
    if dense.empty:
        missing.append("no dense learning curve (no curve rows with run == 'dense'): dense curve omitted")
    if best_with.empty and dense.empty:
        return _none(key, title, caption, "; ".join(missing))
    panels = [p for p in panels if p[0] in data.curves and data.curves[p[0]].notna().any()]
    if not panels:
        return _none(key, title, caption, f"the curves have no {val_col} column")
    fig, axes = _figure(ncols=len(panels))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    drawn = 0
    for rank, row in enumerate(best_with.itertuples(index=False)):
        run = _final_run(data.curves[data.curves.trial_id == row.trial_id], row.reinit)
        if run.empty:
            missing.append(f"trial {row.trial_id}: no curve rows of its final (evaluated) run")
            continue
        drawn += 1
        label = (f"#{rank + 1} {row.criterion}, {row.weights_pct:.3g}% weights, stop_at={row.stop_at} "
                 f"({row.trial_id})")
        for ax, (col, scale, _) in zip(axes, panels, strict=True):
            ax.plot(run.iteration, run[col] * scale, color=palette[rank % len(palette)], label=label)
            es = row.early_stop_iter
            if pd.notna(es):
                at = run.iloc[(run.iteration - es).abs().argsort()[:1]]
                ax.plot(at.iteration, at[col] * scale, marker="v", color=palette[rank % len(palette)],
                        markersize=7, linestyle="none")
    if not dense.empty:
        tid = dense.trial_id.iloc[0]
        if not best_with.empty:  # prefer the dense run of the best ticket's seed
            seed = _seed_of(data)
            same = [t for t in dense.trial_id.unique() if seed.get(t) == best_with.iloc[0]["seed"]]
            tid = same[0] if same else tid
        d = dense[dense.trial_id == tid].sort_values("iteration")
        drawn += 1
        for ax, (col, scale, _) in zip(axes, panels, strict=True):
            ax.plot(d.iteration, d[col] * scale, color="black", linestyle=(0, (1, 1.2)), linewidth=1.8,
                    label="dense network")
    if not drawn:
        return _none(key, title, caption, "; ".join(missing))
    for ax, (_, _, ylabel) in zip(axes, panels, strict=True):
        ax.set_xlabel("training iteration")
        ax.set_ylabel(ylabel)
        _epoch_axis(ax, data.ipe, axis="x")
    _legend_below(fig, axes, ncol=2)
    return FigureResult(key, title, caption, fig, missing=missing)


# -- 6. Pareto front ---------------------------------------------------------------------------------------


def pareto(data: ReportData) -> FigureResult:
    m = data.metric
    key, title = "fig6_pareto", f"Pareto front: validation {m.label} vs weights remaining and vs compute"
    col = m.col("val")
    trials = data.trials
    cost2 = next((c for c in ("iterations_trained", "wall_seconds") if trials[c].notna().any()), None)
    cost2_label = {"iterations_trained": "training iterations spent by the trial (all rounds, log scale)",
                   "wall_seconds": "wall-clock seconds of the trial (log scale)"}.get(cost2 or "", "")
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
    panels, missing = [], []
    if comp["weights_remaining"].notna().any():
        panels.append(("weights_remaining", "weights remaining (%, log scale)"))
    else:
        missing.append("no completed trial has weights_remaining: the weights panel is omitted")
    if cost2:
        panels.append((cost2, cost2_label))
    else:
        missing.append("no compute column (iterations_trained, wall_seconds): the compute panel is omitted")
    if not panels:
        return _none(key, title, caption, "; ".join(missing))
    fig, axes = _figure(ncols=len(panels))
    for ax, (cost, xlabel) in zip(axes, panels, strict=True):
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
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"validation {m.label} (%)")
    _legend_below(fig, axes)
    return FigureResult(key, title, caption, fig, missing=missing)


# -- 7. search progress ------------------------------------------------------------------------------------


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
    # axis is cumulative training epochs (iterations_trained / iterations per epoch; iterations if the curves
    # do not give the epoch length; epochs_trained if iterations were not recorded).
    wall = t["wall_seconds"].fillna(0.0).cumsum()
    if t["iterations_trained"].notna().any():
        work = t["iterations_trained"].fillna(0.0).cumsum()
        if data.ipe:
            work, work_label = work / data.ipe, "training epochs spent (cumulative, all trials and rounds)"
        else:
            work_label = "training iterations spent (cumulative, all trials and rounds)"
    else:
        work, work_label = t["epochs_trained"].fillna(0.0).cumsum(), "epochs trained (cumulative)"
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
    for ax, x, xlabel in ((axes[0], wall, "search compute (cumulative trial wall-clock seconds)"),
                          (axes[1], work, work_label)):
        for status in [*STATUSES, *sorted(set(t.status) - set(STATUSES))]:
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
    if not done.any():
        missing.append("no completed trial: no best-so-far line")
    if not values.notna().any():
        missing.append(f"no trial has an objective value ({obj})")
    ax = axes[2]
    names = [*STATUSES, *sorted(set(t.status) - set(STATUSES))]
    counts = [int((t.status == s).sum()) for s in names]
    bars = ax.bar(names, counts, color=[STATUS_COLOR.get(s, "#333333") for s in names])
    ax.bar_label(bars, labels=[str(c) for c in counts], padding=2)
    ax.set_ylabel("trials")
    ax.set_title(f"Trial outcomes ({len(t)} trials)")
    ax.set_ylim(0, max(counts) * 1.15 + 0.5)
    ax.grid(axis="x", visible=False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(loc="best", frameon=False)
    return FigureResult(key, title, caption, fig, missing=missing)


FIGURES: list[Callable[[ReportData], FigureResult]] = [
    accuracy_vs_weights, early_stop_vs_weights, criteria_at_matched_sparsity, early_tickets, learning_curves,
    pareto, search_progress,
]
FIGURE_KEYS = [
    "fig1_accuracy_vs_weights", "fig2_early_stop_vs_weights", "fig3_criteria_matched_sparsity", "fig4_early_tickets",
    "fig5_learning_curves", "fig6_pareto", "fig7_search_progress",
]


def draw_all(data: ReportData) -> list[FigureResult]:
    """Every figure, in order. A figure that cannot be drawn comes back with ``figure=None`` and a reason."""
    out = []
    for fn, key in zip(FIGURES, FIGURE_KEYS, strict=True):
        try:
            with mpl.rc_context(STYLE):
                out.append(fn(data))
        except Exception as exc:  # one broken figure must not cost the rest of the report
            traceback.print_exc(file=sys.stderr)
            title = key.split("_", 1)[1].replace("_", " ")
            out.append(FigureResult(key, title, "", None, f"error while drawing ({type(exc).__name__}: {exc}); "
                                    "please report it with the experiment's Parquet files", error=True))
    return out
