"""The experiment folder itself: where it lies (``<storage>/<name>``), whether it may be created or resumed
there, and its creation (folder, driver lease, recorded space) once every other check has passed.

A bad storage is one error before Ray starts; a failed start leaves no half-made experiment behind.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from nas_lth.errors import UserError
from nas_lth.experiment.lease import DriverLock
from nas_lth.experiment.record import record_space
from nas_lth.store.fs import Location, locate


def check_storage(storage: str, name: str, resume: bool) -> Location:
    """The experiment's location, after checking that a new one can be made (or, ``resume``, that it exists
    and can be written)."""
    try:
        root = locate(storage)
        exp = root.join(name)
        exists = exp.exists()
    except (OSError, ValueError) as exc:  # unknown scheme, missing credentials, ...
        raise UserError(f"--storage {storage}: cannot be used ({str(exc).splitlines()[0]})") from None
    if exists and not resume:
        raise UserError(f"experiment {name!r} already exists in {root.uri}; pass --resume to "
                        "continue it or --name to start a new one")
    if resume and not exists:
        raise UserError(f"--resume: no experiment {name!r} in {root.uri}")
    if resume:
        check_writable(exp, storage)  # Tune writes its state there from the first second
    if not exists and "://" not in root.uri:  # a local path: find out now, before Ray starts, if it can be made
        probe = Path(root.path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise UserError(f"--storage {storage}: cannot be created ({probe} is not a directory)")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UserError(f"--storage {storage}: cannot write in {probe}")
        check_writable(locate(str(probe)), storage)  # a full disk, before Ray starts
    return exp


def check_writable(exp: Location, storage: str) -> None:
    """Write and delete a probe file: a full disk or read-only storage is one error before any trial."""
    try:  # a name no one else uses: the folder may be the user's own (the parent of a new --storage)
        probe = exp.join(f".nas_lth-write-test-{uuid.uuid4().hex[:8]}")
        probe.write_bytes(b"ok")
        exp.fs.delete_file(probe.path)
    except OSError as exc:
        raise UserError(f"--storage {storage}: cannot write there ({exc.strerror or exc})") from None


def create(exp: Location, name: str, storage: str, space) -> DriverLock:
    """Make the new experiment's folder, take its driver lease, record its space; returns the lease."""
    if exp.exists():  # it was not there when the search started: another driver made it meanwhile
        lock = DriverLock(exp, name).acquire()  # refuses while that driver runs
        lock.release()
        raise UserError(f"experiment {name!r} appeared in {exp.uri} while this search started (another "
                        "driver?); pass --resume to continue it or --name to start a new one")
    try:
        exp.mkdir()
        check_writable(exp, storage)
    except OSError as exc:
        raise UserError(f"--storage {storage}: cannot write there ({exc.strerror or exc})") from None
    except UserError:
        exp.fs.delete_dir(exp.path)  # made just now, empty: a failed start leaves no experiment behind
        raise
    lock = DriverLock(exp, name).acquire()
    record_space(exp, space)
    return lock


def start_over(exp: Location, space) -> None:
    """``--resume`` of an experiment without Tune state: a driver killed between making the folder and Tune's
    first save. With no trial recorded there is nothing to lose: the search starts in the same folder."""
    if exp.join("trials").is_dir() and exp.join("trials").list(".parquet"):
        raise UserError(f"--resume: {exp.uri} holds trial rows but no restorable Tune state (tuner.pkl is "
                        "missing or damaged); its results stay readable - start a new experiment with --name")
    print(f"note: {exp.uri} holds no Tune state and no trial yet (its first run stopped before it started): "
          "starting the search there", flush=True)
    record_space(exp, space)
