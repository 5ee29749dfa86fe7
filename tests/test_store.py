"""Tests for the results store (nas_lth.store): exactly-once Parquet files written atomically, the
reader, plain Parquet readers (pandas, polars, DuckDB) and the summaries (Pareto front, best tickets).

No Ray.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from nas_lth.errors import UserError
from nas_lth.store import (
    CURVE_COLUMNS,
    SCHEMA_VERSION,
    STATUSES,
    TRIAL_COLUMNS,
    locate,
    read,
    write_curve,
    write_trial,
)
from nas_lth.store.analysis import best_tickets, pareto_front
from nas_lth.store.writer import stored_row


def trial_row(trial_id: str, **kw) -> dict:
    """A full trials row with every value typed (as a completed trial writes it)."""
    row = {
        "experiment": "exp", "trial_id": trial_id, "criterion": "large_final", "stop_at": "end", "eb_eps": 0.1,
        "eb_window": 5, "rewind_to": 0, "reinit": "original", "prune_rate_fc": 0.2, "prune_rate_conv": 0.15,
        "prune_rate_output": 0.1, "prune_rate_embedding": 0.1, "target_weights": 0.2, "rounds": 2,
        "scope": "layerwise", "budget": 6.0, "seed": 0, "model": "lenet300_100", "dataset": "digits",
        "weights_remaining": 0.21, "val_acc": 0.95, "val_loss": 0.2, "test_acc": 0.94, "test_loss": 0.25,
        "val_acc_at_early_stop": 0.95, "test_acc_at_early_stop": 0.94, "early_stop_iter": 120, "mask_iter": 20,
        "early_bird_drawn": False, "epochs_trained": 6.0, "iterations_trained": 240, "shared_iterations": 120,
        "dense_val_acc": 0.97, "dense_test_acc": 0.96, "dense_objective": 0.97, "objective": 0.95,
        "status": "completed", "message": "", "wall_seconds": 1.5, "node": "host", "device": "cpu",
        "mask_digest": "abc123", "trajectory_key": "k1",
    }
    row.update(kw)
    return row


def curve(trial_id: str, n: int = 4) -> list[dict]:
    return [{"experiment": "exp", "trial_id": trial_id, "round": 1, "run": "original", "iteration": 10 * i,
             "epoch": 0.5 * i, "train_loss": float("nan") if i == 0 else 1.0 / i, "val_loss": 1.0 / (i + 1),
             "val_acc": 0.1 * i} for i in range(n)]


def all_files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]


@pytest.fixture
def exp(tmp_path):
    return locate(str(tmp_path / "runs" / "exp"))


@pytest.fixture
def three_trials(exp):
    for i, tid in enumerate(["t1", "t2", "t3"]):
        write_trial(exp, tid, trial_row(tid, val_acc=0.9 + i / 100, rounds=i + 1))
        write_curve(exp, tid, curve(tid, n=3 + i))
    return exp


# ------------------------------------------------------------------ writer + reader


def test_write_then_read_returns_the_rows(three_trials, tmp_path):
    res = read(str(tmp_path / "runs" / "exp"))
    trials = res.trials.sort_values("trial_id").reset_index(drop=True)
    assert list(trials.trial_id) == ["t1", "t2", "t3"]
    assert list(trials.rounds) == [1, 2, 3]
    assert trials.val_acc.tolist() == pytest.approx([0.90, 0.91, 0.92])
    assert (trials.schema_version == SCHEMA_VERSION).all()
    assert set(TRIAL_COLUMNS) <= set(trials.columns)
    assert set(trials.status) <= set(STATUSES)
    curves = res.curves
    assert set(CURVE_COLUMNS) <= set(curves.columns)
    assert curves.groupby("trial_id").size().to_dict() == {"t1": 3, "t2": 4, "t3": 5}
    assert math.isnan(curves[curves.iteration == 0].train_loss.iloc[0])
    assert res.location == str(tmp_path / "runs" / "exp")


def test_files_are_named_by_trial_id(three_trials, tmp_path):
    root = tmp_path / "runs" / "exp"
    assert sorted(p.name for p in (root / "trials").iterdir()) == ["t1.parquet", "t2.parquet", "t3.parquet"]
    assert sorted(p.name for p in (root / "curves").iterdir()) == ["t1.parquet", "t2.parquet", "t3.parquet"]


def test_a_stored_row_is_final_and_only_a_failed_one_gives_way(exp, tmp_path):
    write_trial(exp, "t1", trial_row("t1", val_acc=0.5))
    write_curve(exp, "t1", curve("t1", n=2))
    path = tmp_path / "runs" / "exp" / "trials" / "t1.parquet"
    first = path.read_bytes()
    kept = write_trial(exp, "t1", trial_row("t1", val_acc=0.7))  # a trial Tune replayed after a resume
    assert kept is not None and kept["val_acc"] == pytest.approx(0.5)
    assert write_trial(exp, "t1", {"experiment": "exp", "trial_id": "t1", "status": "failed"}) is not None
    assert path.read_bytes() == first  # neither a second result nor a failure rewrites it
    # a failed row is what a re-run after --resume replaces; a second failure does not
    write_trial(exp, "t2", {"experiment": "exp", "trial_id": "t2", "status": "failed", "message": "oom"})
    assert write_trial(exp, "t2", {"experiment": "exp", "trial_id": "t2", "status": "failed",
                                   "message": "again"}) is not None
    assert write_trial(exp, "t2", trial_row("t2", val_acc=0.8)) is None
    # a lost row written again from Tune's state replaces whatever is there
    assert write_trial(exp, "t1", trial_row("t1", val_acc=0.6), replace=True) is None
    res = read(str(tmp_path / "runs" / "exp"))
    assert sorted(res.trials.trial_id) == ["t1", "t2"]
    assert res.trials.set_index("trial_id").val_acc.to_dict() == pytest.approx({"t1": 0.6, "t2": 0.8})
    assert len(res.curves) == 2


def test_an_unreadable_row_is_no_row_and_is_written_again(exp, tmp_path):
    path = tmp_path / "runs" / "exp" / "trials" / "t1.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 torn")
    assert stored_row(exp, "t1") is None
    assert write_trial(exp, "t1", trial_row("t1", val_acc=0.5)) is None
    assert stored_row(exp, "t1")["val_acc"] == pytest.approx(0.5)


def test_no_temporary_files_are_left_behind(three_trials, tmp_path):
    files = all_files(tmp_path / "runs")
    assert len(files) == 6
    assert not [f for f in files if f.name.startswith((".", "_")) or f.suffix != ".parquet"]


def test_a_failed_write_leaves_neither_a_temporary_file_nor_a_partial_file(exp, tmp_path, monkeypatch):
    write_trial(exp, "t1", trial_row("t1", val_acc=0.5))
    before = (tmp_path / "runs" / "exp" / "trials" / "t1.parquet").read_bytes()

    def broken_write(table, where, filesystem=None, **kw):
        with open(where, "wb") as f:  # half a file, then the disk fills up
            f.write(b"PAR1 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError):
        write_trial(exp, "t1", trial_row("t1", val_acc=0.9), replace=True)
    with pytest.raises(OSError):
        write_trial(exp, "t2", trial_row("t2"))
    monkeypatch.undo()
    files = all_files(tmp_path / "runs")
    assert [f.name for f in files] == ["t1.parquet"]
    assert files[0].read_bytes() == before  # the old row is intact
    assert read(str(tmp_path / "runs" / "exp")).trials.val_acc.tolist() == [0.5]


def test_empty_curve_writes_no_file(exp, tmp_path):
    write_trial(exp, "t1", trial_row("t1"))
    write_curve(exp, "t1", [])
    assert not (tmp_path / "runs" / "exp" / "curves").exists()
    res = read(str(tmp_path / "runs" / "exp"))
    assert len(res.trials) == 1 and res.curves.empty


def test_optional_columns_are_concatenated_with_missing_values(exp, tmp_path):
    write_trial(exp, "a", trial_row("a"))
    write_trial(exp, "b", trial_row("b", val_micro_f1=0.8, test_macro_f1=0.7))  # multi-label metrics
    write_trial(exp, "c", {"experiment": "exp", "trial_id": "c", "status": "failed", "message": "boom"})
    trials = read(str(tmp_path / "runs" / "exp")).trials.set_index("trial_id")
    assert len(trials) == 3
    assert trials.val_micro_f1["b"] == pytest.approx(0.8)
    assert math.isnan(trials.val_micro_f1["a"]) and math.isnan(trials.val_micro_f1["c"])
    assert math.isnan(trials.test_macro_f1["a"])
    assert math.isnan(trials.val_acc["c"]) and trials.val_acc["a"] == pytest.approx(0.95)
    assert trials.message["c"] == "boom"


def test_missing_values_in_some_files_are_read_back_as_missing(exp, tmp_path):
    # a stopped trial has no test metrics: None in its row
    write_trial(exp, "a", trial_row("a", status="stopped", test_acc=None, val_loss=None, mask_digest=None))
    write_trial(exp, "b", trial_row("b"))
    trials = read(str(tmp_path / "runs" / "exp")).trials.set_index("trial_id")
    assert math.isnan(trials.test_acc["a"]) and trials.test_acc["b"] == pytest.approx(0.94)
    assert pd.isna(trials.mask_digest["a"]) and trials.mask_digest["b"] == "abc123"


def test_hidden_and_underscore_files_are_ignored(three_trials, tmp_path):
    trials_dir = tmp_path / "runs" / "exp" / "trials"
    (trials_dir / ".t9.parquet.1234.tmp").write_bytes(b"half")
    (trials_dir / ".t8.parquet").write_bytes(b"half")
    (trials_dir / "_SUCCESS").write_bytes(b"")
    assert len(read(str(tmp_path / "runs" / "exp")).trials) == 3


def test_read_of_a_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such experiment directory"):
        read(str(tmp_path / "nope"))


def test_read_of_a_directory_without_trials_is_a_user_error(tmp_path):
    (tmp_path / "exp" / "curves").mkdir(parents=True)
    with pytest.raises(UserError, match="no trials/ folder"):
        read(str(tmp_path / "exp"))


def test_read_of_an_empty_trials_folder_gives_empty_tables(tmp_path):
    (tmp_path / "exp" / "trials").mkdir(parents=True)
    res = read(str(tmp_path / "exp"))
    assert res.trials.empty and res.curves.empty


def test_locate_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loc = locate("runs")
    assert loc.uri == str(tmp_path / "runs") and loc.path == str(tmp_path / "runs")
    assert locate(f"file://{tmp_path}/runs").path == str(tmp_path / "runs")
    sub = loc.join("exp", "trials")
    assert sub.uri == str(tmp_path / "runs" / "exp" / "trials")
    assert not sub.exists() and sub.list() == []


# ------------------------------------------------------------------ plain Parquet readers


def test_plain_pandas_polars_and_duckdb_read_the_tables(three_trials, tmp_path):
    root = tmp_path / "runs" / "exp"
    df = pd.read_parquet(root / "trials")
    assert sorted(df.trial_id) == ["t1", "t2", "t3"]
    assert set(TRIAL_COLUMNS) <= set(df.columns)
    assert len(pd.read_parquet(root / "curves")) == 12

    pdf = pl.read_parquet(str(root / "trials" / "*.parquet"))
    assert pdf.height == 3 and sorted(pdf["trial_id"].to_list()) == ["t1", "t2", "t3"]
    assert pl.read_parquet(str(root / "curves" / "*.parquet")).height == 12

    [(n,)] = duckdb.sql(f"select count(*) from read_parquet('{root}/trials/*.parquet')").fetchall()
    assert n == 3
    [(n, best)] = duckdb.sql(f"select count(*), max(val_acc) from read_parquet('{root}/curves/*.parquet')").fetchall()
    assert n == 12 and best == pytest.approx(0.4)


def test_plain_readers_read_a_mix_of_stopped_and_completed_trials(exp, tmp_path):
    """What the search writes: a stopped trial (no test metrics, no *_loss_at_early_stop columns) whose
    file name sorts before a completed trial's."""
    stopped = trial_row("a", status="stopped", val_loss=None, test_acc=None, test_loss=None,
                        val_acc_at_early_stop=None, test_acc_at_early_stop=None, early_stop_iter=None,
                        mask_iter=None, early_bird_drawn=None, shared_iterations=None, mask_digest=None,
                        trajectory_key=None, dense_val_acc=None, dense_test_acc=None, dense_objective=None)
    write_trial(exp, "a", stopped)
    write_trial(exp, "b", trial_row("b", val_loss_at_early_stop=0.2, test_loss_at_early_stop=0.3))
    root = tmp_path / "runs" / "exp" / "trials"
    df = pd.read_parquet(root)
    assert len(df) == 2 and "val_loss_at_early_stop" in df.columns
    assert df.set_index("trial_id").val_loss["b"] == pytest.approx(0.2)
    assert pl.read_parquet(str(root / "*.parquet")).height == 2
    [(n,)] = duckdb.sql(f"select count(val_loss) from read_parquet('{root}/*.parquet')").fetchall()
    assert n == 1


# ------------------------------------------------------------------ summaries

# (trial id, weights remaining, val_acc, status)
TABLE = [
    ("A", 0.10, 0.90, "completed"),  # front: the sparsest completed ticket
    ("B", 0.20, 0.95, "completed"),  # front
    ("C", 0.20, 0.93, "completed"),  # same weights as B, worse
    ("D", 0.30, 0.94, "completed"),  # more weights and worse than B
    ("E", 0.05, 0.99, "stopped"),  # would dominate everything, but never ran its full budget
    ("F", 0.50, 0.97, "completed"),  # front: the most accurate completed ticket
    ("G", 0.30, 0.95, "completed"),  # as accurate as B with more weights: dominated
    ("H", 0.02, float("nan"), "completed"),  # no accuracy
    ("I", 0.01, 0.99, "diverged"),
    ("J", 0.60, 0.999, "failed"),
    ("K", 0.40, 0.96, "completed"),  # front
]


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(TABLE, columns=["trial_id", "weights_remaining", "val_acc", "status"])


def test_pareto_front_keeps_exactly_the_non_dominated_completed_rows(table):
    front = pareto_front(table)
    assert list(front.trial_id) == ["A", "B", "K", "F"]  # sorted by weights remaining
    assert front.weights_remaining.is_monotonic_increasing and front.val_acc.is_monotonic_increasing


def test_pareto_front_with_other_columns(table):
    table["test_acc"] = [0.5, 0.6, 0.99, 0.6, 1.0, 0.4, 0.6, 0.6, 1.0, 1.0, 0.6]
    # H has no val_acc but a test_acc: it counts here; A and B are dominated by H (fewer weights, >= acc)
    assert list(pareto_front(table, acc="test_acc").trial_id) == ["H", "C"]


def test_pareto_front_of_nothing_completed_is_empty(table):
    assert pareto_front(table[table.status != "completed"]).empty
    assert pareto_front(table.iloc[:0]).empty


def test_best_tickets_order(table):
    best = best_tickets(table)
    assert list(best.trial_id) == ["F", "K", "B", "G", "D"]  # by val_acc, ties: fewer weights first
    assert list(best_tickets(table, n=2).trial_id) == ["F", "K"]
    assert set(best_tickets(table, n=100).trial_id) == {"A", "B", "C", "D", "F", "G", "K"}


def test_best_tickets_lists_each_recipe_once_with_its_trial_count():
    """A searcher may propose the same recipe again; null recipe fields (eb_eps of a non-Early-Bird
    trial) must not break the grouping."""
    rows = [
        {"trial_id": t, "status": "completed", "criterion": c, "stop_at": "end", "eb_eps": None, "rounds": 3,
         "weights_remaining": 0.07, "val_acc": v}
        for t, c, v in [("a", "movement", 0.98), ("b", "movement", 0.98), ("c", "large_final", 0.97),
                        ("d", "movement", 0.98)]
    ]
    best = best_tickets(pd.DataFrame(rows))
    assert list(best.trial_id) == ["a", "c"]
    assert list(best.trials) == [3, 1]


def test_unreadable_and_foreign_files_are_skipped_and_named(three_trials, tmp_path):
    """One place reads tolerantly: a truncated, an empty, a random-bytes and a foreign Parquet file with a
    conflicting column type are skipped and named; the good rows are read (the export CLI crashed on them)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    exp = tmp_path / "runs" / "exp"
    trials_dir = exp / "trials"
    good = sorted(trials_dir.glob("*.parquet"))[0].read_bytes()
    (trials_dir / "truncated.parquet").write_bytes(good[: len(good) // 2])
    (trials_dir / "empty.parquet").write_bytes(b"")
    (trials_dir / "noise.parquet").write_bytes(bytes(range(256)) * 4)
    buf = io.BytesIO()
    pq.write_table(pa.table({"trial_id": [1, 2], "val_acc": ["high", "low"]}), buf)  # ints and strings
    (trials_dir / "foreign.parquet").write_bytes(buf.getvalue())
    res = read(str(exp))
    assert len(res.trials) == 3 and set(res.trials.trial_id) == {"t1", "t2", "t3"}
    assert sorted(s.split(":")[0] for s in res.skipped) == [
        "trials/empty.parquet", "trials/foreign.parquet", "trials/noise.parquet", "trials/truncated.parquet"]
