"""The report as one self-contained HTML page: figures as base64 PNG data URIs, inline CSS, no script and
no external resource (it opens from a mail attachment or an artifact store as it is)."""

from __future__ import annotations

import base64
import datetime as _dt
from html import escape

import pandas as pd

from nas_lth.report.figures import FigureResult
from nas_lth.report.tables import Summary

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 1.5rem 2rem 3rem; color: #222; line-height: 1.45; background: #fff; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .88rem; }
th, td { border: 1px solid #ddd; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.kv th { min-width: 8rem; }
.cols { display: flex; flex-wrap: wrap; gap: 0 2.5rem; align-items: flex-start; }
h3 { font-size: 1rem; margin: 1rem 0 .2rem; }
.wide { overflow-x: auto; }
figure { margin: 1.6rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; margin-top: .4rem; }
.missing { background: #fff7e6; border-left: 4px solid #e0a020; padding: .5rem .9rem; margin: .6rem 0; }
.missing.error { background: #fdecee; border-left-color: #d1495b; }
.missing ul { margin: .2rem 0; padding-left: 1.2rem; }
.headline li { margin: .15rem 0; }
footer { margin-top: 3rem; color: #888; font-size: .8rem; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _kv(rows: list[tuple[str, str]]) -> str:
    if not rows:
        return "<p>none</p>"
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _numeric(s: str) -> bool:
    try:
        float(s.replace("+", "").replace("−", "-"))
        return True
    except ValueError:
        return False


def table(df: pd.DataFrame, cls: str = "") -> str:
    """A table of strings; columns whose cells are all numbers (or "–") are right-aligned."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    numeric = [all(_numeric(str(v)) or str(v) == "–" for v in df[c]) for c in df.columns]
    rows = []
    for r in df.itertuples(index=False):
        cells = "".join(f'<td class="num">{escape(str(v))}</td>' if num else f"<td>{escape(str(v))}</td>"
                        for v, num in zip(r, numeric, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return f'<div class="wide"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>' \
           "</table></div>"


def _missing_box(items: list[str], error: bool = False) -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{escape(i)}</li>" for i in items)
    return f'<div class="missing{" error" if error else ""}"><strong>Missing:</strong><ul>{lis}</ul></div>'


def render(name: str, summary: Summary, figures: list[tuple[FigureResult, bytes | None]], missing: list[str]) -> str:
    """The page. ``figures`` pairs each result with its PNG bytes (None if not drawn); ``missing`` lists every
    gap of the report (also printed on stdout)."""
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{escape(name)} — nas_lth report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Lottery-ticket search: {escape(name)}</h1>",
        f'<p class="sub">Generated {escape(now)} by <code>python -m nas_lth.report</code> from the Parquet tables '
        "only.</p>",
        '<ul class="headline">' + "".join(f"<li>{escape(h)}</li>" for h in summary.headline) + "</ul>",
    ]
    if missing:
        parts.append('<h2 id="missing">What is missing</h2>')
        parts.append(_missing_box(missing))
    parts += [
        '<h2 id="settings">Experiment</h2><div class="cols">',
        f"<div><h3>Settings</h3>{_kv(summary.settings)}</div>",
        f"<div><h3>Searched (varying across trials)</h3>{_kv(summary.searched)}</div>",
        f"<div><h3>Fixed across trials</h3>{_kv(summary.fixed)}</div></div>",
        '<h2 id="top">Top tickets</h2>',
        f"<p>{escape(summary.top_text)} Recipe parameters that vary across the search, then results.</p>",
        table(summary.top, "top") if not summary.top.empty else _missing_box(["no completed tickets yet"]),
    ]
    if not summary.confirmed.empty:
        parts += ['<h2 id="confirmed">Confirmed</h2>', f"<p>{escape(summary.confirmed_text)}</p>",
                  table(summary.confirmed, "confirmed"),
                  '<ul class="headline">' + "".join(f"<li>{escape(v)}</li>" for v in summary.verdict) + "</ul>"]
    if not summary.problems.empty:
        parts += ['<h2 id="problems">Failed and diverged trials</h2>',
                  "<p>The last line of each trial's error (failed) or the reason it diverged.</p>",
                  table(summary.problems, "problems")]
    parts.append('<h2 id="figures">Figures</h2>')
    for i, (fr, png) in enumerate(figures, start=1):
        anchor = escape(fr.key)
        if png is not None:
            parts.append(
                f'<figure id="{anchor}"><img src="{data_uri(png)}" alt="Figure {i}: {escape(fr.title)}">'
                f"<figcaption><strong>Figure {i}. {escape(fr.title)}.</strong> {escape(fr.caption)}</figcaption>"
                + _missing_box(fr.missing) + "</figure>")
        else:
            parts.append(
                f'<figure id="{anchor}"><figcaption><strong>Figure {i}. {escape(fr.title)}</strong> — not drawn.'
                f"</figcaption>{_missing_box([fr.reason], error=fr.error)}</figure>")
    parts.append(f"<footer>{escape(name)} · nas_lth report · {escape(now)}</footer></body></html>")
    return "\n".join(parts) + "\n"
