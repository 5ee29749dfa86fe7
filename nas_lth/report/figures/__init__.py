"""The report's figures, one module per figure.

Each figure module registers one function in :data:`FIGURES` with ``@register(number, name)``; it takes a
:class:`~nas_lth.report.data.ReportData` and returns a :class:`FigureResult`: a matplotlib ``Figure`` (or
``None`` with the reason) plus notes on what is missing from it. The number is the figure's place in the
report, so adding a figure is one module here (every module is imported) and its test. Figures are built with the
object-oriented API (``matplotlib.figure.Figure``, rendered by Agg when saved): no pyplot, no global backend
switch, nothing left open.

Conventions shared by the figures (as in Frankle & Carbin 2019): weights remaining on a log axis with the
dense net (100 %) on the left; one colour per pruning criterion; the recipe's own tickets solid, reinit
controls (random_reinit, reshuffle, signed_constant) dashed; a line is the mean over the trials (seeds) at
the same (criterion, reinit, weights level), its band the min-max range; the dense network a grey line.
Metrics are the final ones (end of the budget) of full-fidelity trials (status ``completed``) unless a
caption says otherwise; multi-label experiments use micro-F1 instead of accuracy.
"""

from __future__ import annotations

import sys
import traceback

import matplotlib as mpl

from nas_lth.registry import import_submodules
from nas_lth.report.data import ReportData
from nas_lth.report.figures._common import (
    DPI,
    FIGURES,
    STYLE,
    FigureResult,
    FigureSpec,
    aggregate,
    criterion_colors,
    ordered,
    register,
    series_label,
)

# importing a figure module registers its figure
from nas_lth.report.figures.fig1_accuracy_vs_weights import accuracy_vs_weights
from nas_lth.report.figures.fig2_early_stop_vs_weights import early_stop_vs_weights
from nas_lth.report.figures.fig3_criteria_matched_sparsity import criteria_at_matched_sparsity
from nas_lth.report.figures.fig4_early_tickets import early_tickets
from nas_lth.report.figures.fig5_learning_curves import learning_curves
from nas_lth.report.figures.fig6_pareto import pareto
from nas_lth.report.figures.fig7_search_progress import search_progress

__all__ = [
    "DPI", "FIGURES", "FIGURE_KEYS", "STYLE", "FigureResult", "FigureSpec", "accuracy_vs_weights", "aggregate",
    "criteria_at_matched_sparsity", "criterion_colors", "draw_all", "early_stop_vs_weights", "early_tickets",
    "learning_curves", "ordered", "pareto", "register", "search_progress", "series_label",
]

import_submodules(__name__, __path__, skip=("_common",))  # figures beyond the seven named above
FIGURE_KEYS = [spec.key for spec in ordered()]


def draw_all(data: ReportData) -> list[FigureResult]:
    """Every figure, in order. A figure that cannot be drawn comes back with ``figure=None`` and a reason."""
    out = []
    for spec in ordered():
        try:
            with mpl.rc_context(STYLE):
                out.append(spec.draw(data))
        except Exception as exc:  # one broken figure must not cost the rest of the report
            traceback.print_exc(file=sys.stderr)
            title = spec.key.split("_", 1)[1].replace("_", " ")
            out.append(FigureResult(spec.key, title, "", None, f"error while drawing ({type(exc).__name__}: {exc}); "
                                    "please report it with the experiment's Parquet files", error=True))
    return out
