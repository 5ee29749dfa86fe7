"""The Python API: nas_lth.search(...) runs a real search (local Ray, Optuna, Parquet) in this process and
returns DataFrames equal to the Parquet tables; nas_lth.load_results reads them back; a second search in the
same process works."""

from __future__ import annotations

import time
from pathlib import Path

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


def test_bad_in_memory_data_is_one_error_and_writes_nothing(tmp_path):
    """Issue 29: data= is checked before anything is stored: its form, the space's own dataset, mismatched
    lengths, non-finite features, labels outside 0..C-1."""
    import numpy as np

    x, y = np.zeros((20, 3), np.float32), np.arange(20) % 2
    space = {**SPACE, "fixed": {k: v for k, v in SPACE["fixed"].items() if k != "dataset"}}
    cases = [
        (SPACE, {"train": (x, y), "test": (x, y)}, r"^space: fixed.dataset is 'digits', but data= gives the arrays"),
        (space, (x, y), r"^data=: give \{'train': \(x, y\), 'test': \(x, y\)\}"),
        (space, {"train": (x, y), "test": (x, y), "val": (x, y)}, r"^data=: give .*got \['test', 'train', 'val'\]"),
        (space, {"train": (x, y[:19]), "test": (x, y)}, r"train split has inputs of shape \(20, 3\) and labels"),
        (space, {"train": (x, y), "test": (x * np.nan, y)}, r"test inputs hold non-finite"),
        (space, {"train": (x, y), "test": (x, y + 1), "num_classes": 2}, r"test labels range 1..2; allowed 0..1"),
        (space, {"train": (x[:, 0], y), "test": (x, y)}, r"^data\['train'\]: inputs of shape \(20,\)"),
    ]
    for sp, data, message in cases:
        with pytest.raises(UserError, match=message):
            nas_lth.search(sp, data=data, storage=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_in_memory_arrays_are_stored_once_by_content(tmp_path):
    """The same arrays give the same file (so a resumed search sees its space unchanged), other arrays
    another; a file is never rewritten."""
    import numpy as np

    from nas_lth.api import InMemory

    x, y = np.arange(60, dtype=np.float32).reshape(20, 3), np.arange(20) % 2
    a, b = InMemory.of({"train": (x, y), "test": (x, y)}, str(tmp_path)), \
        InMemory.of({"train": (x.copy(), y.copy()), "test": (x, y)}, str(tmp_path))
    c = InMemory.of({"train": (x + 1, y), "test": (x, y)}, str(tmp_path))
    assert a.file.uri == b.file.uri != c.file.uri and a.fixed()["dataset"] == "arrays"
    a.write()
    stored = Path(a.file.path)
    stamp = stored.stat().st_mtime_ns, stored.read_bytes()
    time.sleep(0.01)
    b.write()
    assert (stored.stat().st_mtime_ns, stored.read_bytes()) == stamp
    from nas_lth.data import load_dataset

    data = load_dataset("arrays", options=a.fixed()["dataset_options"])
    assert data.num_classes == 2 and data.input_shape == (3,) and len(data.test) == 20


NOTEBOOK = '''
import signal, sys
import nas_lth

space = {"name": "nb", "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 2, "seed": 0,
         "target_weights": 0.2, "eval_rounds": "last", "training": {"eval_every": 10}},
         "search": {"criterion": {"choice": ["large_final", "random"]},
                    "rounds": {"choice": [1, 2]}},
         "strategy": {"num_samples": 4, "searcher": "grid", "scheduler": "fifo", "max_concurrent": 1}}
handler = signal.getsignal(signal.SIGINT)
res = nas_lth.search(space, storage=sys.argv[1], num_cpus=1, resume=sys.argv[2] == "resume")
kept = signal.getsignal(signal.SIGINT) is handler
print("interrupted", res.interrupted, "rows", len(res.trials), "handler kept", kept, flush=True)
'''


@pytest.mark.integration
def test_ctrl_c_in_a_notebook_saves_the_experiment_and_resume_finishes_it(tmp_path):
    """Issue 29 item 4: a KeyboardInterrupt (a notebook's "interrupt kernel" is SIGINT to the kernel's main
    thread) ends nas_lth.search with the experiment saved, results.interrupted set and the caller's SIGINT
    handler back in place; resume=True then finishes every trial once."""
    import os
    import signal
    import subprocess
    import sys

    from nas_lth.store import read

    (tmp_path / "nb.py").write_text(NOTEBOOK)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ADDRESS": "local"}
    storage = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "nb.py", str(storage), "new"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    trials = storage / "nb" / "trials"
    deadline = time.monotonic() + 240
    while not (trials.is_dir() and any(trials.glob("*.parquet"))) and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    assert "interrupted True" in out and "handler kept True" in out, out[-2000:] + err[-3000:]
    first = len(read(str(storage / "nb")).trials)
    assert 1 <= first < 4
    done = subprocess.run([sys.executable, "nb.py", str(storage), "resume"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "interrupted False rows 4" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
    rows = read(str(storage / "nb")).trials
    assert rows.trial_id.is_unique and not rows.duplicated(["criterion", "rounds"]).any()
