"""Figures and the HTML/Markdown report of an experiment, from its Parquet tables only.

    python -m nas_lth.report runs/<experiment> [-o reports/<experiment>]

writes ``index.html`` (self-contained: figures embedded as data URIs), one PNG per figure and
``summary.md``. Reads results only: this package never imports :mod:`nas_lth.strategy`.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from nas_lth.errors import UserError
from nas_lth.names import valid_name
from nas_lth.report import html, markdown
from nas_lth.report.data import ReportData, load
from nas_lth.report.figures import FIGURE_KEYS, FigureResult, draw_all
from nas_lth.report.tables import Summary, summarise

__all__ = ["FIGURE_KEYS", "Report", "ReportData", "build_report", "default_out_dir", "load"]


@dataclass
class Report:
    out_dir: Path
    html: Path
    markdown: Path
    pngs: list[Path]
    figures: list[FigureResult]
    summary: Summary
    missing: list[str] = field(default_factory=list)  # every gap, in the order the page lists them


def default_out_dir(experiment_dir: str | os.PathLike) -> Path:
    """``reports/<name>`` with the name taken from the command line (the experiment folder's name), never
    from the tables: a trials table is data, and its ``experiment`` column could hold ``../x`` or ``/x``."""
    name = posixpath.basename(str(experiment_dir).rstrip("/"))
    if not valid_name(name):
        raise UserError(f"{experiment_dir}: cannot name a report folder after {name!r}; give one with -o OUT_DIR")
    return Path("reports") / name


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_report(experiment_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Report:
    """Read the experiment, draw the figures and write the page, the PNGs and the Markdown summary."""
    data = load(str(experiment_dir))
    out = Path(out_dir) if out_dir is not None else default_out_dir(experiment_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = draw_all(data)
    summary = summarise(data)
    missing = list(data.notes)
    for i, fr in enumerate(figures, start=1):
        if fr.figure is None:
            missing.append(f"figure {i} ({fr.title}) not drawn: {fr.reason}")
        missing += [f"figure {i}: {m}" for m in fr.missing]
    missing += summary.missing
    missing = _dedupe(missing)

    pngs, html_figs, md_figs = [], [], []
    for fr in figures:
        path = out / f"{fr.key}.png"
        if fr.figure is None:
            # a same-named PNG from an earlier run stays (the report deletes nothing it did not write in
            # this run: the folder may hold someone's files); the page and summary no longer refer to it
            html_figs.append((fr, None))
            md_figs.append((fr, None))
            continue
        png = fr.png()
        path.write_bytes(png)
        pngs.append(path)
        html_figs.append((fr, png))
        md_figs.append((fr, path.name))
    html_path, md_path = out / "index.html", out / "summary.md"
    html_path.write_text(html.render(data.name, summary, html_figs, missing), encoding="utf-8")
    md_path.write_text(markdown.render(data.name, summary, md_figs, missing), encoding="utf-8")
    return Report(out, html_path, md_path, pngs, figures, summary, missing)
