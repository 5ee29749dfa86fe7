"""Where the live Optuna study of a search lives, for ``optuna-dashboard``.

The searcher appends every told trial to an Optuna journal file (:data:`nas_lth.strategy.searcher.JOURNAL`).
A journal is appended to, which object stores cannot do, so for an ``s3://`` or ``gs://`` experiment the file
lives on the driver's disk while the search runs and is copied to ``<experiment>/optuna.journal`` after each
stage (an interrupted one too); ``--resume`` starts from that copy.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
import warnings

from nas_lth.store.fs import Location

FILE = "optuna.journal"
PORT = 8080
_studies: dict = {}  # path -> the journal's study, per driver process (never pickled)


def _remote(exp: Location) -> bool:
    return "://" in exp.uri


def local_path(exp: Location) -> str:
    """The journal file the driver appends to: in the experiment, or (object stores) a driver-local copy made
    afresh from the experiment's copy (empty for a new experiment). Never an older local file: one left by an
    earlier experiment at the same URI would mix its trials into this one's view."""
    if not _remote(exp):
        return os.path.join(exp.path, FILE)
    digest = hashlib.sha256(exp.uri.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), "nas_lth-journals", digest, FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    remote = exp.join(FILE)
    if remote.exists():
        with open(path, "wb") as f:
            f.write(remote.read_bytes())
    elif os.path.exists(path):
        os.remove(path)
    return path


def upload(exp: Location, path: str | None) -> None:
    """Copy the driver-local journal into an object-store experiment (a no-op on local storage)."""
    if _remote(exp) and path and os.path.exists(path):
        with open(path, "rb") as f:
            exp.join(FILE).write_bytes(f.read())


def dashboard_command(path: str, port: int = PORT) -> str:
    """The command that shows the study; bound to loopback: on a cluster, forward the port over SSH."""
    return f"optuna-dashboard {shlex.quote(path)} --host 127.0.0.1 --port {port}"


def repair(path: str) -> bool:
    """Cut a last line that a kill or a full disk left without its newline (Optuna appends one JSON line per
    operation and cannot read a torn one); the lines before it are whole. Returns whether it cut."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return False
            f.truncate(data.rfind(b"\n") + 1)
    except OSError:
        return False
    return True


def study(path: str, name: str, directions, metric_names: list[str]):
    """The journal's study (created with its directions and metric names if the file holds none yet). The
    driver opens it before it prints the dashboard command, so the printed command works from the first
    second, not only once a trial has ended."""
    found = _studies.get(path)
    if found is None:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        repair(path)
        storage = JournalStorage(JournalFileBackend(path))
        found = _studies[path] = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                                     directions=directions)
        if found.metric_names is None:  # the dashboard labels objectives by these, not 0, 1, ...
            with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and what the dashboard reads
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                found.set_metric_names(metric_names)
    return found
