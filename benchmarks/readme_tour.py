"""The README's tour ("Ask your own question"), run for real: every console block the tour quotes is a trimmed
copy of a file this script writes, and ``tests/test_readme_tour.py`` checks that each quoted line is in it.

Steps, as a newcomer types them (from the repository root, in the first command's ``.venv``):

1. ``my_question.yaml``: the default space with its criteria cut to magnitude (``large_final``)
   against two pruning-at-init scores (``snip``, ``synflow``), at every stopping point;
2. ``python -m nas_lth.search my_question.yaml --no-dashboard --storage /tmp/tour_runs --num-samples 12``;
3. ``python -m nas_lth.report /tmp/tour_runs/my_question``;
4. ``python -m nas_lth.export ... --best -o best.pt --verify`` and ``--best --compact --verify``;
5. the README's Python snippet that loads ``best.pt``.

Writes ``reports/tour/``: ``my_question.yaml``, one ``<step>.txt`` per command (its stdout and stderr, Ray's
start-up warnings dropped), the search's wall time, the report's ``summary.md`` (as ``summary.txt``), the run's tables
(``report/data/``: the tour's run can be reported again without running it) and ``README.md``.

    OMP_NUM_THREADS=1 python -m benchmarks.readme_tour
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO

OUT = REPO / "reports" / "tour"
STORAGE = Path("/tmp/tour_runs")  # the path the README shows
DEFAULT = REPO / "search_spaces" / "digits_quick.yaml"
OLD_EDIT = ("criterion: {choice: [large_final, large_init, magnitude_increase, movement, large_final_same_sign, "
            "random, snip, synflow]}")
NEW_EDIT = "criterion: {choice: [large_final, snip, synflow]}   # was 8 criteria: magnitude vs SNIP and SynFlow"
# Ray's own start-up lines (a timestamped WARNING/INFO from its modules) say nothing about the tour
RAY_NOISE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\t(WARNING|INFO) ")

LOAD = """\
import nas_lth.export
model = nas_lth.export.load("best.pt")     # eval-mode nn.Module on raw inputs (the transform is in the file)
ticket = nas_lth.export.read("best.pt")    # the file as a dict: model, recipe, provenance
print(ticket["provenance"]["criterion"], ticket["provenance"]["weights_remaining"])
kept = sum(int((p != 0).sum()) for p in model.parameters())
print(model.__class__.__name__, kept, "of", sum(p.numel() for p in model.parameters()), "parameters nonzero")
print(nas_lth.export.evaluate_ticket(model, ticket, None)["test_acc"])  # on the trial's own test split
"""


def question_space() -> str:
    """The default space renamed ``my_question``, with the one edited dimension of the tour's diff."""
    text = DEFAULT.read_text()
    if OLD_EDIT not in text or "name: digits_quick" not in text:
        raise SystemExit(f"{DEFAULT}: the tour edits '{OLD_EDIT}' and 'name: digits_quick'; update the tour")
    return text.replace("name: digits_quick", "name: my_question").replace(OLD_EDIT, NEW_EDIT)


def run(step: str, argv: list[str], cwd: Path) -> str:
    """Run one tour command in ``cwd`` (one thread for torch, as the README's search line), keep what it printed
    (without Ray's start-up lines) in ``reports/tour/<step>.txt`` and return it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    text = "".join(line for line in (p.stdout + p.stderr).splitlines(keepends=True) if not RAY_NOISE.match(line))
    (OUT / f"{step}.txt").write_text(text)
    print(f"{step}: exit {p.returncode}, {time.perf_counter() - t0:.0f} s", flush=True)
    if p.returncode != 0:
        raise SystemExit(f"{step} failed:\n{text[-3000:]}")
    return text


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    py = sys.executable
    shutil.rmtree(STORAGE, ignore_errors=True)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as work:
        cwd = Path(work)
        (cwd / "my_question.yaml").write_text(question_space())
        shutil.copy(cwd / "my_question.yaml", OUT / "my_question.yaml")
        t0 = time.perf_counter()
        run("search", [py, "-m", "nas_lth.search", "my_question.yaml", "--no-dashboard", "--storage", str(STORAGE),
                       "--num-samples", "12"], cwd)
        (OUT / "search_seconds.txt").write_text(f"{time.perf_counter() - t0:.0f}\n")
        exp = str(STORAGE / "my_question")
        run("report", [py, "-m", "nas_lth.report", exp], cwd)
        shutil.copy(STORAGE / "my_question" / "report" / "summary.md", OUT / "summary.txt")  # no page: no figures
        run("export", [py, "-m", "nas_lth.export", exp, "--best", "-o", "best.pt", "--verify"], cwd)
        run("export_compact", [py, "-m", "nas_lth.export", exp, "--best", "--compact", "--verify"], cwd)
        run("load", [py, "-c", LOAD], cwd)
        # the tour's run, reportable again without running it (the report's own folder is the experiment's)
        run("report_data", [py, "-m", "nas_lth.report", exp, "-o", str(OUT / "report"), "--with-data"], cwd)
    for f in (OUT / "report").iterdir():  # its figures and page are step 3's: keep the data they are made from
        if f.is_file():
            f.unlink()
    (OUT / "README.md").write_text(
        "# The README's tour, run for real\n\n"
        "Written by `python -m benchmarks.readme_tour`; do not edit. The README's \"Ask your own question\" quotes\n"
        "these files, trimmed (`tests/test_readme_tour.py` checks every quoted line is here):\n\n"
        "- [my_question.yaml](my_question.yaml): the default space with the tour's one edit;\n"
        "- [search.txt](search.txt), [report.txt](report.txt), [export.txt](export.txt),\n"
        "  [export_compact.txt](export_compact.txt), [load.txt](load.txt): what each command printed;\n"
        "- [summary.txt](summary.txt): the report's summary.md; `report/data/`: the run's tables\n"
        "  (`python -m nas_lth.report reports/tour/report/data -o DIR` makes the report again).\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
