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

from nas_lth.store.fs import Location

FILE = "optuna.journal"
PORT = 8080


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
