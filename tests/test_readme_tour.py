"""The README's tour quotes real output: every line it shows is in the files `python -m benchmarks.readme_tour`
wrote to reports/tour/ (trimmed at `...`), its commands are the ones the script ran, its diff is the script's
edit and its timing is the script's measurement."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import readme_tour

REPO = Path(__file__).resolve().parents[1]
TOUR = REPO / "reports" / "tour"


def tour_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Ask your own question")
    return text[start : text.index("\n## ", start + 1)]


def blocks(section: str) -> list[tuple[str, list[str]]]:
    """(language, lines) of each fenced block, in order."""
    return [(m.group(1), m.group(2).splitlines()) for m in re.finditer(r"```(\w*)\n(.*?)```", section, re.S)]


def step_of(command: str) -> str:
    if "nas_lth.search" in command:
        return "search"
    if "nas_lth.report" in command:
        return "report"
    if "nas_lth.export" in command:
        return "export_compact" if "--compact" in command else "export"
    raise AssertionError(f"the tour runs no such command: {command}")


def quoted_outputs(section: str) -> list[tuple[str, str]]:
    """(step, line) for every output line the tour's console blocks and the load snippet's output show."""
    out, previous = [], None
    for lang, lines in blocks(section):
        if lang == "console":
            step = None
            for line in lines:
                if line.startswith("$ "):
                    step = step_of(line)
                elif line.strip() != "...":
                    out.append((step, line))
        elif lang == "" and previous == "python":
            out += [("load", line) for line in lines if line.strip() != "..."]
        previous = lang
    return out


def test_every_line_the_tour_shows_was_printed_by_the_command_it_follows():
    quoted = quoted_outputs(tour_section())
    assert {s for s, _ in quoted} == {"search", "report", "export", "export_compact", "load"}
    printed = {s: set((TOUR / f"{s}.txt").read_text().splitlines()) for s, _ in quoted}
    missing = [(s, line) for s, line in quoted if line.rstrip() not in {p.rstrip() for p in printed[s]}]
    assert not missing, f"lines the README shows that reports/tour/<step>.txt does not hold: {missing[:5]}"


def test_the_tour_runs_what_the_readme_shows():
    section = tour_section()
    commands = [line[2:] for lang, lines in blocks(section) if lang == "console" for line in lines
                if line.startswith("$ ")]
    assert ("OMP_NUM_THREADS=1 python -m nas_lth.search my_question.yaml --no-dashboard --storage /tmp/tour_runs "
            "--num-samples 12") in commands
    assert "python -m nas_lth.report /tmp/tour_runs/my_question" in commands
    python = [lines for lang, lines in blocks(section) if lang == "python"]
    assert python and "\n".join(python[0]) + "\n" == readme_tour.LOAD
    diff = next(lines for lang, lines in blocks(section) if lang == "diff")
    space = (TOUR / "my_question.yaml").read_text().splitlines()
    default = (REPO / "search_spaces" / "digits_quick.yaml").read_text().splitlines()
    assert [line[1:] for line in diff if line.startswith("+")] and all(
        line[1:] in space for line in diff if line.startswith("+"))
    assert all(line[1:] in default for line in diff if line.startswith("-"))
    # the tour's space is today's default with the tour's edit: a changed default needs the tour run again
    assert (TOUR / "my_question.yaml").read_text() == readme_tour.question_space()


def test_the_tour_quotes_its_measured_search_time():
    seconds = int((TOUR / "search_seconds.txt").read_text())
    said = re.findall(r"\((\d+) s here", tour_section())
    assert said == [str(seconds)]


def test_the_summary_the_tour_shows_is_the_reports():
    md = next(lines for lang, lines in blocks(tour_section()) if lang == "markdown")
    summary = (TOUR / "summary.txt").read_text().splitlines()
    assert all(line in summary for line in md if line.strip() != "...")


@pytest.mark.parametrize("edit", ["12 trials (7 completed", "0.9999"])
def test_the_check_catches_a_line_nobody_printed(edit):
    quoted = quoted_outputs(tour_section() + f"\n```console\n$ python -m nas_lth.search x\n{edit}\n```\n")
    printed = set((TOUR / "search.txt").read_text().splitlines())
    assert (("search", edit) in quoted) and edit not in printed
