"""Tune's state is pickled: only state this user's nas_lth wrote is loaded on ``--resume``.

``tuner.pkl``, ``searcher-state-*.pkl``, ``callback-states-*.pkl``, ``search_gen_state-*.json`` (a pickle) and
``experiment_state-*.json`` (which embeds cloudpickled objects) all run code when Tune restores them, so a
crafted file in a shared bucket or a downloaded experiment would run code on the machine that resumes it.
The driver signs each of them with an HMAC-SHA256 under a key kept outside the experiment, right after Tune
writes them (``tuner.pkl`` when the tuner is made, the snapshot files at the end of every Tune step, all of
them when the stage ends); the signatures live in ``<tune dir>/state.sig``. Before a restore nothing is
unpickled until the signatures are checked: an unsigned or altered ``tuner.pkl`` is refused with one line,
and an unsigned or altered snapshot set is set aside like a torn one (a driver killed between Tune's save and
its signature leaves the newest set unsigned). ``--trust-state`` is the opt-out for a copy one trusts (an
experiment moved from another machine or user, or started before this check): it signs the state as it is.

The key: ``$NAS_LTH_STATE_KEY`` when set, else ``$XDG_CONFIG_HOME/nas_lth/state.key`` (``~/.config`` by
default), 32 random bytes made on first use, readable by its owner only. On a cluster only the driver reads
Tune's state, so only the driver's machine needs the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from ray.tune import Callback

from nas_lth.errors import UserError
from nas_lth.experiment.snapshots import SNAPSHOT
from nas_lth.store.fs import Location, locate

KEY_ENV = "NAS_LTH_STATE_KEY"
SIG_FILE = "state.sig"
TUNER_FILE = "tuner.pkl"


def key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nas_lth" / "state.key"


def key() -> bytes:
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    path = key_path()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two drivers starting together agree on one key
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot make the key that signs Tune's state at {path} ({exc.strerror or exc}); set "
                        f"${KEY_ENV} to a secret of your own") from None


def state_files(tune_dir: Location) -> list[Location]:
    """The files of ``tune_dir`` that Tune unpickles on restore."""
    return [f for f in tune_dir.list() if f.name == TUNER_FILE or SNAPSHOT.match(f.name)]


def digest(data: bytes, k: bytes | None = None) -> str:
    return hmac.new(k if k is not None else key(), data, hashlib.sha256).hexdigest()


HISTORY = 16  # digests kept per file: Tune uploads its snapshot in the background, storage may lag a few saves


def signatures(tune_dir: Location) -> dict[str, list[str]]:
    try:
        sigs = json.loads(tune_dir.join(SIG_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(sigs, dict):
        return {}
    return {k: [v] if isinstance(v, str) else [d for d in v if isinstance(d, str)] for k, v in sigs.items()}


def add_signatures(tune_dir: Location, named: dict[str, bytes]) -> None:
    """Add the digests of ``{file name: bytes}`` to ``state.sig`` (the newest ``HISTORY`` per file are kept)."""
    k = key()
    sigs = signatures(tune_dir)
    for name, data in named.items():
        d = digest(data, k)
        sigs[name] = [*[x for x in sigs.get(name, []) if x != d], d][-HISTORY:]
    tune_dir.join(SIG_FILE).write_bytes(json.dumps(sigs, sort_keys=True).encode())


def sign(tune_dir: Location, files: list[Location] | None = None) -> None:
    """Sign ``files`` (default: every state file there) as they are in storage."""
    named = {}
    for f in state_files(tune_dir) if files is None else files:
        try:
            named[f.name] = f.read_bytes()
        except (OSError, FileNotFoundError):
            continue
    add_signatures(tune_dir, named)


def unsigned(tune_dir: Location) -> list[str]:
    """Names of the state files whose signature is missing or does not match their bytes."""
    k = key()
    sigs = signatures(tune_dir)
    bad = []
    for f in state_files(tune_dir):
        have = digest(f.read_bytes(), k)
        if not any(hmac.compare_digest(want, have) for want in sigs.get(f.name, [])):
            bad.append(f.name)
    return bad


class StateSigner(Callback):
    """Signs the snapshot files Tune rewrote during a step. Tune saves them inside ``step()``, before the
    callbacks' ``on_step_end``, into a driver-local staging folder, and uploads that to storage in the
    background: the staging copy is what is signed (with a history, since storage may hold an older save)."""

    def __init__(self, tune_dir: Location):
        self.tune_dir = tune_dir
        self.seen: dict[str, tuple] = {}
        # a local folder is listed after every step; an object store (one LIST request each) every 2 s
        self.every_s = 2.0 if "://" in tune_dir.uri else 0.0
        self.last = 0.0

    def on_step_end(self, iteration, trials, **info):
        import time

        import pyarrow.fs as pafs

        if time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        staging = next((getattr(t.storage, "experiment_driver_staging_path", None) for t in trials
                        if getattr(t, "storage", None) is not None), None)
        where = locate(staging) if staging and os.path.isdir(staging) else self.tune_dir
        changed = {}
        for f in state_files(where):
            st = where.fs.get_file_info(f.path)
            mark = (st.mtime_ns, st.size) if st.type == pafs.FileType.File else None
            if mark is not None and self.seen.get(f.path) != mark:
                self.seen[f.path] = mark
                changed[f.name] = f.read_bytes()
        if changed:
            add_signatures(self.tune_dir, changed)
