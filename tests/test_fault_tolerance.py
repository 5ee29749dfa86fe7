"""Faults a cluster search survives: a worker node lost mid-trial, a driver killed with SIGKILL, and
trials that raise or diverge. Real Ray: `ray.cluster_utils.Cluster` runs a head (0 CPUs) and two
1-CPU worker nodes on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_search import digests, reap_session, search_env, session_pids, tiny_space, write_space

from nas_lth.store import read

pytestmark = pytest.mark.integration
TIMEOUT_S = 600


def start(cmd: list[str], cwd: Path, log: str) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=search_env(), stdout=open(cwd / f"{log}.out", "w"),
                            stderr=open(cwd / f"{log}.err", "w"), start_new_session=True)


def logs(cwd: Path, log: str) -> str:
    return (cwd / f"{log}.out").read_text()[-3000:] + (cwd / f"{log}.err").read_text()[-3000:]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the search ended (code {proc.returncode}) before {what}")
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def search_cmd(space: Path, storage: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas_lth.search", str(space), "--storage", str(storage), "--no-dashboard",
            "--progress-every", "5", *extra]


def test_worker_node_lost_mid_trial(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 2}})
    proc = None
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        data = tiny_space("node_loss", 4, {"criterion": {"choice": ["large_final", "movement"]}},
                          scheduler="fifo", max_failures=3, checkpoint_every_s=1, searcher="grid")
        data["strategy"].pop("num_samples")
        data["search"]["rounds"] = {"choice": [1, 2]}
        data["fixed"].update(budget=150)  # ~3,000 iterations: long enough to lose a node mid-trial
        space = write_space(tmp_path / "space.yaml", data)
        storage = tmp_path / "runs"
        proc = start(search_cmd(space, storage, "--address", cluster.address), tmp_path, "node")

        def checkpoints():  # Tune keeps each trial's checkpoints in its folder of the experiment
            return sorted({p.parent.name for p in (storage / "node_loss").glob("*/checkpoint_*")})

        wait_for(lambda: len(checkpoints()) >= 2, 420, "two running trials to checkpoint", proc)
        cluster.remove_node(workers[0])
        proc.wait(TIMEOUT_S)
        assert proc.returncode == 0, logs(tmp_path, "node")
        trials = read(storage / "node_loss").trials
        assert len(trials) == 4 and trials.trial_id.is_unique
        assert (trials.status == "completed").all(), trials[["trial_id", "status", "message"]]
        assert (trials.restores >= 1).any(), "no trial resumed from a checkpoint after the node loss"
        assert (trials.epochs_trained == 150).all()
    finally:
        if proc is not None:
            reap_session(proc)
        cluster.shutdown()


def test_driver_killed_then_resume_finishes_without_rerunning(tmp_path):
    data = tiny_space("killed", 8, {"criterion": {"choice": ["large_final", "random", "movement", "snip"]},
                                     "rounds": {"choice": [1, 2]}}, scheduler="fifo", searcher="grid")
    data["strategy"].pop("num_samples")
    space = write_space(tmp_path / "space.yaml", data)
    storage = tmp_path / "runs"
    trials_dir = storage / "killed" / "trials"
    cmd = search_cmd(space, storage, "--num-cpus", "2")
    proc = start(cmd, tmp_path, "first")
    wait_for(lambda: trials_dir.is_dir() and len(list(trials_dir.glob("*.parquet"))) >= 2, 180,
             "two finished trials", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = digests(trials_dir)
    assert len(before) < 8, "every trial finished before the kill: make the trials longer"
    # the killed driver leaves its Ray processes behind; the test cleans them up
    orphans = session_pids(proc.pid)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not session_pids(proc.pid), 30, "the orphaned Ray processes to exit")

    second = start(cmd + ["--resume"], tmp_path, "resume")
    second.wait(TIMEOUT_S)
    assert second.returncode == 0, logs(tmp_path, "resume")
    assert not reap_session(second)
    trials = read(storage / "killed").trials
    assert len(trials) == 8 and trials.trial_id.is_unique
    after = digests(trials_dir)
    assert {name: after[name] for name in before} == before, "a trial finished before the kill was rewritten"
    assert (trials.status == "completed").all()


def test_a_raising_or_diverging_trial_is_recorded_and_the_search_goes_on(tmp_path):
    data = tiny_space("faulty", 12, {
        "model": {"choice": ["lenet300_100", "textcnn"]},
        # a TextCNN reads token ids: on images its embedding raises inside the trial (a real exception)
        "model_options.vocab_size": {"choice": [50], "when": {"model": "textcnn"}},
        "training.lr": {"choice": [1.0e-3, 1.0e+6]},  # SGD at lr 1e6 diverges
    }, scheduler="fifo", max_failures=0)
    del data["fixed"]["model"]
    data["fixed"]["training"].update(optimizer="sgd", momentum=0.9)
    space = write_space(tmp_path / "space.yaml", data)
    proc = start(search_cmd(space, tmp_path / "runs", "--num-cpus", "2"), tmp_path, "faulty")
    proc.wait(TIMEOUT_S)
    assert proc.returncode == 0, logs(tmp_path, "faulty")
    reap_session(proc)
    trials = read(tmp_path / "runs" / "faulty").trials
    assert len(trials) == 12
    cnn = trials[trials.model == "textcnn"]
    mlp = trials[trials.model == "lenet300_100"]
    assert len(cnn) and len(mlp)
    assert (cnn.status == "failed").all() and cnn.message.str.contains("Long|Int|indices").all(), cnn.message
    statuses = set(mlp.status)
    assert "diverged" in statuses and "completed" in statuses, mlp[["status", "message"]]
    assert mlp[mlp.status == "diverged"].message.str.contains("loss is").all()
    # a failed trial measured nothing: no 0.0 stands in for its metric, in the table or on the terminal
    assert cnn.val_acc.isna().all() and cnn.objective.isna().all(), cnn[["val_acc", "objective"]]
    out = (tmp_path / "faulty.out").read_text()
    failed_lines = [line for line in out.splitlines() if " failed " in line and "] trial " in line]
    assert len(failed_lines) == len(cnn), out[-3000:]
    assert all(line.split("val_acc=")[1].startswith("-") for line in failed_lines), failed_lines


def test_a_search_whose_every_trial_fails_reports_no_best_value(tmp_path):
    """Every trial raises (a text CNN on images): the progress line says there is no best value, not 0.0000."""
    data = tiny_space("allfail", 2, {"model_options.vocab_size": {"choice": [50, 60]}}, scheduler="fifo",
                      max_failures=0)
    data["fixed"]["model"] = "textcnn"
    space = write_space(tmp_path / "space.yaml", data)
    proc = start(search_cmd(space, tmp_path / "runs"), tmp_path, "allfail")
    proc.wait(TIMEOUT_S)
    assert proc.returncode == 0, logs(tmp_path, "allfail")
    reap_session(proc)
    assert (read(tmp_path / "runs" / "allfail").trials.status == "failed").all()
    out = (tmp_path / "allfail.out").read_text()
    progress = [line for line in out.splitlines() if "best full-budget val_acc:" in line]
    assert progress and progress[-1].endswith("best full-budget val_acc: -"), progress
