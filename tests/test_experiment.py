"""What an experiment keeps about itself and the faults around it (issue: nothing lost, misplaced or mixed):
a resumed experiment writes where it lies now (moved or copied), one driver at a time (a lease), the space it
started with (an edited file is refused), lost rows restored from Tune's state, a stopped trial never re-run
after its driver died, and a folder whose first run died before Tune's first save can be resumed."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from test_search import (
    digests,
    interrupt,
    reap_session,
    run,
    search_cmd,
    search_env,
    session_pids,
    start,
    tiny_space,
    write_space,
)

from nas_lth.errors import UserError
from nas_lth.experiment.lease import LOCK_FILE, DriverLock
from nas_lth.experiment.record import check_space, first_difference, record_space
from nas_lth.space import SearchSpace
from nas_lth.store import locate, read

SPACE = {"name": "x", "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 2},
         "search": {"criterion": {"choice": ["large_final", "random"]}}}


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ------------------------------------------------------------------ unit: space record and lease


def test_first_difference_names_the_key():
    assert first_difference({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == "a.c: 2 -> 3"
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == "b: added (2)"
    assert first_difference({"a": [1, 2]}, {"a": [1, 2]}) is None


def test_resume_with_an_edited_space_names_the_first_difference(tmp_path):
    exp = locate(str(tmp_path / "x"))
    exp.mkdir()
    record_space(exp, SearchSpace.from_dict(SPACE, "a.yaml"))
    check_space(exp, SearchSpace.from_dict(SPACE, "a.yaml"), "x")  # the same space: fine
    edited = {**SPACE, "fixed": {**SPACE["fixed"], "budget": 3}}
    with pytest.raises(UserError, match=r"b.yaml is not the space experiment 'x' was started with "
                                        r"\(fixed.budget: 2 -> 3\)"):
        check_space(exp, SearchSpace.from_dict(edited, "b.yaml"), "x")


def test_lease_refuses_a_second_driver_and_takes_over_a_dead_ones(tmp_path, capsys):
    exp = locate(str(tmp_path / "x"))
    exp.mkdir()
    first = DriverLock(exp, "x").acquire()
    holder = rf"being run by another driver \(host {socket.gethostname()}, pid {os.getpid()}"
    with pytest.raises(UserError, match=holder):
        DriverLock(exp, "x").acquire()
    first.release()
    assert not (tmp_path / "x" / LOCK_FILE).exists()
    (tmp_path / "x" / LOCK_FILE).write_text(
        f'{{"host": "{socket.gethostname()}", "pid": {dead_pid()}, "token": "t", "heartbeat": {time.time()}}}')
    DriverLock(exp, "x").acquire().release()
    assert "taking over the stale lease" in capsys.readouterr().err
    # another host's lease: live while its heartbeat is fresh
    (tmp_path / "x" / LOCK_FILE).write_text(f'{{"host": "elsewhere", "pid": 1, "heartbeat": {time.time()}}}')
    with pytest.raises(UserError, match="host elsewhere"):
        DriverLock(exp, "x").acquire()


# ------------------------------------------------------------------ real searches

SAMPLES = 6


def fifo_space(tmp_path, name: str):
    return write_space(tmp_path / f"{name}.yaml", tiny_space(
        name, SAMPLES, {"criterion": {"choice": ["large_final", "random", "snip", "magnitude_increase"]},
                        "rounds": {"int": [1, 3]}}, scheduler="fifo"))


@pytest.mark.integration
def test_a_moved_or_copied_experiment_resumes_where_it_lies_now(tmp_path):
    space = fifo_space(tmp_path, "moved")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    interrupt(search_cmd(space, a), tmp_path, a / "moved", 2, signal.SIGINT)
    at_interrupt = digests(a / "moved" / "trials")
    assert len(at_interrupt) < SAMPLES

    # an edited space file is refused, and changes nothing
    edited = yaml.safe_load(space.read_text())
    edited["fixed"]["budget"] = 5
    other = write_space(tmp_path / "edited.yaml", edited)
    proc = run([*search_cmd(other, a), "--resume"], tmp_path, "edited")
    assert proc.returncode == 2 and "fixed.budget: 6 -> 5" in proc.stderr, proc.stderr[-2000:]
    assert digests(a / "moved" / "trials") == at_interrupt

    def tree(root):  # every file and folder under the original, with its size: nothing may be added there
        return {str(p.relative_to(root)): p.stat().st_size if p.is_file() else -1 for p in root.rglob("*")}

    original = tree(a)
    shutil.copytree(a, b, symlinks=True)  # cp -a: the copy resumes into itself, the original is untouched
    proc = run([*search_cmd(space, b), "--resume"], tmp_path, "copy")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    copied = read(str(b / "moved")).trials
    assert len(copied) == SAMPLES and (copied.status == "completed").all(), copied[["trial_id", "status", "message"]]
    assert digests(a / "moved" / "trials") == at_interrupt
    assert tree(a) == original, "the copy's run wrote into the original experiment"

    shutil.move(a, c)  # mv: the moved experiment resumes into its new place; the old one is not re-created
    proc = run([*search_cmd(space, c), "--resume"], tmp_path, "moved")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = read(str(c / "moved")).trials
    assert len(trials) == SAMPLES and trials.trial_id.is_unique
    assert (trials.status == "completed").all(), trials[["trial_id", "status", "message"]]
    assert not a.exists()
    assert not (c / "moved" / LOCK_FILE).exists()  # the lease is given back at the end


@pytest.mark.integration
def test_two_drivers_on_one_experiment_run_it_once(tmp_path):
    space = fifo_space(tmp_path, "twins")
    storage = tmp_path / "runs"
    procs = [start(search_cmd(space, storage), tmp_path, f"twin{i}") for i in range(2)]
    try:
        for p in procs:
            p.wait(300)
    finally:
        for p in procs:
            reap_session(p)
    codes = sorted(p.returncode for p in procs)
    errs = " ".join((tmp_path / f"twin{i}.err").read_text() for i in range(2))
    assert codes == [0, 2], errs[-3000:]
    assert "another driver" in errs
    trials = read(str(storage / "twins")).trials
    assert len(trials) == SAMPLES and trials.trial_id.is_unique

    # --resume while a driver holds the experiment: refused before Ray starts, nothing changed
    before = digests(storage / "twins" / "trials")
    (storage / "twins" / LOCK_FILE).write_text(
        f'{{"host": "{socket.gethostname()}", "pid": {os.getpid()}, "token": "t", "heartbeat": {time.time()}}}')
    proc = run([*search_cmd(space, storage), "--resume"], tmp_path, "third")
    assert proc.returncode == 2 and f"pid {os.getpid()}" in proc.stderr, proc.stderr[-2000:]
    assert digests(storage / "twins" / "trials") == before


@pytest.mark.integration
def test_lost_rows_come_back_and_a_folder_without_tune_state_starts_over(tmp_path):
    space = fifo_space(tmp_path, "lost")
    storage = tmp_path / "runs"
    assert run(search_cmd(space, storage), tmp_path, "first").returncode == 0
    rows = sorted((storage / "lost" / "trials").glob("*.parquet"))
    rows[0].unlink()
    rows[1].write_bytes(rows[1].read_bytes()[:100])  # truncated
    proc = run([*search_cmd(space, storage), "--resume"], tmp_path, "second")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "restored the rows of 2 finished trial(s)" in proc.stdout
    trials = read(str(storage / "lost")).trials
    assert len(trials) == SAMPLES and trials.trial_id.is_unique and (trials.status == "completed").all()
    restored = trials[trials.message.str.contains("row restored from Tune's state")]
    assert sorted(restored.trial_id) == sorted(p.stem for p in rows[:2])
    assert restored.val_acc.notna().all() and restored.test_acc.notna().all()

    # a driver killed between making the folder and Tune's first save: --resume starts there
    fresh = storage / "early"
    fresh.mkdir()
    (fresh / LOCK_FILE).write_text(f'{{"host": "{socket.gethostname()}", "pid": {dead_pid()}, "heartbeat": 0}}')
    space2 = fifo_space(tmp_path, "early")
    proc = run([*search_cmd(space2, storage), "--resume"], tmp_path, "early")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "starting the search there" in proc.stdout
    assert len(read(str(fresh)).trials) == SAMPLES


@pytest.mark.integration
def test_a_stopped_trial_is_not_run_again_after_its_driver_was_killed(tmp_path):
    """ASHA stops a trial, its row is written, the driver dies (SIGKILL) before Tune saves that: on --resume
    Tune starts the trial again from its checkpoint. It must keep its stored row (it trained nothing)."""
    # Tune's snapshot goes stale on purpose: no periodic snapshot, and trials that checkpoint rarely (a
    # snapshot is forced after num_to_keep trial checkpoints)
    data = tiny_space("killed_asha", 8, {"criterion": {"choice": ["large_final", "random", "snip",
                                                                  "magnitude_increase"]},
                                         "rounds": {"int": [1, 3]}},
                      scheduler="asha", grace_period=1, reduction_factor=4, max_concurrent=2,
                      checkpoint_every_s=1000)
    space = write_space(tmp_path / "asha.yaml", data)
    storage = tmp_path / "runs"
    trials_dir = storage / "killed_asha" / "trials"
    cmd = search_cmd(space, storage)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**search_env(), "TUNE_GLOBAL_CHECKPOINT_S": "1000"},
                            stdout=open(tmp_path / "first.out", "w"), stderr=open(tmp_path / "first.err", "w"),
                            start_new_session=True)

    def stopped_rows():
        try:
            t = read(str(storage / "killed_asha")).trials
        except Exception:  # noqa: BLE001 - not there yet
            return 0
        return int((t.status == "stopped").sum()) if len(t) else 0

    deadline = time.monotonic() + 240
    while stopped_rows() < 1:
        assert proc.poll() is None and time.monotonic() < deadline, "no stopped trial before the search ended"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = digests(trials_dir)
    for pid in session_pids(proc.pid):
        os.kill(pid, signal.SIGKILL)
    second = run([*cmd, "--resume"], tmp_path, "resume")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after = digests(trials_dir)
    assert {k: after.get(k) for k in before} == before, "a row stored before the kill was rewritten"
    trials = read(str(storage / "killed_asha")).trials
    assert trials.trial_id.is_unique


def test_tune_state_pickled_under_the_old_module_names_is_read():
    """Experiments started before the bookkeeping moved to nas_lth.experiment pickled nas_lth.strategy.* names
    (the results callback, its TrialReports, the progress table): --resume reads them under the new ones."""
    import pickle

    from nas_lth.experiment.restore import old_module_names
    from nas_lth.experiment.trial_report import TrialReport

    old = pickle.dumps(TrialReport("t1", objective=0.5), protocol=0).replace(
        b"nas_lth.experiment.trial_report", b"nas_lth.strategy.report")
    assert b"nas_lth.strategy.report" in old
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)
    with old_module_names():
        assert pickle.loads(old) == TrialReport("t1", objective=0.5)
    assert "nas_lth.strategy.report" not in sys.modules


# ------------------------------------------------------------------ unit: torn Tune snapshots


def test_torn_snapshot_sets_are_moved_aside_newest_first_and_kept(tmp_path):
    import pickle

    from nas_lth.experiment.snapshots import has_state, is_torn, set_aside_torn

    exp = locate(str(tmp_path / "exp"))
    exp.mkdir()
    whole_pkl = pickle.dumps({"a": 1})
    assert not is_torn("x.pkl", whole_pkl) and is_torn("x.pkl", whole_pkl[:-3]) and is_torn("x.json", b"")
    assert is_torn("x.json", b'{"trial_data": [1, 2') and not is_torn("x.json", b'{"a": 1}')
    assert not is_torn("search_gen_state-r.json", whole_pkl) and is_torn("search_gen_state-r.json", whole_pkl[:-1])
    for run_, torn in (("2026-01-01_10-00-00", False), ("2026-01-01_11-00-00", False), ("2026-01-01_12-00-00", True)):
        (tmp_path / "exp" / f"experiment_state-{run_}.json").write_bytes(b'{"trial_data": [' if torn else b"{}")
        (tmp_path / "exp" / f"searcher-state-{run_}.pkl").write_bytes(whole_pkl)
    # the middle run's searcher state was cut short too (a full disk): both newer sets go, the oldest stays
    (tmp_path / "exp" / "searcher-state-2026-01-01_11-00-00.pkl").write_bytes(whole_pkl[:5])
    assert set_aside_torn(exp) == ["2026-01-01_12-00-00", "2026-01-01_11-00-00"]
    assert sorted(p.name for p in (tmp_path / "exp").glob("*state-*")) == [
        "experiment_state-2026-01-01_10-00-00.json", "searcher-state-2026-01-01_10-00-00.pkl"]
    assert len(list((tmp_path / "exp" / "torn").iterdir())) == 4  # kept, not deleted
    assert has_state(exp) and set_aside_torn(exp) == []
    (tmp_path / "exp" / "experiment_state-2026-01-01_10-00-00.json").write_bytes(b"")
    assert set_aside_torn(exp) == ["2026-01-01_10-00-00"] and not has_state(exp)


# ------------------------------------------------------------------ signed Tune state (issue 27 item 5)


class Payload:
    """Unpickling this runs a command: what a crafted state file in a shared bucket would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_state_signatures_and_the_key(tmp_path, monkeypatch):
    import pickle

    from nas_lth.experiment.signing import key, key_path, sign, state_files, unsigned

    monkeypatch.delenv("NAS_LTH_STATE_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    k = key()
    assert len(k) == 32 and key() == k and (key_path().stat().st_mode & 0o777) == 0o600
    exp = locate(str(tmp_path / "exp"))
    exp.mkdir()
    (tmp_path / "exp" / "tuner.pkl").write_bytes(pickle.dumps({"a": 1}))
    (tmp_path / "exp" / "experiment_state-r1.json").write_bytes(b"{}")
    (tmp_path / "exp" / "notes.txt").write_bytes(b"not Tune's")
    assert sorted(f.path.rsplit("/", 1)[-1] for f in state_files(exp)) == ["experiment_state-r1.json", "tuner.pkl"]
    assert sorted(unsigned(exp)) == ["experiment_state-r1.json", "tuner.pkl"]
    sign(exp)
    assert unsigned(exp) == []
    (tmp_path / "exp" / "tuner.pkl").write_bytes(pickle.dumps(Payload(tmp_path / "x")))
    assert unsigned(exp) == ["tuner.pkl"]
    monkeypatch.setenv("NAS_LTH_STATE_KEY", "another user's key")
    assert sorted(unsigned(exp)) == ["experiment_state-r1.json", "tuner.pkl"]


@pytest.mark.integration
def test_tampered_or_foreign_tune_state_is_not_unpickled(tmp_path, monkeypatch):
    """A crafted pickle in the experiment must not run on --resume: a tampered tuner.pkl is refused (exit 2,
    one line), a tampered searcher state is set aside and the search goes on from its rows; a copy signed under
    another key is refused until --trust-state."""
    monkeypatch.setenv("NAS_LTH_STATE_KEY", "mine")
    space = fifo_space(tmp_path, "signed")
    storage = tmp_path / "runs"
    exp = storage / "signed"
    interrupt(search_cmd(space, storage), tmp_path, exp, 2, signal.SIGINT)
    rows = digests(exp / "trials")
    marker = tmp_path / "pwned"
    shutil.copytree(storage, tmp_path / "theirs")

    # someone else's key: refused, nothing runs, nothing changes
    monkeypatch.setenv("NAS_LTH_STATE_KEY", "theirs")
    proc = run([*search_cmd(space, storage), "--resume"], tmp_path, "foreign")
    assert proc.returncode == 2 and "tuner.pkl is not signed" in proc.stderr and "--trust-state" in proc.stderr, \
        proc.stderr[-2000:]
    assert digests(exp / "trials") == rows

    monkeypatch.setenv("NAS_LTH_STATE_KEY", "mine")
    tuner = (exp / "tuner.pkl").read_bytes()
    (exp / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    proc = run([*search_cmd(space, storage), "--resume"], tmp_path, "tampered_tuner")
    assert proc.returncode == 2 and "tuner.pkl is not signed" in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists(), "a tampered tuner.pkl was unpickled"
    (exp / "tuner.pkl").write_bytes(tuner)

    (searcher,) = exp.glob("searcher-state-*.pkl")
    searcher.write_bytes(pickle.dumps(Payload(marker)))
    proc = run([*search_cmd(space, storage), "--resume"], tmp_path, "tampered_searcher")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not marker.exists(), "a tampered searcher state was unpickled"
    assert "not signed" in proc.stdout and (exp / "torn" / searcher.name).exists()
    trials = read(str(exp)).trials
    assert len(trials) == SAMPLES and trials.trial_id.is_unique
    assert {k: v for k, v in digests(exp / "trials").items() if k in rows} == rows

    # the copy made under "mine", resumed by "theirs" who trusts it: runs, and is signed for them from then on
    monkeypatch.setenv("NAS_LTH_STATE_KEY", "theirs")
    proc = run([*search_cmd(space, tmp_path / "theirs"), "--resume", "--trust-state"], tmp_path, "trusted")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(read(str(tmp_path / "theirs" / "signed")).trials) == SAMPLES


def test_a_journal_line_cut_short_is_dropped_and_the_study_opens(tmp_path):
    """Issue 27 item 3: a full disk cut optuna.journal mid-line; the live study opens again without it."""
    from nas_lth.experiment import journal

    path = str(tmp_path / "optuna.journal")
    study = journal.study(path, "j", ["maximize"], ["val_acc"])
    study.add_trial(__import__("optuna").trial.create_trial(value=0.5, params={}, distributions={}))
    journal._studies.clear()
    whole = (tmp_path / "optuna.journal").read_bytes()
    torn = whole + b'{"op_code": 4, "worker_id": "x", "study_id": 0, "dat'
    (tmp_path / "optuna.journal").write_bytes(torn)
    assert journal.repair(path) and (tmp_path / "optuna.journal").read_bytes() == whole
    assert not journal.repair(path)
    # what the driver does on --resume: open the study (repairing it) and go on appending; Optuna alone would
    # glue the next line to the torn one, and the journal could not be read again
    (tmp_path / "optuna.journal").write_bytes(torn)
    study = journal.study(path, "j", ["maximize"], ["val_acc"])
    study.add_trial(__import__("optuna").trial.create_trial(value=0.7, params={}, distributions={}))
    journal._studies.clear()
    assert [t.value for t in journal.study(path, "j", ["maximize"], ["val_acc"]).trials] == [0.5, 0.7]
    journal._studies.clear()


def test_a_full_disk_is_logged_in_one_line_by_tune_and_by_the_syncer():
    """Issue 27 item 3: Tune's failure record (traceback as exc_info) and Ray's background syncer's warning
    (traceback pasted into the message) both shrink to one line; other records pass untouched."""
    import logging

    from nas_lth.experiment.diskfull import LOGGERS, OneLine, is_disk_full, quiet_tune_failures

    try:
        raise OSError(28, "No space left on device")
    except OSError:
        exc_info = sys.exc_info()
    tune = logging.LogRecord("t", logging.ERROR, "f", 1, "Trial task failed for trial %s", ("x1",), exc_info)
    syncer_text = ("Last sync command failed with the following error:\nTraceback (most recent call last):\n"
                   '  File "storage.py", line 226\nOSError: [Errno 28] Error writing bytes to file. '
                   "Detail: [errno 28] No space left on device\n")
    syncer = logging.LogRecord("s", logging.WARNING, "f", 1, syncer_text, (), None)
    other = logging.LogRecord("o", logging.WARNING, "f", 1, "Traceback (most recent call last):\nKeyError: 'a'",
                              (), None)
    formatter = logging.Formatter()
    for record in (tune, syncer, other):
        assert OneLine().filter(record)
    assert formatter.format(tune) == "Trial task failed for trial x1: no space left on device"
    assert formatter.format(syncer) == "Last sync command failed with the following error: no space left on device"
    assert "KeyError" in formatter.format(other)
    assert is_disk_full(exc_info[1]) and not is_disk_full("KeyError: 'a'")
    quiet_tune_failures()
    quiet_tune_failures()  # once per logger, however often a search starts in one process
    for name in LOGGERS:
        assert sum(isinstance(f, OneLine) for f in logging.getLogger(name).filters) == 1
