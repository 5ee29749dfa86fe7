"""The report as Markdown (``summary.md``) for a README or a pull request: headline numbers, the top-tickets
table and the figures as image links relative to the Markdown file."""

from __future__ import annotations

import pandas as pd

from nas_lth.report.figures import FigureResult
from nas_lth.report.tables import Summary


def _cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    head = "| " + " | ".join(_cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows]) + "\n"


def render(name: str, summary: Summary, figures: list[tuple[FigureResult, str | None]], missing: list[str]) -> str:
    """``figures`` pairs each result with its PNG file name (relative to the Markdown file) or None."""
    out = [f"# Lottery-ticket search: {name}", ""]
    out += [f"- {h}" for h in summary.headline]
    out += ["", "## Experiment", ""]
    settings = dict(summary.settings)
    for key in ("model", "dataset", "trials", "status", "metric"):
        if key in settings:
            out.append(f"- **{key}**: {settings[key]}")
    if summary.searched:
        out.append("- **searched**: " + "; ".join(f"{k} ∈ {{{v}}}" for k, v in summary.searched))
    if summary.fixed:
        out.append("- **fixed**: " + ", ".join(f"{k}={v}" for k, v in summary.fixed))
    out += ["", "## Top tickets", "", summary.top_text, "", table(summary.top)]
    if not summary.confirmed.empty:
        out += ["## Confirmed", "", summary.confirmed_text, "", table(summary.confirmed)]
        out += [f"- {line}" for line in summary.verdict] + [""]
    out += ["## Figures", ""]
    for i, (fr, png) in enumerate(figures, start=1):
        if png is not None:
            out += [f"**Figure {i}. {fr.title}.** {fr.caption}", "", f"![Figure {i}: {fr.title}]({png})", ""]
            out += [f"> missing: {m}" for m in fr.missing]
            if fr.missing:
                out.append("")
        else:
            out += [f"**Figure {i}. {fr.title}** — not drawn: {fr.reason}.", ""]
    if missing:
        out += ["## What is missing", ""] + [f"- {m}" for m in missing] + [""]
    return "\n".join(out).rstrip() + "\n"
