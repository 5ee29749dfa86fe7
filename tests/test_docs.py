"""The documentation holds together. In README.md, docs/**/*.md and reports/**/*.md every relative link leads
to a file or folder of the repository, every repository path a page names exists, and every documented
``python -m nas_lth.search`` command uses real options; the README stays short and opens with the two
commands, the second being exactly what ``.ci/run`` runs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the target may be <...> and may be followed by a title
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]"                       # [text] or ![alt]
                     r"\(\s*(<[^>]*>|[^)\s]+)"                              # (target or (<target>
                     r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")        # optional "title")
# [label]: target (reference definitions)
MD_REF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # http:, https:, mailto:, data:, //host


def doc_files() -> list[Path]:
    files = [REPO / "README.md"]
    for folder in ("docs", "reports"):
        files += sorted((REPO / folder).rglob("*.md"))
    return [f for f in files if f.is_file()]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked out."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        out.append((number, INLINE_CODE.sub("", line)))
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link, image, reference definition and HTML src/href."""
    found = []
    for number, line in prose_lines(text):
        for m in MD_LINK.finditer(line):
            found.append((number, m.group(1)))
        m = MD_REF.match(line)
        if m:
            found.append((number, m.group(1)))
        for m in HTML_ATTR.finditer(line):
            found.append((number, next(g for g in m.groups() if g is not None)))
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in found]


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """``file:line: link`` for each relative link of ``page`` that leads nowhere in the repository."""
    if text is None:
        text = page.read_text(encoding="utf-8")
    problems = []
    for number, target in links(text):
        if not target or target.startswith("#") or EXTERNAL.match(target):
            continue
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not path:
            continue
        resolved = (REPO / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
        resolved = resolved.resolve()
        where = f"{page.relative_to(REPO)}:{number}: {target}"
        if not resolved.is_relative_to(REPO):
            problems.append(f"{where} (leaves the repository)")
        elif not resolved.exists():
            problems.append(f"{where} (no such file or folder)")
    return problems


@pytest.mark.parametrize("page", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    problems = broken_links(page)
    assert not problems, "broken relative links:\n" + "\n".join(problems)


def test_link_checker_sees_broken_links():
    """The checker itself: it must report what is broken and ignore what is not a relative link."""
    page = REPO / "docs" / "_probe.md"
    text = (
        "[ok](../README.md) ![ok](../reports/lth_lenet/lth_lenet.png) [ok](guide.md#anchor) [ok](#here)\n"
        "[web](https://example.org/x) [mail](mailto:a@b.c) `[code](nowhere.md)`\n"
        "```\n[fenced](nowhere-either.md)\n```\n"
        "[bad](missing.md#x) ![bad](../reports/no_such.png) <img src=\"gone.png\"> <a href='../nope/'>x</a>\n"
        "[ref]: ../also-missing.md\n"
        "[out](../../outside.md)\n"
    )
    problems = broken_links(page, text)
    assert [p.split(": ", 1)[1].split(" (")[0] for p in problems] == [
        "missing.md#x", "../reports/no_such.png", "gone.png", "../nope/", "../also-missing.md", "../../outside.md"]
    assert all(p.startswith("docs/_probe.md:") for p in problems)


# a path into the repository named in the text (code spans and blocks included), e.g. `nas_lth/experiment/lease.py`
ROOTS = "nas_lth|search_spaces|examples|benchmarks|tests|docs|reports|\\.ci"
NAMED_PATH = re.compile(rf"(?<![\w./-])((?:{ROOTS})/[\w./*<>{{}}-]*)")


@pytest.mark.parametrize("page", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_named_repository_paths_exist(page):
    """Files and modules the pages name (`nas_lth/strategy/tuner.py`, `search_spaces/digits_quick.yaml`,
    `benchmarks/results/lth_lenet*.parquet`) exist; placeholders such as `reports/<name>/` are skipped."""
    missing = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for m in NAMED_PATH.finditer(line):
            path = m.group(1).rstrip(".,;:")
            if any(c in path for c in "<>{}") or path.endswith("/*"):
                continue
            if not (any(REPO.glob(path)) if "*" in path else (REPO / path).exists()):
                missing.append(f"{page.relative_to(REPO)}:{number}: {path}")
    assert not missing, "paths named in the page that do not exist:\n" + "\n".join(missing)


def test_documented_search_commands_use_real_options():
    """Every `python -m nas_lth.search ...` line of the pages uses options the search knows."""
    from nas_lth.search import build_parser

    known = {opt for action in build_parser()._actions for opt in action.option_strings}
    bad = []
    for page in doc_files():
        text = page.read_text(encoding="utf-8").replace("\\\n", " ")  # join continued shell lines
        for line in text.splitlines():
            if "python -m nas_lth.search" in line:
                used = set(re.findall(r"(?<=[\s\[])--[a-z][a-z-]*", line.split("nas_lth.search", 1)[1]))
                if used - known:
                    bad.append(f"{page.relative_to(REPO)}: {sorted(used - known)} in: {line.strip()}")
    assert not bad, "unknown options of python -m nas_lth.search:\n" + "\n".join(bad)


def ci_test_command() -> str:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line.startswith("python3 -m venv") and "pytest -q" in line]
    assert len(commands) == 1, f".ci/run should hold one 'python3 -m venv ... pytest -q' line, found {commands}"
    return commands[0]


def test_readme_is_short_and_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"

    body = [line for line in lines if line.strip()]
    assert body[0].startswith("# "), "README.md should start with its title"
    assert body[1].startswith("```"), "the first thing after the README's title should be the two-commands block"
    start = lines.index(body[1])
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    commands = [line.strip() for line in lines[start + 1:end] if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2, f"the README's first block should hold two commands, found {commands}"
    main_job, tests = commands
    assert main_job.startswith("python3 -m venv .venv") and "-m nas_lth.search" in main_job, main_job
    assert tests == ci_test_command(), (
        f"the README's second command\n  {tests}\nis not what .ci/run runs\n  {ci_test_command()}")
