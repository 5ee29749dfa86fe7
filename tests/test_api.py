"""The Python API: nas_lth.search(...) runs a real search (local Ray, Optuna, Parquet) in this process and
returns DataFrames equal to the Parquet tables; nas_lth.load_results reads them back; a second search in the
same process works."""

from __future__ import annotations

import pandas as pd
import pytest

import nas_lth
import nas_lth.export
from nas_lth.errors import UserError

SPACE = {
    "name": "api",
    "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 2, "seed": 0, "target_weights": 0.2,
              "eval_rounds": "last", "training": {"eval_every": 10}},
    "search": {"criterion": {"choice": ["large_final", "random"]}},
    "strategy": {"num_samples": 2, "searcher": "random", "seed": 0, "scheduler": "fifo", "max_concurrent": 2},
}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = ["trial_id"] + (["step"] if "step" in a else []) + (["round", "run"] if "run" in a else [])
    a, b = (df.sort_values(key).reset_index(drop=True) for df in (a, b))
    pd.testing.assert_frame_equal(a[sorted(a.columns)], b[sorted(a.columns)], check_dtype=False)


@pytest.mark.integration
def test_search_returns_the_tables_it_stored_and_runs_twice_in_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    first = nas_lth.search(SPACE, storage=str(tmp_path / "runs"), num_cpus=2)
    exp = tmp_path / "runs" / "api"
    assert first.location == str(exp) and first.interrupted is False
    assert len(first.trials) == 2 and (first.trials.status == "completed").all()
    _same(first.trials, pd.read_parquet(exp / "trials"))
    _same(first.curves, pd.read_parquet(exp / "curves"))
    assert first.best_ticket is not None and first.best_ticket.endswith(f"{first.best.iloc[0].trial_id}.pt")
    assert nas_lth.export.load(first.best_ticket) is not None
    assert "best tickets (full budget)" in first.summary()

    loaded = nas_lth.load_results(exp)
    _same(loaded.trials, first.trials)
    assert loaded.summary() == first.summary()

    second = nas_lth.search(SPACE, storage=str(tmp_path / "runs"), name="again", num_samples=1, num_cpus=2)
    assert len(second.trials) == 1 and second.location == str(tmp_path / "runs" / "again")


def test_bad_options_are_one_error_before_anything_starts(tmp_path):
    with pytest.raises(UserError, match=r"unknown option 'num_sample'; allowed: "):
        nas_lth.search(SPACE, storage=str(tmp_path), num_sample=3)
    with pytest.raises(UserError, match=r"--seed -1: allowed 0 <= seed < 2\*\*32"):
        nas_lth.search(SPACE, storage=str(tmp_path), seed=-1)
    with pytest.raises(UserError, match=r"space: give a YAML file's path, a mapping or a SearchSpace"):
        nas_lth.search(42)
    assert not list(tmp_path.iterdir())
