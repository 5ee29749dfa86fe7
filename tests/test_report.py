"""The report (python -m nas_lth.report): figures, HTML page and Markdown summary from the Parquet tables,
on synthetic experiments written in the real schema with nas_lth.store (see report_fixtures.py)."""

from __future__ import annotations

import base64
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import pytest
import report_fixtures as fx

import nas_lth.report.figures._common as figure_common
from nas_lth.errors import UserError
from nas_lth.registry import Registry
from nas_lth.report import FIGURE_KEYS, build_report, load
from nas_lth.report.data import weight_levels
from nas_lth.report.figures import FIGURES, STYLE, ordered, register

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_valid_png(path: Path) -> None:
    data = path.read_bytes()
    w, h = png_size(data)
    assert w >= 600 and h >= 400, (path.name, w, h)
    assert len(data) > 15_000, (path.name, len(data))  # a drawn figure, not an empty canvas
    assert data.endswith(b"IEND\xaeB`\x82")  # complete file


def data_uris(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas_lth.report", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    exp = fx.full_experiment(root)
    return exp, build_report(exp, root / "out")


# -- the full report -------------------------------------------------------------------------------------


def test_every_figure_is_a_valid_png(full):
    _, rep = full
    assert [f.key for f in rep.figures] == FIGURE_KEYS
    assert not [f.reason for f in rep.figures if f.figure is None]
    for key in FIGURE_KEYS:
        assert_valid_png(rep.out_dir / f"{key}.png")
    assert sorted(p.name for p in rep.out_dir.glob("*.png")) == sorted(f"{k}.png" for k in FIGURE_KEYS)


def test_html_is_self_contained_with_figures_and_top_tickets(full):
    exp, rep = full
    html = rep.html.read_text(encoding="utf-8")
    images = data_uris(html)
    assert len(images) == len(FIGURE_KEYS)
    for img, key in zip(images, FIGURE_KEYS, strict=True):  # the embedded bytes are the PNG files
        assert img == (rep.out_dir / f"{key}.png").read_bytes()
    # no external resource, no script
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<script" not in html and "http://" not in html and "https://" not in html
    # settings: model, dataset, statuses, searched and fixed columns
    for text in ("lenet300_100", "digits", "completed: 64", "stopped: 2", "diverged: 1", "failed: 1",
                 "Searched (varying across trials)", "Fixed across trials", "prune_rate_fc"):
        assert text in html, text
    # the top-tickets table: ranked by validation accuracy, with the recipe parameters
    top = rep.summary.top
    assert len(top) == 10 and list(top["#"])[:2] == ["1", "2"]
    assert {"criterion", "stop_at", "reinit", "rounds", "seed", "weights %", "val accuracy %",
            "test accuracy %", "Δ test vs dense (pp)"} <= set(top.columns)
    trials = pd.read_parquet(exp / "trials")
    best = trials[trials.status == "completed"].sort_values("val_acc", ascending=False).iloc[0]
    assert top.iloc[0]["trial"] == best.trial_id
    assert '<table class="top">' in html and best.trial_id in html
    for i in range(1, 8):
        assert f"Figure {i}." in html
    # failed and diverged trials are listed with their message
    assert "Failed and diverged trials" in html and "CUDA out of memory" in html and "loss became nan" in html


def test_markdown_links_the_pngs(full):
    _, rep = full
    md = rep.markdown.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == [f"{k}.png" for k in FIGURE_KEYS]
    for link in links:  # relative to the Markdown file
        assert (rep.markdown.parent / link).is_file()
    assert "| # | trial | criterion |" in md
    assert "Dense network: test accuracy" in md and "Best ticket" in md


def test_figure_content(full):
    """Spot checks that the figures encode what they claim (not just that a PNG exists)."""
    _, rep = full
    figs = {f.key: f.figure for f in rep.figures}
    ax_test, ax_val = figs["fig1_accuracy_vs_weights"].axes[:2]
    assert ax_test.get_xscale() == "log"
    lo, hi = ax_test.get_xlim()
    assert lo > hi and lo >= 100  # 100 % on the left
    assert "test accuracy (%)" in ax_test.get_ylabel() and "validation" in ax_val.get_ylabel()
    labels = {line.get_label(): line for line in ax_test.get_lines()}
    assert {"large_final", "snip", "random", "large_final (random_reinit)"} <= set(labels)
    assert labels["large_final"].get_linestyle() == "-"
    assert labels["large_final (random_reinit)"].get_linestyle() != "-"  # controls dashed
    assert any(lab.startswith("dense network") for lab in labels)
    assert ax_test.collections  # min-max bands (3 seeds per point)
    # learning curves: top 3 tickets + the dense run
    curve_labels = [ln.get_label() for ln in figs["fig5_learning_curves"].axes[0].get_lines()]
    assert sum(lab.startswith("#") for lab in curve_labels) == 3 and "dense network" in curve_labels


def test_rows_in_finishing_order(full):
    exp, _ = full
    data = load(exp)
    assert list(data.trials.trial_id) == sorted(data.trials.trial_id)  # the fixture wrote them in id order
    assert data.ipe == fx.IPE and data.metric.key == "acc"
    # a copy that reset the file times is detected and said
    now = time.time()
    for f in (exp / "trials").iterdir():
        os.utime(f, (now, now))
    try:
        assert any("finishing order shown is arbitrary" in n for n in load(exp).notes)
    finally:  # restore increasing times for the other tests
        for i, f in enumerate(sorted((exp / "trials").iterdir())):
            os.utime(f, (now + i, now + i))


def test_a_snapshot_of_the_tables_makes_the_same_report_after_a_copy_that_loses_file_times(full, tmp_path):
    """--with-data (store.snapshot): one Parquet file per table and space.json, an experiment folder the report
    accepts; the finishing order of rows without finished_at is taken from their files' times into the rows,
    so a copy that resets the times (git) still makes the same summary."""
    from nas_lth.store import read
    from nas_lth.store.snapshot import snapshot

    exp, report = full
    data = snapshot(str(exp), tmp_path / "data")
    assert sorted(p.name for p in (data / "trials").iterdir()) == ["trials.parquet"]
    now = time.time()
    for f in data.rglob("*.parquet"):
        os.utime(f, (now, now))
    again = read(str(data))
    assert len(again.all_trials) == len(read(str(exp)).all_trials) and again.all_trials.finished_at.notna().all()
    assert list(load(data).trials.trial_id) == list(load(exp).trials.trial_id)  # the order survived
    made = build_report(data, tmp_path / "out")
    assert made.markdown.read_text() == report.markdown.read_text()
    proc = run_cli(str(exp), "-o", str(tmp_path / "cli"), "--with-data")
    assert proc.returncode == 0 and (tmp_path / "cli" / "data" / "curves" / "curves.parquet").exists(), proc.stderr


def test_weight_levels():
    w = pd.Series([1.0, 0.8, 0.799, 0.64, 0.641, None, 0.05, 0.0501])
    lv = weight_levels(w)
    assert lv.iloc[1] == lv.iloc[2] and lv.iloc[3] == lv.iloc[4] and lv.iloc[6] == lv.iloc[7]
    assert lv.iloc[0] != lv.iloc[1] != lv.iloc[3]
    assert pd.isna(lv.iloc[5])


# -- the figure registry ----------------------------------------------------------------------------------


def test_registry_order_is_the_report_order():
    specs = ordered()
    assert [s.number for s in specs] == list(range(1, len(FIGURE_KEYS) + 1))
    assert [s.key for s in specs] == FIGURE_KEYS == FIGURES.names()
    assert all(s.key.startswith(f"fig{s.number}_") for s in specs)
    # each figure module registers the figure named after it (a module left out of __init__ would be missed)
    modules = sorted(p.stem for p in (ROOT / "nas_lth" / "report" / "figures").glob("fig*.py"))
    assert sorted(FIGURES) == modules


@pytest.mark.parametrize("case", ["full", "only_failed"])
def test_every_registered_figure_draws_or_says_why(full, tmp_path, case):
    exp = full[0] if case == "full" else fx.only_failed_experiment(tmp_path)
    data = load(exp)
    for spec in ordered():
        with mpl.rc_context(STYLE):
            fr = spec.draw(data)
        assert fr.key == spec.key and fr.title and fr.caption and not fr.error
        if case == "full":
            assert fr.figure is not None and fr.figure.axes, (spec.key, fr.reason)
        else:
            assert fr.figure is not None or fr.reason, spec.key
    if case == "only_failed":  # the outcomes bar needs no completed trial; every other figure does
        assert fr.key == "fig7_search_progress" and fr.figure is not None


def test_a_figure_registered_twice_is_refused(monkeypatch):
    before = FIGURES.names()
    with pytest.raises(ValueError, match="figure 'fig6_pareto' registered twice"):
        register(6, "pareto")(lambda data: None)
    with pytest.raises(ValueError, match="figure number 6 registered twice"):
        register(6, "another_front")(lambda data: None)
    assert FIGURES.names() == before  # a refused registration leaves the registry as it was
    with pytest.raises(UserError, match="unknown figure 'fig9_none'; allowed: fig1_accuracy_vs_weights, "):
        FIGURES.get("fig9_none")
    # a gap in the numbers would number the page's figures differently from their PNGs
    monkeypatch.setattr(figure_common, "FIGURES", Registry("figure"))
    register(1, "a")(lambda data: None)
    register(3, "c")(lambda data: None)
    with pytest.raises(ValueError, match="must run 1..2"):
        ordered()


# -- variants and partial experiments --------------------------------------------------------------------


def test_multilabel_uses_micro_f1(tmp_path):
    exp = fx.full_experiment(tmp_path, "ml", multilabel=True)
    rep = build_report(exp, tmp_path / "out")
    assert all(f.figure is not None for f in rep.figures)
    for key in FIGURE_KEYS:
        assert_valid_png(rep.out_dir / f"{key}.png")
    assert "micro-F1" in rep.figures[0].figure.axes[0].get_ylabel()
    ylabels = [ax.get_ylabel() for ax in rep.figures[4].figure.axes]
    assert any("micro-precision" in y for y in ylabels) and any("micro-recall" in y for y in ylabels)
    assert "val micro-F1 %" in rep.summary.top.columns
    html = rep.html.read_text(encoding="utf-8")
    assert len(data_uris(html)) == len(FIGURE_KEYS) and "micro-F1" in html
    # the search stores the dense *validation* micro-F1 (dense_objective) but no dense test micro-F1
    assert any("dense reference for the test micro-F1" in m for m in rep.missing)
    assert not any("validation micro-F1" in m and "dense" in m for m in rep.missing)


def test_only_failed_trials(tmp_path):
    exp = fx.only_failed_experiment(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "fig1_accuracy_vs_weights.png").write_bytes(b"stale")  # from an earlier run, or someone's file
    proc = run_cli(str(exp), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "missing:" in proc.stdout and "not drawn" in proc.stdout
    # never deleted (the report removes nothing it did not write in this run), and not referred to
    assert (out / "fig1_accuracy_vs_weights.png").read_bytes() == b"stale"
    assert_valid_png(out / "fig7_search_progress.png")  # the outcomes bar is still drawn
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "What is missing" in html and "no completed (full-budget) trials yet" in html
    assert html.count("not drawn") >= 6 and "failed: 3" in html
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert "## What is missing" in md and "fig7_search_progress.png" in md and "fig1_" not in md


def test_sparse_experiment_says_what_is_missing(tmp_path):
    """One criterion, one seed, no dense reference, no curves."""
    rep = build_report(fx.sparse_experiment(tmp_path), tmp_path / "out")
    drawn = {f.key for f in rep.figures if f.figure is not None}
    assert drawn == set(FIGURE_KEYS) - {"fig5_learning_curves"}
    text = "\n".join(rep.missing)
    for expected in ("no dense reference", "no spread", "single criterion", "curves", "single stopping point"):
        assert expected in text, expected
    html = rep.html.read_text(encoding="utf-8")
    assert "no dense reference" in html and "not drawn" in html


def test_no_curves(tmp_path):
    rep = build_report(fx.full_experiment(tmp_path, "nocurves", curves=False), tmp_path / "out")
    by_key = {f.key: f for f in rep.figures}
    assert by_key["fig5_learning_curves"].figure is None and "curve" in by_key["fig5_learning_curves"].reason
    assert all(f.figure is not None for k, f in by_key.items() if k != "fig5_learning_curves")
    assert any("dense early-stop iteration" in m for m in rep.missing)


def test_unreadable_file_is_skipped(tmp_path):
    """A foreign or damaged file among the rows (e.g. a partial copy) costs that row, not the report."""
    exp = fx.sparse_experiment(tmp_path)
    (exp / "trials" / "zzzz.parquet").write_bytes(b"not parquet")
    rep = build_report(exp, tmp_path / "out")
    assert any("skipped unreadable trials/zzzz.parquet" in m for m in rep.missing)
    assert rep.figures[0].figure is not None


# -- CLI --------------------------------------------------------------------------------------------------


def test_cli_default_out_dir_and_no_strategy_import(tmp_path):
    exp = fx.sparse_experiment(tmp_path / "runs", name="exp_a")
    code = ("import sys; from nas_lth.report.__main__ import main\n"
            "try:\n    main([sys.argv[1]])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('nas_lth.strategy', 'ray')))\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code, "runs/exp_a"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (exp / "report" / "index.html").is_file()
    assert proc.stdout.startswith("report: runs/exp_a/report/index.html")
    assert not (tmp_path / "reports").exists()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_default_out_is_the_experiment_folder_not_the_reports_of_the_working_directory(
        tmp_path, monkeypatch, capsys):
    """Run from a repository root, the default folder was reports/<name>/ there: the committed pages of the
    same name were overwritten. Now it is <experiment>/report/ and reports/ stays as it was."""
    from nas_lth.report.__main__ import main

    exp = fx.sparse_experiment(tmp_path / "runs", name="exp_a")
    work = tmp_path / "repo"
    (work / "reports" / "exp_a").mkdir(parents=True)
    (work / "reports" / "exp_a" / "index.html").write_text("<p>the committed page</p>")
    (work / "reports" / "exp_a" / "fig1_accuracy_vs_weights.png").write_bytes(b"committed figure")
    before = tree(work)
    monkeypatch.chdir(work)
    assert main([str(exp)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"report: {exp}/report/index.html"), out
    assert "note:" not in out  # a local experiment: nothing to explain
    assert tree(work) == before
    assert (exp / "report" / "summary.md").is_file()
    assert_valid_png(exp / "report" / "fig1_accuracy_vs_weights.png")
    # the experiment is still an experiment: the report folder does not get in the way of reading it
    assert len(load(str(exp)).trials) == len(load(str(exp)).trials.trial_id.unique())
    assert main([str(exp)]) == 0  # its own files: a rerun replaces them
    assert tree(work) == before


def test_a_default_folder_with_files_the_report_did_not_write_is_refused(tmp_path, capsys):
    from nas_lth.report.__main__ import main

    exp = fx.sparse_experiment(tmp_path / "runs", name="exp_a")
    rep = build_report(exp)  # a first report: its own files
    assert rep.out_dir == exp / "report"
    (exp / "report" / "summary.md").write_text("my notes, not a report\n")
    before = tree(exp / "report")
    with pytest.raises(SystemExit) as err:
        main([str(exp)])
    assert err.value.code == 2
    msg = capsys.readouterr().err.strip()
    assert msg.count("\n") == 0 and msg.startswith(f"error: {exp}/report/summary.md: not written by"), msg
    assert "-o OUT_DIR" in msg
    assert tree(exp / "report") == before

    other = fx.sparse_experiment(tmp_path / "runs", name="exp_b")  # a figure's name, no page of the report
    (other / "report").mkdir()
    (other / "report" / "fig6_pareto.png").write_bytes(b"someone's figure")
    with pytest.raises(UserError, match="fig6_pareto.png: not written by python -m nas_lth.report"):
        build_report(other)
    assert (other / "report" / "fig6_pareto.png").read_bytes() == b"someone's figure"
    assert sorted(p.name for p in (other / "report").iterdir()) == ["fig6_pareto.png"]
    # asked for with -o, the folder is written
    assert main([str(other), "-o", str(other / "report")]) == 0
    assert_valid_png(other / "report" / "fig6_pareto.png")


def test_default_out_dir_of_local_and_remote_experiments():
    from nas_lth.report import default_out_dir

    assert default_out_dir("runs/exp_a") == Path("runs/exp_a/report")
    assert default_out_dir("/abs/runs/exp_a/") == Path("/abs/runs/exp_a/report")
    assert default_out_dir("file:///abs/runs/exp_a") == Path("/abs/runs/exp_a/report")
    assert default_out_dir("s3://bucket/runs/exp_a/") == Path("report-exp_a")
    assert default_out_dir("gs://bucket/exp_b") == Path("report-exp_b")
    with pytest.raises(UserError, match="give one with -o OUT_DIR"):
        default_out_dir("s3://bucket/runs/we ird")


def test_cli_remote_experiment_reports_into_a_named_local_folder(tmp_path, monkeypatch, capsys):
    """An experiment on object storage (moto's S3 server on 127.0.0.1): the report lands in
    ./report-<name>/, which the CLI names; reports/ of the working directory stays as it was."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            monkeypatch.setenv(k, v)
        import boto3

        from nas_lth.report.__main__ import main

        client = boto3.client("s3")
        client.create_bucket(Bucket="bucket")
        exp = fx.sparse_experiment(tmp_path / "runs", name="exp_r")
        for f in exp.rglob("*.parquet"):
            client.upload_file(str(f), "bucket", f"runs/exp_r/{f.relative_to(exp).as_posix()}")
        work = tmp_path / "repo"
        (work / "reports" / "exp_r").mkdir(parents=True)
        (work / "reports" / "exp_r" / "index.html").write_text("<p>the committed page</p>")
        before = tree(work)
        monkeypatch.chdir(work)
        assert main(["s3://bucket/runs/exp_r"]) == 0
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert out.startswith("report: report-exp_r/index.html"), out
    assert "note: s3://bucket/runs/exp_r is remote storage: the report is in report-exp_r/ here" in out
    assert (work / "report-exp_r" / "summary.md").is_file()
    after = tree(work)
    assert {k: v for k, v in after.items() if not k.startswith("report-exp_r/")} == before


@pytest.mark.parametrize("case", ["nonexistent", "no_trials", "empty_trials"])
def test_cli_errors_are_one_line(tmp_path, case):
    target = tmp_path / "x"
    if case != "nonexistent":
        (target / "other").mkdir(parents=True)
        (target / "other" / "file.txt").write_text("not an experiment")
    if case == "empty_trials":
        (target / "trials").mkdir()
    proc = run_cli(str(target), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0], proc.stderr
    assert not (tmp_path / "out" / "index.html").exists()


# -- the page in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    path, why = fx.find_chromium()
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {why}")
    return path


BAD_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body><p>broken</p>
<img src="missing.png" alt="missing"><script>notDefinedAnywhere();</script></body></html>"""


def test_chromium_detects_page_errors(chromium, tmp_path):
    """The checks below can fail: a page with a JS error and a missing image is caught by both methods."""
    bad = tmp_path / "bad.html"
    bad.write_text(BAD_PAGE)
    _, log_problems = fx.dump_dom(chromium, bad.as_uri())
    assert any("Uncaught" in line and "notDefinedAnywhere" in line for line in log_problems), log_problems
    page = fx.inspect_page(chromium, bad.as_uri())
    assert any("notDefinedAnywhere" in p for p in page.problems), page.problems
    assert any("ERR_FILE_NOT_FOUND" in p for p in page.problems), page.problems  # the missing image


def test_report_renders_in_chromium_without_errors(chromium, full):
    _, rep = full
    url = rep.html.resolve().as_uri()
    dom, log_problems = fx.dump_dom(chromium, url)
    assert not log_problems, log_problems
    assert dom.count('<img src="data:image/png;base64,') == len(FIGURE_KEYS)
    assert '<table class="top">' in dom
    page = fx.inspect_page(chromium, url)
    assert not page.problems, page.problems
    assert all(u == url or u.startswith("data:") for u in page.requests), page.requests  # nothing external
    assert len(page.images) == len(FIGURE_KEYS)
    assert all(complete and w >= 600 and h >= 400 for complete, w, h in page.images), page.images  # decoded
    assert page.title.startswith("synth")


def test_report_package_has_no_strategy_import():
    """Static half of the rule (the CLI test checks sys.modules): the report reads results only."""
    pattern = re.compile(r"^\s*(from|import)\s+(nas_lth\.strategy|ray)\b", re.MULTILINE)
    for path in (ROOT / "nas_lth" / "report").rglob("*.py"):
        assert not pattern.search(path.read_text()), path.name


def test_single_label_rows_with_micro_f1_still_report_accuracy():
    """Every evaluation records micro-F1; for single-label data it equals the accuracy, and the report
    must keep calling the experiment's metric accuracy (it called it micro-F1 once)."""
    import pandas as pd

    from nas_lth.report.data import _multilabel

    single = pd.DataFrame({"val_acc": [0.9, 0.8, None], "val_micro_f1": [0.9, 0.8, None]})
    multi = pd.DataFrame({"val_acc": [0.5, 0.4], "val_micro_f1": [0.8, 0.7]})
    assert not _multilabel(single) and _multilabel(multi)
    assert _multilabel(pd.DataFrame({"val_micro_f1": [0.7]})) and not _multilabel(pd.DataFrame({"val_acc": [0.7]}))


def test_the_default_report_folder_is_named_from_the_command_line_not_the_table(tmp_path):
    """A trials table whose experiment column says ``../../outside`` (or an absolute path) must not send
    the report outside its default folder (issue: readers trust table contents)."""
    import pyarrow.parquet as pq

    exp = fx.full_experiment(tmp_path, "honest")
    for f in (exp / "trials").glob("*.parquet"):
        t = pq.read_table(f)
        col = t.schema.get_field_index("experiment")
        pq.write_table(t.set_column(col, "experiment", pa_array(["../../outside"] * t.num_rows)), f)
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli(str(exp), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (exp / "report" / "index.html").exists()
    assert not (tmp_path / "outside").exists() and not (work.parent.parent / "outside").exists()
    assert not list(work.iterdir())


def pa_array(values):
    import pyarrow as pa

    return pa.array(values, pa.string())


def test_confirmation_rows_get_their_own_table_and_stay_out_of_the_search_tables(tmp_path):
    """Rows with stage=confirm (the top recipes re-run with fresh seeds) rank in a "Confirmed" section with
    intervals and Welch's t-tests; the search's tables and counts leave them out."""
    from nas_lth.store import TRIAL_COLUMNS, locate, read, write_trial

    exp = fx.full_experiment(tmp_path, "confirmed")
    loc = locate(str(exp))
    search = read(str(exp)).trials
    n_search = len(search)
    tops = search[search.status == "completed"].sort_values("val_acc", ascending=False).trial_id.head(2).tolist()
    for i, of in enumerate(tops):
        src = search.set_index("trial_id").loc[of]
        for seed in (5, 6, 7):
            row = {c: (src[c] if c in src.index else None) for c in TRIAL_COLUMNS if c != "schema_version"}
            acc = 0.95 - 0.02 * i + 0.001 * seed
            row.update(trial_id=f"c{i}{seed}", stage="confirm", confirm_of=of, seed=seed, val_acc=acc, test_acc=acc,
                       dense_val_acc=0.97 + 0.001 * seed, dense_test_acc=0.968 + 0.001 * seed, status="completed")
            write_trial(loc, row["trial_id"], row)
    rep = build_report(exp, tmp_path / "out")
    md = rep.markdown.read_text(encoding="utf-8")
    assert "## Confirmed" in md
    section = md.split("## Confirmed", 1)[1].split("## Figures", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert [ln.split(" | ")[1] for ln in lines[1:]] == [tops[0], tops[1], "dense"]  # ranked, dense last
    assert "best vs runner-up (test_acc)" in section and "Welch's t-test p = " in section
    assert "best vs dense network (test_acc)" in section and "significant (dense network higher)" in section
    assert 'id="confirmed"' in rep.html.read_text(encoding="utf-8")
    assert dict(rep.summary.settings)["trials"] == str(n_search)
    assert dict(rep.summary.settings)["confirmation trials"] == "6"
    assert len(rep.summary.top) and not any(t.startswith("c") for t in rep.summary.top["trial"])


# -- file references in the shipped search spaces -----------------------------------------------------------

REFERENCE = re.compile(r"(?<![\w./-])((?:reports|search_spaces|benchmarks|examples)/[\w./<>*-]*[\w/>*])")


def comment_references(text: str) -> list[tuple[int, str]]:
    """(line number, path) of every ``reports/...``, ``search_spaces/...``, ``benchmarks/...`` or ``examples/...``
    in the comments of a YAML file (a ``#`` at the start of a line or after a blank)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        m = re.search(r"(?:^|\s)#(.*)$", line)
        if m:
            out += [(number, ref) for ref in REFERENCE.findall(m.group(1))]
    return out


def resolves(ref: str) -> bool:
    """An existing path of the repository; ``<name>`` and ``*`` stand for any one path component."""
    pattern = re.sub(r"<[^>]*>", "*", ref).rstrip("/")
    if "*" in pattern:
        return any(ROOT.glob(pattern))
    return (ROOT / pattern).exists()


def test_comment_reference_scanner_finds_and_checks_paths():
    text = ("# see reports/no_such_report/fig.png, and search_spaces/digits_quick.yaml.\n"
            "name: x  # like examples/lenet_digits.yaml; not a path: myreports/x or value: 'reports/y'\n"
            "# figures in reports/<name>/ and benchmarks/*.py\n")
    refs = comment_references(text)
    assert refs == [(1, "reports/no_such_report/fig.png"), (1, "search_spaces/digits_quick.yaml"),
                    (2, "examples/lenet_digits.yaml"), (2, "reports/y"), (3, "reports/<name>/"), (3, "benchmarks/*.py")]
    assert [resolves(r) for _, r in refs] == [False, True, True, False, True, True]


def test_search_space_comments_name_files_that_exist():
    """The comments of search_spaces/*.yaml and examples/*.yaml point readers at reports, other spaces and
    benchmarks: each such path must exist (digits_channel.yaml named a space that never shipped)."""
    files = sorted([*(ROOT / "search_spaces").glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")])
    assert len(files) >= 10, files
    refs = [(f.relative_to(ROOT), n, r) for f in files for n, r in comment_references(f.read_text(encoding="utf-8"))]
    assert refs, "no reference found: the scanner is broken"
    broken = [f"{f}:{n}: {r}" for f, n, r in refs if not resolves(r)]
    assert not broken, broken


@pytest.mark.parametrize("uri", ["/tmp/runs/exp_a", "runs/exp_a", "s3://bucket/runs/exp_a"])
def test_the_search_summary_names_the_folder_the_report_writes_by_default(uri):
    from nas_lth.experiment.summary import report_command
    from nas_lth.report import default_out_dir

    written = report_command(uri).split("(writes ", 1)[1].removesuffix(")").removesuffix(" here").rstrip("/")
    assert Path(written) == default_out_dir(uri)


def test_a_row_without_its_dense_metrics_takes_them_from_the_rows_that_share_its_dense_run(tmp_path):
    """A ladder stopped before its test evaluation records the dense validation metric only; its trajectory key
    names the shared dense run, whose test metric other rows hold."""
    b = fx.Builder(tmp_path, "fill")
    full_row = b.trial(rounds=2)
    thin = b.trial(rounds=3, dense=False)
    t = load(b.dir).trials.set_index("trial_id")
    assert t.loc[thin, "dense_test_acc"] == t.loc[full_row, "dense_test_acc"] == fx.Builder.dense_acc(0, "test")
    assert t.loc[thin, "dense_val_acc"] == fx.Builder.dense_acc(0, "val")


# reports/<name>/ made with --with-data from a real search
SEARCH_REPORTS = ["digits_quick", "digits_pareto", "lenet300_mnist_pareto", "early_tickets_mnist"]
# those with a hand-written README.md beside the report: the heading where the part about the run ends (what
# follows reports another study, named there), or None
SEARCH_PAGES = {"digits_quick": None, "early_tickets_mnist": "## Mask distances"}


@pytest.mark.parametrize("name", SEARCH_REPORTS)
def test_a_committed_search_report_is_what_its_committed_data_makes(name, tmp_path):
    """reports/<name>/summary.md is made again, byte for byte, from reports/<name>/data/ (the run's tables)."""
    page = ROOT / "reports" / name
    made = build_report(page / "data", tmp_path / "out")
    assert made.markdown.read_text() == (page / "summary.md").read_text()


def test_a_sparsest_within_search_reports_its_objective_first():
    """digits_quick searches the sparsest ticket within 1 pp of the dense network's validation accuracy: the
    headline's best ticket and the top table are that objective's answers (one per ladder, sparsest first), not
    the most accurate tickets."""
    from nas_lth.report.tables import summarise

    data = load(ROOT / "reports" / "digits_quick" / "data")
    comp = data.completed
    ok = comp[comp.val_acc >= comp.dense_val_acc - 0.01 - 1e-12]
    s = summarise(data)
    best = next(line for line in s.headline if line.startswith("Best ticket"))
    assert "the sparsest within 0.01" in best and f"{100 * ok.weights_remaining.min():.2f} % of the weights" in best
    weights = s.top["weights %"].astype(float).tolist()
    assert weights == sorted(weights) and weights[0] == round(100 * ok.weights_remaining.min(), 2)
    assert s.top.trial.is_unique and "within 0.01" in s.top_text
    # the most accurate ticket is not within the bound's sparsest: the ranking differs from the default one
    assert comp.loc[comp.val_acc.idxmax(), "weights_remaining"] > ok.weights_remaining.min()


@pytest.mark.parametrize("name", SEARCH_PAGES)
def test_the_numbers_a_search_reports_page_states_are_its_runs(name):
    """Every decimal number in reports/<name>/README.md's prose is printed by the run (output.txt) or its report
    (summary.md)."""
    page = ROOT / "reports" / name
    text = (page / "README.md").read_text()
    if SEARCH_PAGES[name]:
        text = text.split(SEARCH_PAGES[name])[0]
    said = re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text)
    printed = (page / "output.txt").read_text() + (page / "summary.md").read_text()
    assert said and not [n for n in said if n not in printed]
