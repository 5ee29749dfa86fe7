"""What the figures share: style, colours, axes helpers, :class:`FigureResult` and the figure registry.

Each figure module registers one drawing function with :func:`register`; its number fixes the report's order.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from nas_lth.registry import Registry
from nas_lth.report.data import ReportData

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
        # tight: nothing a figure draws (a long axis label, a title above a secondary axis) is cut off
        self.figure.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
        return buf.getvalue()


# -- shared helpers --------------------------------------------------------------------------------------


def _figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None,
            **kw) -> tuple[Figure, list]:
    fig = Figure(figsize=(width or PANEL[0] * ncols, height or PANEL[1] * nrows), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, list(axes.flat)


def criterion_colors(criteria) -> dict[str, tuple]:
    """A colour per criterion present: the criteria in the order of docs/design.md take tab10's distinct colours
    first (the same experiment always gets the same colours in every figure)."""
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


# -- the registry ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureSpec:
    number: int  # position in the report ("Figure 3.")
    key: str  # PNG file stem and registry name: fig<number>_<name>
    draw: Callable[[ReportData], FigureResult]


FIGURES: Registry[FigureSpec] = Registry("figure")


def register(number: int, name: str):
    """Decorator: the function draws figure ``number``, saved as ``fig<number>_<name>.png``. A name or a number
    registered twice is refused (``ValueError`` at import), so two figures cannot overwrite one PNG or one slot."""
    key = f"fig{number}_{name}"

    def deco(fn: Callable[[ReportData], FigureResult]):
        clash = [s.key for s in FIGURES.values() if s.number == number and s.key != key]
        if clash:
            raise ValueError(f"figure number {number} registered twice ({clash[0]}, {key})")
        FIGURES.add(key, FigureSpec(number, key, fn))
        return fn

    return deco


def ordered() -> list[FigureSpec]:
    """The registered figures in report order; the numbers must run 1..n, as the page numbers them that way."""
    specs = sorted(FIGURES.values(), key=lambda s: s.number)
    if [s.number for s in specs] != list(range(1, len(specs) + 1)):
        raise ValueError(f"figure numbers must run 1..{len(specs)}: {[s.key for s in specs]}")
    return specs
