"""Integration tests for the search (``python -m nas_lth.search``): a real local Ray instance, Tune,
Optuna and ASHA on a tiny LeNet-300-100/digits space; the Parquet tables it writes; refusing to
overwrite an experiment; SIGINT then ``--resume``.

Every search runs as a subprocess in its own session; a search that hangs is killed with its whole
session (the driver, GCS, raylet and workers), so no Ray process outlives a test.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from nas_lth.store import CURVE_COLUMNS, STATUSES, TRIAL_COLUMNS, read

SEARCH_TIMEOUT_S = 240


def tiny_space(name: str, num_samples: int, search: dict, **strategy) -> dict:
    return {
        "name": name,
        "description": "integration test",
        "fixed": {
            "model": "lenet300_100",
            "dataset": "digits",
            "budget": 6,
            "seed": 0,
            "target_weights": 0.2,
            "eval_rounds": "last",
            "training": {"eval_every": 10},
        },
        "search": search,
        "strategy": {"num_samples": num_samples, "searcher": "random", "seed": 0, "max_concurrent": 2,
                     "checkpoint_every_s": 0, **strategy},
    }


def write_space(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def search_cmd(space: Path, storage: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas_lth.search", str(space), "--storage", str(storage), "--no-dashboard",
            "--num-cpus", "2", "--progress-every", "5", *extra]


def search_env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)  # always a fresh local Ray instance
    return env


# ------------------------------------------------------------------ process hygiene


def session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` (the search subprocess and every Ray process it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and int(entry) != os.getpid() and fields[0] != "Z":  # zombies are gone
            pids.append(int(entry))
    return pids


def reap_session(proc: subprocess.Popen, grace_s: float = 20.0) -> list[int]:
    """Kill what is left of ``proc``'s session; returns the pids that were still alive after
    ``grace_s`` (a driver that exits normally takes its Ray processes with it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    deadline = time.monotonic() + grace_s
    left = session_pids(proc.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = session_pids(proc.pid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def start(cmd: list[str], cwd: Path, log: str) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=search_env(), stdout=open(cwd / f"{log}.out", "w"),
                            stderr=open(cwd / f"{log}.err", "w"), start_new_session=True)


def run(cmd: list[str], cwd: Path, log: str, timeout: float = SEARCH_TIMEOUT_S) -> SimpleNamespace:
    """Run a search to its end; on a timeout kill its session and fail."""
    proc = start(cmd, cwd, log)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        reap_session(proc, grace_s=0)
        pytest.fail(f"search did not finish in {timeout} s; stdout:\n{(cwd / f'{log}.out').read_text()[-3000:]}")
    left = reap_session(proc)
    out, err = (cwd / f"{log}.out").read_text(), (cwd / f"{log}.err").read_text()
    assert not left, f"processes left behind by the search: {left}"
    return SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err)


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are not Ray's own start-up warnings."""
    return [line for line in stderr.splitlines() if line.strip() and " WARNING " not in line]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------ end to end

E2E_SAMPLES = 8


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    space = write_space(work / "tiny.yaml", tiny_space(
        "tiny_e2e", E2E_SAMPLES,
        {"criterion": {"choice": ["large_final", "random", "snip"]},
         "stop_at": {"choice": [20, "end", "early_bird"]},
         "rounds": {"int": [1, 2]}},
        scheduler="asha", grace_period=1, reduction_factor=2))
    storage = work / "runs"
    t0 = time.monotonic()
    proc = run(search_cmd(space, storage), work, "e2e")
    return SimpleNamespace(proc=proc, space=space, storage=storage, work=work, exp=storage / "tiny_e2e",
                           seconds=time.monotonic() - t0)


@pytest.mark.integration
def test_search_end_to_end(e2e):
    proc = e2e.proc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for section in ("best tickets", "Pareto front", "Parquet:", "python -m nas_lth.report"):
        assert section in proc.stdout, (section, proc.stdout[-3000:])
    assert str(e2e.exp) in proc.stdout

    res = read(str(e2e.exp))
    trials, curves = res.trials, res.curves
    assert len(trials) == E2E_SAMPLES
    assert trials.trial_id.is_unique
    assert [c for c in TRIAL_COLUMNS if c not in trials.columns] == []
    assert set(trials.status) <= set(STATUSES), trials.status.tolist()
    assert (trials.experiment == "tiny_e2e").all()
    assert set(trials.criterion) <= {"large_final", "random", "snip"}
    assert set(trials.stop_at) <= {"20", "end", "early_bird"}
    assert set(trials.rounds) <= {1, 2}
    assert (trials.budget == 6).all() and (trials.target_weights == 0.2).all()
    assert (trials.model == "lenet300_100").all() and (trials.dataset == "digits").all()
    # what reproducibility depends on, in every row
    import torch

    assert (trials.torch_threads == 1).all() and (trials.torch_version == torch.__version__).all()
    assert (trials.rewind_mode == "continue").all() and (trials.device == "cpu").all()

    status = trials.status.value_counts().to_dict()
    assert status.get("stopped", 0) >= 1, f"ASHA stopped no trial: {status}"
    done = trials[trials.status == "completed"]
    assert len(done) >= 1, status
    # target_weights 0.2 sets the fc rates; the output layer (1 % of the weights) keeps its 10 % per round
    assert done.weights_remaining.between(0.19, 0.23).all(), done.weights_remaining.tolist()
    assert ((done.val_acc > 0) & (done.val_acc <= 1)).all(), done.val_acc.tolist()
    assert ((done.test_acc > 0) & (done.test_acc <= 1)).all(), done.test_acc.tolist()
    assert (done.epochs_trained == 6).all()
    stopped = trials[trials.status == "stopped"]
    assert (stopped.epochs_trained < 6).all(), stopped.epochs_trained.tolist()

    # the shared dense trajectory: computed once, reused by the others
    assert (done.shared_iterations > 0).any(), done[["trial_id", "shared_iterations"]]
    assert done.trajectory_key.notna().all()
    pts = list((e2e.exp / "trajectories").glob("*.pt"))
    assert pts, "no shared trajectory file"
    assert {p.stem for p in pts} >= set(done.trajectory_key)

    assert [c for c in CURVE_COLUMNS if c not in curves.columns] == []
    assert set(curves.trial_id) == set(trials.trial_id)
    assert (curves.groupby("trial_id").size() >= 2).all()
    assert not curves.duplicated(["trial_id", "round", "run", "iteration"]).any()
    last = curves[curves.trial_id.isin(done.trial_id)].groupby("trial_id").iteration.max()
    assert (last == 6 * 20).all(), last  # 6 epochs of 20 iterations (1,150 digits at batch 60)

    leftovers = [p for p in e2e.exp.rglob("*") if p.name.startswith(".") and p.name != ".validate_storage_marker"]
    assert leftovers == [], leftovers
    print(f"end-to-end search: {e2e.seconds:.0f} s")


def study_of(exp: Path):
    """The Optuna study inside the searcher state Tune saved with the experiment."""
    import pickle

    # one file per Tune session, named by its start time; the latest session's is the current state
    # (modification times do not tell: syncing to the storage path rewrites the older files as well)
    states = sorted(exp.glob("searcher-state-*.pkl"), key=lambda p: p.name)
    assert states, f"no searcher state in {exp}: {sorted(p.name for p in exp.iterdir())}"
    with open(states[-1], "rb") as f:
        return pickle.load(f)["_ot_study"]


def check_study_matches_trials(exp: Path, trials) -> dict:
    """Every stopped row is PRUNED (its intermediate values at epoch steps), every completed row COMPLETE
    with its full-budget objective, a replay FAIL with ``replay_of``, failed/diverged FAIL."""
    from optuna.trial import TrialState

    by_tune = {t.user_attrs.get("tune_trial_id"): t for t in study_of(exp).trials}
    seen = {}
    for row in trials.to_dict("records"):
        ot = by_tune.get(row["trial_id"])
        assert ot is not None, f"trial {row['trial_id']} is not in the Optuna study"
        replay = row["message"].startswith("same recipe as trial")
        if replay:
            assert ot.state == TrialState.FAIL and ot.user_attrs["replay_of"], (row["trial_id"], ot.state)
        elif row["status"] == "stopped":
            assert ot.state == TrialState.PRUNED, (row["trial_id"], ot.state)
            steps = sorted(ot.intermediate_values)
            assert steps and steps == list(range(1, len(steps) + 1)), steps  # epochs 1, 2, ...
            assert max(steps) <= row["epochs_trained"] + 1e-9 < row["budget"]
        elif row["status"] == "completed":
            assert ot.state == TrialState.COMPLETE, (row["trial_id"], ot.state)
            assert ot.value == pytest.approx(row["objective"]) and ot.value == pytest.approx(row["val_acc"])
        else:
            assert ot.state == TrialState.FAIL, (row["trial_id"], row["status"], ot.state)
        seen[ot.state] = seen.get(ot.state, 0) + 1
    return seen


@pytest.mark.integration
def test_the_searcher_tells_optuna_what_each_trial_was(e2e):
    """With ASHA: stopped trials enter the study as PRUNED, not as COMPLETE with their early value (what
    Ray's OptunaSearch does), and completed ones with their full-budget value."""
    from optuna.trial import TrialState

    trials = read(str(e2e.exp)).trials
    seen = check_study_matches_trials(e2e.exp, trials)
    assert seen.get(TrialState.PRUNED, 0) >= 1 and seen.get(TrialState.COMPLETE, 0) >= 1, seen


@pytest.mark.integration
def test_every_completed_trial_stores_its_trained_ticket(e2e):
    from nas_lth import export

    trials = read(str(e2e.exp)).trials
    stored = {p.stem for p in (e2e.exp / "tickets").glob("*.pt")}
    assert stored == set(trials[trials.status == "completed"].trial_id)
    for row in trials[trials.status == "completed"].itertuples():
        t = export.read(e2e.exp / "tickets" / f"{row.trial_id}.pt")
        prov = t["provenance"]
        assert prov["trial_id"] == row.trial_id and prov["experiment"] == "tiny_e2e"
        assert prov["mask_digest"] == row.mask_digest and prov["criterion"] == row.criterion
        assert prov["seed"] == row.seed and prov["round"] == row.rounds
        assert math.isclose(prov["weights_remaining"], row.weights_remaining)
        assert prov["metrics"]["end"]["test_acc"] == row.test_acc
        assert set(t["weights"]) == {"end", "early_stop"}


@pytest.mark.integration
def test_export_cli_writes_a_ticket_that_reproduces_the_recorded_accuracy(e2e):
    from nas_lth import export
    from nas_lth.data import load_dataset
    from nas_lth.estimation.metrics import evaluate

    out = e2e.work / "best.ticket.pt"
    cmd = [sys.executable, "-m", "nas_lth.export", str(e2e.exp), "--best", "-o", str(out), "--verify"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified" in proc.stdout, proc.stdout

    trials = read(str(e2e.exp)).trials
    done = trials[trials.status == "completed"]
    best = done.sort_values(["objective", "weights_remaining"], ascending=[False, True]).iloc[0]
    ticket = export.read(out)
    assert ticket["provenance"]["trial_id"] == best.trial_id and list(ticket["weights"]) == ["end"]
    data = load_dataset("digits", None, seed=int(best.seed))
    assert evaluate(export.load(out, raw=False), data.test)["acc"] == best.test_acc
    assert evaluate(export.load(out, sparse=True, raw=False), data.test)["acc"] == best.test_acc
    assert evaluate(export.load(out), export.raw_test_split(ticket, None))["acc"] == best.test_acc  # raw inputs
    # the exported file holds one weight set: smaller than the stored one
    assert out.stat().st_size < (e2e.exp / "tickets" / f"{best.trial_id}.pt").stat().st_size

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--force" in again.stderr, again.stderr

    stopped = trials[trials.status == "stopped"]
    if not stopped.empty:
        proc = subprocess.run([sys.executable, "-m", "nas_lth.export", str(e2e.exp), "--trial",
                               stopped.trial_id.iloc[0], "-o", str(e2e.work / "x.pt")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "not completed" in proc.stderr, proc.stderr
        assert not (e2e.work / "x.pt").exists()

    listing = subprocess.run([sys.executable, "-m", "nas_lth.export", str(e2e.exp), "--list"],
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and best.trial_id in listing.stdout, listing.stdout + listing.stderr


@pytest.mark.integration
def test_search_trials_files_share_one_schema(e2e):
    import pyarrow.parquet as pq

    assert e2e.proc.returncode == 0
    schemas = {p.name: pq.read_schema(p).remove_metadata() for p in (e2e.exp / "trials").glob("*.parquet")}
    first = next(iter(schemas.values()))
    differ = {name: str(s) for name, s in schemas.items() if not s.equals(first)}
    assert not differ, f"{len(differ)} of {len(schemas)} files differ from {first}"
    assert len(pd.read_parquet(e2e.exp / "trials")) == E2E_SAMPLES


@pytest.mark.integration
def test_search_refuses_to_overwrite_an_experiment(e2e):
    assert e2e.proc.returncode == 0
    before = {d: digests(e2e.exp / d) for d in ("trials", "curves")}
    proc = run(search_cmd(e2e.space, e2e.storage), e2e.work, "again", timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--resume" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert {d: digests(e2e.exp / d) for d in ("trials", "curves")} == before


@pytest.mark.integration
def test_resume_of_a_missing_experiment_is_a_user_error(e2e):
    proc = run(search_cmd(e2e.space, e2e.storage, "--resume", "--name", "never_ran"), e2e.work, "missing",
               timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "never_ran" in lines[0], proc.stderr
    assert not (e2e.storage / "never_ran").exists()


# ------------------------------------------------------------------ SIGINT, then --resume

RESUME_SAMPLES = 10


def interrupt(cmd: list[str], tmp_path: Path, exp: Path, trials: int, sig: int) -> None:
    """Start the search and send ``sig`` once ``trials`` rows exist; it must stop resumable."""
    interrupt_when(cmd, tmp_path, lambda: len(list((exp / "trials").glob("*.parquet"))) >= trials, sig,
                   f"{trials} trial(s) written")


def interrupt_when(cmd: list[str], tmp_path: Path, ready, sig: int, what: str = "the condition",
                   times: int = 1) -> None:
    """Start the search and send ``sig`` (``times`` times, 0.3 s apart) once ``ready()`` holds; it must stop
    resumable."""
    proc = start(cmd, tmp_path, "first")
    try:
        deadline = time.monotonic() + SEARCH_TIMEOUT_S
        while not ready():
            assert proc.poll() is None, (
                f"the search ended (exit {proc.returncode}) before {what}:\n"
                + (tmp_path / "first.out").read_text()[-3000:] + (tmp_path / "first.err").read_text()[-3000:])
            assert time.monotonic() < deadline, f"not {what} in time"
            time.sleep(0.1)
        for i in range(times):
            if i:
                time.sleep(0.3)
            proc.send_signal(sig)
        proc.wait(120)
    finally:
        left = reap_session(proc)
    out, err = (tmp_path / "first.out").read_text(), (tmp_path / "first.err").read_text()
    # Tune saved its state: exit 130 with the command that resumes, nothing left running
    assert not left, f"processes left behind after signal {sig}: {left}"
    assert proc.returncode == 130, out[-3000:] + err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    hint = [line for line in out.splitlines() if "--resume" in line]
    assert hint and "python -m nas_lth.search" in hint[-1], out[-2000:]


@pytest.mark.integration
def test_sigint_then_resume_finishes_every_trial_exactly_once(tmp_path):
    space = write_space(tmp_path / "resume.yaml", tiny_space(
        "tiny_resume", RESUME_SAMPLES,
        {"criterion": {"choice": ["large_final", "random", "snip", "magnitude_increase"]},
         "stop_at": {"choice": [20, "end"]},
         "rounds": {"int": [1, 3]}},
        scheduler="fifo"))  # no scheduler stops: every trial must end "completed"
    storage = tmp_path / "runs"
    exp = storage / "tiny_resume"
    cmd = search_cmd(space, storage)

    interrupt(cmd, tmp_path, exp, 2, signal.SIGINT)

    finished = digests(exp / "trials")
    finished_curves = digests(exp / "curves")
    assert len(finished) >= 2
    assert len(finished) < RESUME_SAMPLES, (
        f"all {RESUME_SAMPLES} trials finished before SIGINT arrived: make the trials slower or more "
        "numerous so that the test interrupts a running search")

    proc2 = run([*cmd, "--resume"], tmp_path, "second")
    assert proc2.returncode == 0, proc2.stdout[-3000:] + proc2.stderr[-3000:]
    assert "Traceback" not in proc2.stderr

    res = read(str(exp))
    trials = res.trials
    assert len(trials) == RESUME_SAMPLES, trials[["trial_id", "status"]]
    assert trials.trial_id.is_unique
    assert (trials.status == "completed").all(), trials[["trial_id", "status", "message"]]
    after = digests(exp / "trials")
    assert {k: after.get(k) for k in finished} == finished  # rows written before SIGINT: same bytes
    after_curves = digests(exp / "curves")
    assert {k: after_curves.get(k) for k in finished_curves} == finished_curves
    assert set(res.curves.trial_id) == set(trials.trial_id)
    assert (trials.weights_remaining.between(0.19, 0.23)).all()
    # the Optuna study survived the interruption: every trial in it once, with its state
    from optuna.trial import TrialState

    study = study_of(exp)
    assert sorted(t.user_attrs["tune_trial_id"] for t in study.trials if "tune_trial_id" in t.user_attrs) == \
        sorted(trials.trial_id)
    assert check_study_matches_trials(exp, trials).get(TrialState.COMPLETE, 0) + \
        sum(trials.message.str.startswith("same recipe")) == RESUME_SAMPLES


@pytest.mark.integration
def test_sigterm_saves_state_like_sigint_and_the_search_resumes(tmp_path):
    """`ray job stop` and batch schedulers send SIGTERM. ray.init() replaces the driver's SIGTERM handler
    with a plain exit (exit 15 in 2 s, no resume hint); the search puts its own back once Ray is up."""
    space = write_space(tmp_path / "term.yaml", tiny_space(
        "tiny_term", 8, {"criterion": {"choice": ["large_final", "random", "snip", "magnitude_increase"]},
                         "rounds": {"int": [1, 3]}}, scheduler="fifo"))
    storage = tmp_path / "runs"
    exp = storage / "tiny_term"
    cmd = search_cmd(space, storage)
    interrupt(cmd, tmp_path, exp, 1, signal.SIGTERM)
    assert len(list((exp / "trials").glob("*.parquet"))) < 8, "the search finished before SIGTERM arrived"
    proc2 = run([*cmd, "--resume"], tmp_path, "second")
    assert proc2.returncode == 0, proc2.stdout[-3000:] + proc2.stderr[-3000:]
    trials = read(str(exp)).trials
    assert len(trials) == 8 and trials.trial_id.is_unique and (trials.status == "completed").all()


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _address(hexaddr: str) -> tuple[str, int]:
    """An address of /proc/net/tcp{,6}: the IP as little-endian 32-bit words in hex, then the port."""
    ip, port = hexaddr.split(":")
    words = struct.unpack("<" + "I" * (len(ip) // 8), bytes.fromhex(ip))
    raw = struct.pack(">" + "I" * len(words), *words)
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw), int(port, 16)


def listening_sockets(pids: list[int]) -> dict[int, set[tuple[str, int]]]:
    """pid -> the TCP addresses it listens on (its socket inodes found in /proc/net/tcp{,6}, state 0A)."""
    by_inode = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":
                by_inode[f"socket:[{f[9]}]"] = _address(f[1])
    out: dict[int, set] = {}
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:  # the process ended, or a descriptor closed while listing
            continue
        out[pid] = {by_inode[link] for link in links if link in by_inode}
    return {pid: addrs for pid, addrs in out.items() if addrs}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:80]
    except OSError:
        return f"pid {pid}"


@pytest.mark.integration
def test_a_local_search_listens_on_the_loopback_interface_only(tmp_path):
    """Without --address nothing of Ray (GCS, raylet, dashboard agent, workers) listens on a network
    interface: the search runs on this machine only. It bound the GCS, raylet and workers on 0.0.0.0/::."""
    space = write_space(tmp_path / "lo.yaml", tiny_space("tiny_lo", 2, {"criterion": {"choice": ["large_final",
                                                                                                 "random"]}}))
    exp = tmp_path / "runs" / "tiny_lo"
    proc = start(search_cmd(space, tmp_path / "runs"), tmp_path, "lo")  # with the dashboard
    try:
        deadline = time.monotonic() + SEARCH_TIMEOUT_S
        while not list((exp / "trials").glob("*.parquet")):  # a trial has run: every kind of process is up
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "lo.err").read_text()[-3000:]
            time.sleep(0.2)
        sockets = listening_sockets(session_pids(proc.pid))
        names = {pid: _cmdline(pid) for pid in sockets}
    finally:
        reap_session(proc, grace_s=0)
    assert len(sockets) >= 3, sockets  # at least the GCS, the raylet and a worker
    exposed = {names[pid]: sorted(a for a in addrs if a[0] not in LOOPBACK)
               for pid, addrs in sockets.items() if any(a[0] not in LOOPBACK for a in addrs)}
    assert not exposed, exposed


def test_the_printed_dashboard_command_works_from_the_moment_it_is_printed(tmp_path):
    """optuna-dashboard refuses a journal file that does not exist ("Failed to guess storage class"): the study
    is in the file when the search prints the command, before any trial has ended."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    space = write_space(tmp_path / "j.yaml", tiny_space("tiny_j", 2, {"criterion": {"choice": ["large_final"]}}))
    exp = tmp_path / "runs" / "tiny_j"
    proc = start(search_cmd(space, tmp_path / "runs"), tmp_path, "j")
    try:
        deadline = time.monotonic() + SEARCH_TIMEOUT_S
        while "live study: optuna-dashboard" not in (tmp_path / "j.out").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "j.err").read_text()[-3000:]
            time.sleep(0.05)
        rows_then = list((exp / "trials").glob("*.parquet"))
        study = optuna.load_study(study_name="tiny_j", storage=JournalStorage(JournalFileBackend(
            str(exp / "optuna.journal"))))
    finally:
        reap_session(proc, grace_s=0)
    assert not rows_then, "a trial had ended before the check: it proves nothing about the moment of printing"
    assert study.metric_names == ["val_acc"] and study.direction == optuna.study.StudyDirection.MAXIMIZE


class _Payload:
    """Pickled into a forged trajectory file: unpickled with code allowed, it would make a folder."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.integration
def test_a_damaged_shared_trajectory_is_computed_again_and_replaced(tmp_path):
    """Between a SIGINT and --resume the stored dense trajectory is replaced by a forged file (code in a
    pickle): it is refused without running the code, computed again, and every trial completes (they all
    failed before)."""
    import torch

    from nas_lth.estimation.trajectory import DenseTrajectory

    space = write_space(tmp_path / "traj.yaml", tiny_space(
        "tiny_traj", 8, {"criterion": {"choice": ["large_final", "random", "snip", "magnitude_increase"]},
                         "rounds": {"int": [1, 3]}}, scheduler="fifo", max_concurrent=1))
    storage = tmp_path / "runs"
    exp = storage / "tiny_traj"
    cmd = search_cmd(space, storage)
    interrupt(cmd, tmp_path, exp, 1, signal.SIGINT)
    assert len(list((exp / "trials").glob("*.parquet"))) < 8, "the search finished before SIGINT arrived"
    (stored,) = (exp / "trajectories").glob("*.pt")  # one (model, data, seed, training): one trajectory
    marker = tmp_path / "the-payload-ran"
    buf = io.BytesIO()
    torch.save({"key": stored.stem, "theta0": _Payload(marker)}, buf)
    forged = buf.getvalue()
    stored.write_bytes(forged)

    proc = run([*cmd, "--resume"], tmp_path, "second")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not marker.exists(), "the forged trajectory file ran its code"
    trials = read(str(exp)).trials
    assert len(trials) == 8 and trials.trial_id.is_unique
    assert (trials.status == "completed").all(), trials[["trial_id", "status", "message"]]
    replaced = stored.read_bytes()
    assert replaced != forged and DenseTrajectory.from_bytes(replaced).key == stored.stem
    # one trial of the resumed run trained the dense net again (the first run's trial did so once)
    assert (trials.trajectory_iterations_trained > 0).sum() >= 2, trials.trajectory_iterations_trained


# ------------------------------------------------------------------ a trial restarted without a checkpoint


class _WorkerDied(Exception):
    pass


class _FakeTune:
    """What a :class:`~nas_lth.strategy.trial.Trial` uses of ``ray.tune``: one attempt of trial ``t1``."""

    def __init__(self, die_after: int | None = None):
        self.reports: list[dict] = []
        self.die_after = die_after
        self.Checkpoint = SimpleNamespace(from_directory=lambda d: ("checkpoint", d))

    def get_context(self):
        return SimpleNamespace(get_trial_id=lambda: "t1")

    def get_checkpoint(self):
        return None  # nothing was checkpointed yet: the attempt starts from scratch

    def report(self, metrics, checkpoint=None):
        self.reports.append(metrics)
        if self.die_after is not None and len(self.reports) >= self.die_after:
            raise _WorkerDied("the node went away")


def test_retried_trial_without_checkpoint_has_each_evaluation_once(tmp_path, monkeypatch):
    """Tune retries a trial whose worker died (max_failures). With ``checkpoint_every_s`` > 0 (the
    default space uses 5 s) the first epochs of the measured run are reported without a checkpoint, so
    a worker that dies then restarts the trial from scratch; the driver already holds those epochs.
    The same happens after SIGINT + --resume when the trial's last checkpoint is older than its last
    report (seen in test_sigint_then_resume... as duplicate (round, run, iteration) curve rows)."""
    from nas_lth.experiment.callback import ResultsCallback
    from nas_lth.space import SearchSpace
    from nas_lth.store import locate
    from nas_lth.strategy import trial as tr

    data = tiny_space("retry", 1, {"criterion": {"choice": ["large_final"]}})
    data["fixed"]["budget"] = 3
    space = SearchSpace.from_dict(data, "retry.yaml")
    exp = locate(str(tmp_path / "retry"))
    monkeypatch.setattr(tr.ray, "get_gpu_ids", lambda: [])
    monkeypatch.setattr(tr.ray, "get_actor", lambda *a, **k: None)
    monkeypatch.setattr(tr, "get_trajectory", lambda key, loc, tid, broker, compute: (compute(lambda: None), True))
    callback = ResultsCallback(space, exp, "retry", "val_acc", quiet=True)
    trial = SimpleNamespace(trial_id="t1", config={"criterion": "large_final"}, last_result=None, error_file=None)
    spec = tr.TrialSpec.from_space(space, name="retry", experiment=exp.uri, data_dir=None, device="cpu", threads=1,
                                   checkpoint_every_s=60.0)

    for attempt in (_FakeTune(die_after=2), _FakeTune()):  # dies after 2 epochs of the final run, then again
        monkeypatch.setattr(tr, "tune", attempt)
        try:
            tr.Trial(spec, {"criterion": "large_final"}).run()
        except _WorkerDied:
            pass
        for result in attempt.reports:
            callback.on_trial_result(0, [], trial, result)
            trial.last_result = result
    assert trial.last_result["final"] and trial.last_result["status"] == "completed"
    callback.on_trial_complete(0, [], trial)

    curve = read(exp.uri).curves
    assert len(curve) > 0
    dup = curve[curve.duplicated(["round", "run", "iteration"], keep=False)]
    assert dup.empty, dup[["round", "run", "iteration", "val_acc"]]


# ------------------------------------------------------------------ the same recipe twice


@pytest.mark.integration
def test_a_repeated_recipe_reuses_the_first_result(tmp_path):
    """Three trials of one recipe, one after another: the first trains, the others replay its result."""
    space = write_space(tmp_path / "same.yaml", tiny_space(
        "same_recipe", 3, {"criterion": {"choice": ["large_final"]}}, scheduler="fifo", max_concurrent=1))
    proc = run(search_cmd(space, tmp_path / "runs"), tmp_path, "same")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    trials = read(tmp_path / "runs" / "same_recipe").trials.sort_values("finished_at")
    assert list(trials.status) == ["completed"] * 3
    first, *again = trials.to_dict("records")
    assert first["iterations_trained"] > 0 and "reused" not in (first["message"] or "")
    for row in again:
        assert row["iterations_trained"] == 0
        assert f"same recipe as trial {first['trial_id']}" in row["message"]
        assert row["val_acc"] == first["val_acc"] and row["mask_digest"] == first["mask_digest"]
        assert row["shared_iterations"] >= first["iterations_trained"]
    # a replayed trial gets the ticket its recipe trained, with provenance naming the source
    from nas_lth import export

    for row in again:
        ticket = export.read(tmp_path / "runs" / "same_recipe" / "tickets" / f"{row['trial_id']}.pt")
        assert ticket["provenance"]["trial_id"] == row["trial_id"]
        assert ticket["provenance"]["trained_in_trial"] == first["trial_id"]
        assert ticket["provenance"]["mask_digest"] == first["mask_digest"]
    # the recipe entered the Optuna study once: the replays are FAIL with replay_of (TPE ignores them)
    from optuna.trial import TrialState

    seen = check_study_matches_trials(tmp_path / "runs" / "same_recipe", trials)
    assert seen == {TrialState.COMPLETE: 1, TrialState.FAIL: 2}, seen
    # and the summary says what the repeats cost the search
    assert "2 of 3 samples repeated a recipe already run" in proc.stdout, proc.stdout[-2000:]


def test_too_few_samples_for_the_rungs_of_asha_is_said_before_the_search():
    from nas_lth.space import SearchSpace
    from nas_lth.strategy.preflight import few_samples_for_rungs

    def space(**strategy):
        return SearchSpace.from_dict(tiny_space("r", 1, {"criterion": {"choice": ["large_final"]}}, **strategy))

    # budget 6, grace 1, factor 3: decisions at epochs 1 and 3, so 3 ** 2 = 9 samples for one trial to be promoted
    asha = space(scheduler="asha", grace_period=1, reduction_factor=3)
    assert few_samples_for_rungs(asha, 9, 6) is None
    said = few_samples_for_rungs(asha, 4, 6)
    assert "num_samples 4 is small for ASHA's 2 rung(s) below the budget of 6 epochs" in said
    assert "give at least 9 samples" in said
    assert few_samples_for_rungs(space(scheduler="fifo"), 1, 6) is None
    assert few_samples_for_rungs(asha, 1, 1) is None  # a one-epoch budget has no rung to stop at


# ------------------------------------------------------------------ warm start


def test_warm_start_distributions_are_the_define_by_run_ones():
    import optuna

    from nas_lth.space import SearchSpace, define_by_run
    from nas_lth.space.optuna_space import distribution

    space = SearchSpace.from_dict(tiny_space("d", 1, {
        "criterion": {"choice": ["large_final", "random"]}, "stop_at": {"choice": [20, "end", "early_bird"]},
        "eb_eps": {"float": [0.02, 0.2], "log": True, "when": {"stop_at": "early_bird"}},
        "rounds": {"int": [1, 3]}, "prune_rate.fc": {"float": [0.1, 0.5], "step": 0.1}}), "d.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fn = define_by_run(space)
    for _ in range(20):
        trial = study.ask()
        fn(trial)
        for key, dist in trial.distributions.items():
            assert dist == distribution(space.dims[key]), key
        study.tell(trial, 0.0)


def test_warm_start_reads_a_searched_model_option_from_the_json_column(tmp_path):
    """``model_options.hidden`` has no column of its own (``model_options`` is stored as JSON text); a choice of
    lists enters the study as Optuna holds it (JSON text), and TPE can sample from the warm study."""
    import json

    import optuna

    from nas_lth.space import SearchSpace, define_by_run
    from nas_lth.store import locate, write_trial
    from nas_lth.strategy.warm import warm_trials

    data = tiny_space("w", 2, {"model_options.hidden": {"choice": [[32], [64, 16]]}})
    space = SearchSpace.from_dict(data, "w.yaml")
    exp = locate(str(tmp_path / "old"))
    for tid, hidden, value in (("a", [32], 0.9), ("b", [64, 16], 0.8)):
        write_trial(exp, tid, {"experiment": "old", "trial_id": tid, "status": "completed", "objective": value,
                               "model": "lenet300_100", "dataset": "digits", "budget": 6.0, "seed": 0,
                               "model_options": json.dumps({"hidden": hidden})})
    warm = warm_trials(space, str(tmp_path / "old"))
    assert sorted((t.params["model_options.hidden"], t.value) for t in warm) == [("[32]", 0.9), ("[64, 16]", 0.8)]
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials(warm)
    trial = study.ask()
    assert define_by_run(space)(trial)["model_options.hidden"] in ([32], [64, 16])


@pytest.mark.integration
def test_warm_start_seeds_the_study_with_the_old_completed_trials(tmp_path):
    data = tiny_space("old", 3, {"criterion": {"choice": ["large_final", "random", "snip"]},
                                 "rounds": {"int": [1, 2]}}, scheduler="fifo", max_concurrent=1)
    data["fixed"]["budget"] = 1
    space = write_space(tmp_path / "s.yaml", data)
    storage = tmp_path / "runs"
    first = run(search_cmd(space, storage), tmp_path, "old")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    old = read(str(storage / "old")).trials
    done = old[(old.status == "completed") & ~old.message.str.startswith("same recipe")]

    second = run(search_cmd(space, storage, "--name", "new", "--num-samples", "2", "--warm-start",
                            str(storage / "old")), tmp_path, "new")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    distinct = len(done.drop_duplicates(["criterion", "rounds"]))
    assert f"warm start: the study began with {distinct} completed trial(s)" in second.stdout
    study = study_of(storage / "new")
    warm = [t for t in study.trials if "warm_start_from" in t.user_attrs]
    assert len(warm) == distinct
    by_id = old.set_index("trial_id")
    for t in warm:
        source = t.user_attrs["warm_start_from"].rsplit("#", 1)[1]
        assert t.state.name == "COMPLETE" and t.value == pytest.approx(by_id.loc[source, "objective"])
        assert t.params == {"criterion": by_id.loc[source, "criterion"], "rounds": int(by_id.loc[source, "rounds"])}
    # the new experiment's own trials follow, and only they have rows
    assert len(read(str(storage / "new")).trials) == 2
    # the live view (optuna-dashboard's journal) holds the same study: warm trials first, then the new ones
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    live = optuna.load_study(study_name="new", storage=JournalStorage(JournalFileBackend(
        str(storage / "new" / "optuna.journal"))))
    assert sorted(t.user_attrs.get("warm_start_from", "") for t in live.trials if "warm_start_from" in t.user_attrs) \
        == sorted(t.user_attrs["warm_start_from"] for t in warm)
    assert len(live.trials) == len([t for t in study.trials if t.state.is_finished()])


@pytest.mark.integration
def test_epoch_budget_ends_the_search_once_its_trials_trained_that_much(tmp_path):
    """strategy.epoch_budget: a budget in training epochs (every iteration of every trial, the shared dense
    run once), the unit the search-quality benchmark compares methods at. The search exits 0 (it is not
    interrupted) and records the trial it cut as stopped."""
    budget = 20
    space = write_space(tmp_path / "budget.yaml", tiny_space(
        "tiny_budget", 30, {"criterion": {"choice": ["large_final", "random", "snip", "magnitude_increase"]},
                            "rounds": {"int": [1, 3]}},
        scheduler="fifo", max_concurrent=1, epoch_budget=budget))
    exp = tmp_path / "runs" / "tiny_budget"
    proc = run(search_cmd(space, tmp_path / "runs"), tmp_path, "budget")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = read(str(exp)).trials
    spent = trials.iterations_trained / trials.iterations_per_epoch
    assert 1 < len(trials) < 30
    assert spent.sum() >= budget  # it ran until the budget was spent ...
    before_last = spent.sum() - spent[trials.finished_at == trials.finished_at.max()].sum()
    assert before_last < budget  # ... and no trial started after
    cut = trials[trials.message.str.contains("strategy.epoch_budget", na=False)]
    assert len(cut) <= 1 and (cut.status == "stopped").all()


@pytest.mark.integration
def test_sigint_twice_still_saves_the_state_and_the_search_resumes(tmp_path):
    """An impatient Ctrl-C Ctrl-C: exit 130 with the resume hint, no traceback, and --resume finishes."""
    space = write_space(tmp_path / "twice.yaml", tiny_space(
        "tiny_twice", 6, {"criterion": {"choice": ["large_final", "random", "snip"]}, "rounds": {"int": [1, 3]}},
        scheduler="fifo"))
    exp = tmp_path / "runs" / "tiny_twice"
    cmd = search_cmd(space, tmp_path / "runs")
    interrupt_when(cmd, tmp_path, lambda: len(list((exp / "trials").glob("*.parquet"))) >= 2, signal.SIGINT,
                   "2 trials written", times=2)
    proc = run([*cmd, "--resume"], tmp_path, "second")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = read(str(exp)).trials
    assert len(trials) == 6 and trials.trial_id.is_unique
