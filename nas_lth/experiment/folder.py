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


def start_over(exp: Location, space) -> int:
    """``--resume`` of an experiment without Tune state to restore: a driver killed between making the folder
    and Tune's first save, or one whose every snapshot was cut short (a kill or a full disk while Tune wrote
    it; ``nas_lth.experiment.snapshots``). The search starts again in the same folder; the rows already stored
    stay, and each trial the new run draws with the recipe of a stored row adopts that row instead of storing
    a second one (``ResultsCallback.find_orphans``). Returns how many rows are there."""
    rows = len(exp.join("trials").list(".parquet")) if exp.join("trials").is_dir() else 0
    if rows:
        print(f"note: {exp.uri} holds {rows} trial row(s) but no Tune state to restore (cut short or missing): "
              "the search starts again there; trials drawn again with a stored recipe keep its row", flush=True)
    else:
        print(f"note: {exp.uri} holds no Tune state and no trial yet (its first run stopped before it started): "
              "starting the search there", flush=True)
    record_space(exp, space)  # the same space (checked before on --resume): written again if it was lost
    return rows
