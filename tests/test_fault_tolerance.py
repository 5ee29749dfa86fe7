"""Faults a cluster search survives: a worker node lost mid-trial, a driver killed with SIGKILL, and
trials that raise or diverge. Real Ray: `ray.cluster_utils.Cluster` runs a head (0 CPUs) and two
1-CPU worker nodes on this machine."""

from __future__ import annotations

import os
import shutil
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


def grid_space(tmp_path: Path, name: str) -> Path:
    """An 8-point grid (4 criteria x 1 or 2 rounds) run FIFO: each point is one trial, and a doubled or missing
    row shows as a grid point with two rows or none."""
    data = tiny_space(name, 8, {"criterion": {"choice": ["large_final", "random", "movement", "snip"]},
                                "rounds": {"choice": [1, 2]}}, scheduler="fifo", searcher="grid")
    data["strategy"].pop("num_samples")
    return write_space(tmp_path / "space.yaml", data)


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

        def checkpointed_and_running():
            """Trials still running (no row yet) that have written two checkpoints: a trial hands a report over
            before it trains on to the next, so the first one has long left the trial and whichever node goes, its
            trial has a checkpoint to restore. (A trial that had already finished, or had only just written its
            first checkpoint, made this test fail under load.)"""
            exp = storage / "node_loss"
            done = {p.stem for p in (exp / "trials").glob("*.parquet")}
            # Tune keeps each trial's checkpoints in its folder: ticket_trainable_<trial id>_<n>_<params>_<time>
            # (Tune keeps the last two: checkpoint_<k> with k >= 1 means at least two were made)
            two = {p.parent.name.split("_")[2] for p in exp.glob("*/checkpoint_*") if int(p.name.split("_")[1]) >= 1}
            return sorted(two - done)

        wait_for(lambda: len(checkpointed_and_running()) >= 2, 420, "two running trials to checkpoint twice", proc)
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
    space = grid_space(tmp_path, "killed")
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
    # the killed driver leaves its Ray processes behind (issue 27 item 6): the resuming driver ends them
    assert session_pids(proc.pid), "the killed driver left no Ray process: nothing to test"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)

    second = start(cmd + ["--resume"], tmp_path, "resume")
    try:
        wait_for(lambda: not session_pids(proc.pid), 60, "the resuming driver to end the orphaned Ray processes",
                 second)
        assert bystander.poll() is None, "a process that was not the dead driver's was ended"
    finally:
        bystander.kill()
        for pid in session_pids(proc.pid):  # the test's own clean-up, should the check above fail
            os.kill(pid, signal.SIGKILL)
    second.wait(TIMEOUT_S)
    assert second.returncode == 0, logs(tmp_path, "resume")
    assert "process(es) of the dead driver's Ray instance" in (tmp_path / "resume.err").read_text()
    assert not reap_session(second)
    trials = read(storage / "killed").trials
    assert len(trials) == 8 and trials.trial_id.is_unique
    after = digests(trials_dir)
    assert {name: after[name] for name in before} == before, "a trial finished before the kill was rewritten"
    assert (trials.status == "completed").all(), trials[["trial_id", "status", "message"]]


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


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then what it left behind (its Ray processes), as a crash would leave them."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    for pid in session_pids(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not session_pids(proc.pid), 30, "the orphaned Ray processes to exit")


def row_count(trials_dir: Path) -> int:
    return len(list(trials_dir.glob("*.parquet"))) if trials_dir.is_dir() else 0


def test_a_checkpoint_gone_since_tunes_snapshot_falls_back_instead_of_failing(tmp_path):
    """Tune deletes a trial's older checkpoints as new ones arrive; a snapshot taken before that names one that
    is gone after a SIGKILL. Here every checkpoint is removed after the kill: each running trial starts over
    (none is recorded as failed) and every row stored before the kill stays byte for byte."""
    data = tiny_space("lost_ckpt", 6, {"criterion": {"choice": ["large_final", "random", "movement"]},
                                       "rounds": {"choice": [2, 3]}}, scheduler="fifo", searcher="grid")
    data["strategy"].pop("num_samples")
    data["fixed"]["budget"] = 20  # trials checkpoint every epoch for a while: the kill finds some running
    space = write_space(tmp_path / "space.yaml", data)
    storage = tmp_path / "runs"
    exp, trials_dir = storage / "lost_ckpt", storage / "lost_ckpt" / "trials"
    cmd = search_cmd(space, storage, "--num-cpus", "2")
    proc = start(cmd, tmp_path, "first")
    wait_for(lambda: row_count(trials_dir) >= 1 and any(exp.glob("ticket_trainable_*/checkpoint_*")), 240,
             "a stored row and a running trial's checkpoint", proc)
    kill_session(proc)
    before = digests(trials_dir)
    gone = [p for p in exp.glob("ticket_trainable_*/checkpoint_*")]
    assert gone and len(before) < 6
    for p in gone:
        shutil.rmtree(p)
    second = start(cmd + ["--resume"], tmp_path, "resume")
    second.wait(TIMEOUT_S)
    assert second.returncode == 0, logs(tmp_path, "resume")
    reap_session(second)
    out = (tmp_path / "resume.out").read_text()
    # the kill can land while Tune rewrites its only snapshot: then the search starts again (tested below)
    # and no checkpoint is named at all
    assert "is gone" in out or "cut short" in out, out[-3000:]
    trials = read(storage / "lost_ckpt").trials
    assert len(trials) == 6 and trials.trial_id.is_unique
    assert (trials.status == "completed").all(), trials[["trial_id", "status", "message"]]
    after = digests(trials_dir)
    assert {name: after[name] for name in before} == before


CHAOS_CYCLES = 2  # kills in CI; each kill lands at a different point (after 2 or 3 new rows)


def test_repeated_kill_and_resume_stores_each_trial_once_and_never_rewrites_a_row(tmp_path):
    """Issue 27 item 1: SIGKILL the driver as soon as two or three new rows are stored, --resume, and again,
    CHAOS_CYCLES times, with Tune's periodic snapshot off so that it lags the rows (trials created and finished
    after it, stopped trials started again). Every row stored before a kill stays byte for byte; at the end each grid
    point has exactly one row and no trial failed."""
    grid = {"criterion": {"choice": ["large_final", "random", "movement", "snip"]}, "rounds": {"choice": [1, 2, 3]}}
    data = tiny_space("chaos", 12, grid, scheduler="asha", grace_period=1, reduction_factor=2, searcher="grid")
    data["strategy"].pop("num_samples")
    space = write_space(tmp_path / "space.yaml", data)
    storage = tmp_path / "runs"
    trials_dir = storage / "chaos" / "trials"
    cmd = search_cmd(space, storage, "--num-cpus", "2")
    env = {**search_env(), "TUNE_GLOBAL_CHECKPOINT_S": "1000"}
    stored: dict[str, str] = {}
    kills = 0
    for cycle in range(CHAOS_CYCLES + 1):
        args = cmd + (["--resume"] if cycle else [])
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=open(tmp_path / f"c{cycle}.out", "w"),
                                stderr=open(tmp_path / f"c{cycle}.err", "w"), start_new_session=True)
        if cycle < CHAOS_CYCLES:
            n = row_count(trials_dir)
            deadline = time.monotonic() + 240
            # two or three new rows: the later ones belong to trials Tune created after its last snapshot
            while row_count(trials_dir) < n + 2 + cycle % 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        if proc.poll() is None and cycle < CHAOS_CYCLES:
            kill_session(proc)
            kills += 1
        else:
            proc.wait(TIMEOUT_S)
            assert proc.returncode == 0, logs(tmp_path, f"c{cycle}")
            reap_session(proc)
        now = digests(trials_dir)
        assert {k: now.get(k) for k in stored} == stored, f"cycle {cycle}: a stored row was rewritten"
        stored = now
        if cycle >= 1 and proc.returncode == 0 and len(now) >= 12:
            break
    assert kills >= 2, "the search finished before it could be killed twice: make the trials longer"
    trials = read(storage / "chaos").trials
    assert trials.trial_id.is_unique
    assert len(trials) == 12, trials[["trial_id", "criterion", "rounds", "status"]]
    assert not trials.duplicated(["criterion", "rounds"]).any(), trials[["trial_id", "criterion", "rounds"]]
    assert (trials.status != "failed").all(), trials[["trial_id", "status", "message"]]


def test_a_snapshot_cut_short_resumes_and_the_stored_rows_stand_for_their_trials(tmp_path):
    """Issue 27 item 3: a kill or a full disk while Tune rewrites its snapshot leaves experiment_state-*.json
    cut short (here: emptied, the experiment's only run). --resume sets it aside (kept under torn/) and starts
    the search again in the folder; the grid's trials drawn again keep the rows stored before: one row per
    grid point, none rewritten."""
    space = grid_space(tmp_path, "torn")
    storage = tmp_path / "runs"
    exp, trials_dir = storage / "torn", storage / "torn" / "trials"
    cmd = search_cmd(space, storage, "--num-cpus", "2")
    proc = start(cmd, tmp_path, "first")
    wait_for(lambda: row_count(trials_dir) >= 2, 180, "two finished trials", proc)
    kill_session(proc)
    before = digests(trials_dir)
    (state,) = exp.glob("experiment_state-*.json")
    state.write_bytes(state.read_bytes()[:0])
    second = start(cmd + ["--resume"], tmp_path, "resume")
    second.wait(TIMEOUT_S)
    assert second.returncode == 0, logs(tmp_path, "resume")
    reap_session(second)
    out = (tmp_path / "resume.out").read_text()
    assert "cut short" in out and (exp / "torn" / state.name).exists(), out[-3000:]
    trials = read(storage / "torn").trials
    assert len(trials) == 8 and trials.trial_id.is_unique, trials[["trial_id", "criterion", "rounds"]]
    assert not trials.duplicated(["criterion", "rounds"]).any()
    after = digests(trials_dir)
    assert {name: after[name] for name in before} == before


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs: a disk that really fills up (ENOSPC from the kernel, not a mock)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {made.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_ends_the_search_in_one_line_and_resume_finishes_it(tmp_path, small_disk):
    """Issue 27 item 3: the storage fills up mid-search. The search ends with one error line (exit 2), no
    traceback and no trial recorded as failed; once space is freed, --resume finishes every trial once."""
    space = grid_space(tmp_path, "full")
    storage = small_disk / "runs"
    trials_dir = storage / "full" / "trials"
    cmd = search_cmd(space, storage, "--num-cpus", "2")
    proc = start(cmd, tmp_path, "first")
    wait_for(lambda: row_count(trials_dir) >= 2, 180, "two finished trials", proc)
    with open(small_disk / "filler", "wb") as f:  # take every free byte
        try:
            while True:
                f.write(b"\0" * (1 << 20))
        except OSError:
            pass
    proc.wait(TIMEOUT_S)
    reap_session(proc)
    err = (tmp_path / "first.err").read_text()
    before = digests(trials_dir)
    if len(before) < 8:  # the disk filled before the search ended (the usual case)
        assert proc.returncode == 2, logs(tmp_path, "first")
        assert "Traceback" not in err, err[-3000:]
        assert "error: --storage" in err and "no space left on device" in err and "--resume" in err, err[-3000:]
    (small_disk / "filler").unlink()
    second = start(cmd + ["--resume"], tmp_path, "resume")
    second.wait(TIMEOUT_S)
    assert second.returncode == 0, logs(tmp_path, "resume")
    reap_session(second)
    trials = read(storage / "full").trials
    assert len(trials) == 8 and trials.trial_id.is_unique, trials[["trial_id", "criterion", "rounds", "status"]]
    assert not trials.duplicated(["criterion", "rounds"]).any()
    assert (trials.status == "completed").all(), trials[["trial_id", "status", "message"]]
    after = digests(trials_dir)
    assert {name: after[name] for name in before} == before
