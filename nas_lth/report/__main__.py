"""``python -m nas_lth.report EXPERIMENT_DIR [-o OUT_DIR]``: the experiment's report (HTML, PNG, Markdown).

By default the report goes into the experiment folder itself, ``EXPERIMENT_DIR/report/``; for an experiment
on remote storage (s3://, gs://, ...) into ``./report-<experiment name>/`` here, which it names. A default
folder that holds files the report did not write is refused; ``-o OUT_DIR`` writes wherever it is told
(``-o reports/<name>`` to update a committed page). ``--with-data`` also writes the experiment's tables into
``OUT_DIR/data/`` (:mod:`nas_lth.store.snapshot`), from which the report can be made again.
"""

from __future__ import annotations

import argparse
import sys

from nas_lth.errors import ArgumentParser, cli_entry


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m nas_lth.report",
        description="Figures, an HTML page and a Markdown summary of a lottery-ticket search, from its Parquet "
                    "tables (trials/, curves/). Works on a copy and while the search is still running.")
    p.add_argument("experiment", metavar="EXPERIMENT_DIR",
                   help="the experiment folder (<storage>/<experiment>, a local path or a URI such as s3://...)")
    p.add_argument("-o", "--out", metavar="OUT_DIR", default=None,
                   help="where to write index.html, the PNGs and summary.md, overwriting same-named files there "
                        "(default: EXPERIMENT_DIR/report/; for an s3://, gs://... experiment: ./report-<experiment "
                        "name>/; a default folder holding files the report did not write is refused)")
    p.add_argument("--with-data", action="store_true",
                   help="also write the experiment's tables into OUT_DIR/data/ (one Parquet file per table and "
                        "space.json): an experiment folder the report can be made from again, small enough to "
                        "commit beside it")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module to import first (repeatable): where your models, datasets, criteria or figures "
                   "are registered; the experiment's own plugins are imported too")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from nas_lth import plugins
    from nas_lth.report import build_report, is_remote
    from nas_lth.store.reader import recorded_plugins

    plugins.load([*args.plugin, *recorded_plugins(args.experiment)])

    report = build_report(args.experiment, args.out)
    drawn = sum(fr.figure is not None for fr in report.figures)
    print(f"report: {report.html} ({drawn}/{len(report.figures)} figures), {report.markdown}")
    if args.out is None and is_remote(args.experiment):
        print(f"note: {args.experiment} is remote storage: the report is in {report.out_dir}/ here "
              "(choose the folder with -o OUT_DIR)")
    for m in report.missing:
        print(f"missing: {m}")
    if args.with_data:
        from nas_lth.store.snapshot import snapshot

        print(f"data: {snapshot(args.experiment, report.out_dir / 'data')} (python -m nas_lth.report "
              f"{report.out_dir / 'data'} -o {report.out_dir} makes this report again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
