"""benchmarks/lth_cnn_budget.py on two real (tiny) Conv-2 ladders: rounds are matched by the weights they keep,
and the page's gains are the stored rows' paired differences."""

from __future__ import annotations

import pandas as pd
from test_data import make_mnist

from benchmarks import lth_cnn, lth_cnn_budget


def ladder(tmp_path, folder, *extra):
    assert lth_cnn.main(["--data-dir", str(tmp_path / "data"), "--models", "conv2", "--epochs", "1",
                         "--eval-every", "1", "--val-size", "20", "--threads", "1", "--no-verify",
                         "--results", str(tmp_path / folder), "--report-dir", str(tmp_path / f"{folder}-report"),
                         *extra]) == 0
    return pd.read_parquet(tmp_path / folder / "conv2-s0.parquet")


def test_a_long_round_is_compared_with_the_short_round_of_its_sparsity(tmp_path):
    make_mnist(tmp_path / "data", n_train=84, n_test=16)
    short = ladder(tmp_path, "short", "--rounds", "2")
    # one round at the rates of two short ones: the same per-layer density as the short ladder's round 2
    long = ladder(tmp_path, "long", "--rounds", "1", "--prune-rate", "conv=0.19", "fc=0.36", "output=0.19")
    assert lth_cnn_budget.match(short, long) == [(0, 0), (2, 1)]
    out = tmp_path / "budget.md"
    assert lth_cnn_budget.main(["--short", "short", "2", "--long", "long", "1", "--results", str(tmp_path),
                                "--out", str(out)]) == 0
    acc = long.set_index(["round", "variant"]).test_acc_at_early_stop
    row = next(ln for ln in out.read_text().splitlines() if ln.startswith("| ") and ln[2].isdigit())
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[0] == f"{100 * long[long['round'] == 1].weights_remaining.iloc[0]:.1f}"
    assert cells[3] == f"{100 * (acc[(1, 'original')] - acc[(0, 'dense')]):+.2f}"
    assert cells[4] == f"{100 * (acc[(1, 'original')] - acc[(1, 'random_reinit')]):+.2f}"
    assert cells[5] == "1 / 1"
    at_last = int((long.early_stop_iter >= long.iterations.max()).sum())
    assert f"| long ({long.iterations.max()} it.) | {long.iterations.max()} | 3 | {at_last} (" in out.read_text()


def test_no_comparison_without_complete_ladders(tmp_path, capsys):
    (tmp_path / "short").mkdir()
    (tmp_path / "long").mkdir()
    assert lth_cnn_budget.main(["--results", str(tmp_path), "--short", "short", "2", "--long", "long", "1",
                                "--out", str(tmp_path / "b.md")]) == 0
    assert "nothing compared" in capsys.readouterr().out and not (tmp_path / "b.md").exists()


def test_a_missing_folder_or_a_bad_round_count_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "short").mkdir()
    for bad in (["--short", "shrot", "2"], ["--short", "short", "two"]):
        assert lth_cnn_budget.main(["--results", str(tmp_path), *bad, "--long", "short", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and " ".join(bad) in err
