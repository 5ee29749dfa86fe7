"""Figures and the HTML/Markdown report of an experiment, from its Parquet tables only.

    python -m nas_lth.report runs/<experiment> [-o OUT_DIR]

writes ``index.html`` (self-contained: figures embedded as data URIs), one PNG per figure and
``summary.md``. By default into the experiment folder itself (``runs/<experiment>/report/``); for an
experiment on remote storage (s3://, gs://, ...) into ``./report-<experiment>/`` in the working directory.
A default folder is written only if the files the report would replace there are its own (from an earlier
report); ``-o`` writes wherever it is told. Nothing is ever deleted. Reads results only: this package never
imports :mod:`nas_lth.strategy`.
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

__all__ = ["FIGURE_KEYS", "Report", "ReportData", "build_report", "default_out_dir", "is_remote", "load"]


@dataclass
class Report:
    out_dir: Path
    html: Path
    markdown: Path
    pngs: list[Path]
    figures: list[FigureResult]
    summary: Summary
    missing: list[str] = field(default_factory=list)  # every gap, in the order the page lists them


def is_remote(experiment_dir: str | os.PathLike) -> bool:
    """A URI of remote storage (s3://, gs://, ...): anything with a scheme but ``file://``."""
    text = str(experiment_dir)
    return "://" in text and not text.startswith("file://")


def default_out_dir(experiment_dir: str | os.PathLike) -> Path:
    """``<experiment>/report`` for a local experiment (as the path was given, relative or not);
    ``report-<name>`` in the working directory for a remote one. The name is taken from the command line
    (the experiment folder's name), never from the tables: a trials table is data, and its ``experiment``
    column could hold ``../x`` or ``/x``."""
    if not is_remote(experiment_dir):
        return Path(os.path.expanduser(str(experiment_dir).removeprefix("file://"))) / "report"
    name = posixpath.basename(str(experiment_dir).rstrip("/"))
    if not valid_name(name):
        raise UserError(f"{experiment_dir}: cannot name a report folder after {name!r}; give one with -o OUT_DIR")
    return Path(f"report-{name}")


# what marks a file as the report's own: the page's title (html.render) and the summary's first line
# (markdown.render); a PNG is the report's own when the page next to it is
PAGE_MARK = "— nas_lth report</title>"
SUMMARY_MARK = "# Lottery-ticket search: "


def _head(path: Path, n: int = 4096) -> str:
    with path.open("rb") as f:
        return f.read(n).decode("utf-8", "replace")


def _foreign(out: Path, names: list[str]) -> str | None:
    """The first of ``names`` in ``out`` that an earlier report did not write (None if there is none)."""
    page = out / "index.html"
    own_page = page.is_file() and PAGE_MARK in _head(page)
    for name in names:
        path = out / name
        if not os.path.lexists(path):
            continue
        if path.is_symlink() or not path.is_file():
            return name
        own = _head(path).startswith(SUMMARY_MARK) if name == "summary.md" else own_page
        if not own:
            return name
    return None


def _check_default_out(out: Path) -> None:
    """A default folder (not chosen with -o) must be new or hold an earlier report: the report never
    replaces someone else's files unasked."""
    if os.path.lexists(out) and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give the report folder with -o OUT_DIR")
    if not out.is_dir():
        return
    foreign = _foreign(out, ["index.html", "summary.md", *(f"{k}.png" for k in FIGURE_KEYS)])
    if foreign is not None:
        raise UserError(f"{out / foreign}: not written by python -m nas_lth.report; refusing to overwrite it - "
                        "give the report folder with -o OUT_DIR (that one, to overwrite)")


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_report(experiment_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Report:
    """Read the experiment, draw the figures and write the page, the PNGs and the Markdown summary into
    ``out_dir`` (default: :func:`default_out_dir`, which must be new or hold an earlier report)."""
    data = load(str(experiment_dir))
    if out_dir is None:
        out = default_out_dir(experiment_dir)
        _check_default_out(out)
    else:
        out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only experiment copy, a file in the way
        raise UserError(f"{out}: cannot create the report folder ({exc.strerror or exc}); "
                        "give another with -o OUT_DIR") from None
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
