"""``driver.lock``: a lease naming the driver running an experiment (host, pid, a token) with a heartbeat.

A second driver on the same experiment - two fresh searches started together, or ``--resume`` while one
runs - is refused with the holder's name; a stale lease (its pid gone on this host, or no heartbeat for
``STALE_S``) is taken over with a warning. On a local disk the lease is created exclusively (``O_EXCL``);
object stores have no exclusive create here, so the driver writes its token, waits ``SETTLE_S`` and reads it
back: of two drivers that both wrote, only the one whose token stayed goes on.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid

from nas_lth.errors import UserError
from nas_lth.experiment.orphans import end_session
from nas_lth.store.fs import Location

LOCK_FILE = "driver.lock"
HEARTBEAT_S, STALE_S, SETTLE_S = 10.0, 60.0, 2.0



def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(holder: dict) -> bool:
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not _alive(holder["pid"])
    return time.time() - float(holder.get("heartbeat", 0)) > STALE_S


class DriverLock:
    def __init__(self, exp: Location, name: str):
        self.loc, self.name = exp.join(LOCK_FILE), name
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ray_session: str | None = None  # the local Ray instance this driver started (orphans.py)

    def _body(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "started": self.started, "heartbeat": time.time(),
                           "ray_session": self.ray_session}).encode()

    def record_ray_session(self, session: str | None) -> None:
        """Name the local Ray instance this driver started, so that a driver taking over after a SIGKILL can
        end what it left running (``nas_lth.experiment.orphans``)."""
        self.ray_session = session
        try:
            self.loc.write_bytes(self._body())
        except OSError:
            pass  # the next heartbeat carries it

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.loc.read_bytes())
        except (OSError, ValueError):
            return None  # absent, or a half-written lease: nobody holds it

    def _refuse(self, holder: dict) -> UserError:
        age = time.time() - float(holder.get("heartbeat", 0))
        return UserError(f"experiment {self.name!r} is being run by another driver (host {holder.get('host')}, "
                         f"pid {holder.get('pid')}, heartbeat {age:.0f} s ago); wait for it to end or stop it")

    def acquire(self) -> DriverLock:
        holder = self._holder()
        if holder is not None:
            if not _stale(holder):
                raise self._refuse(holder)
            print(f"warning: taking over the stale lease of experiment {self.name!r} (host {holder.get('host')}, "
                  f"pid {holder.get('pid')}: no longer running)", file=sys.stderr, flush=True)
            self.loc.fs.delete_file(self.loc.path)
            if holder.get("host") == socket.gethostname() and holder.get("ray_session"):
                ended = end_session(str(holder["ray_session"]))
                if ended:
                    print(f"warning: ended {len(ended)} process(es) of the dead driver's Ray instance "
                          f"({holder['ray_session']})", file=sys.stderr, flush=True)
        if "://" in self.loc.uri:
            self.loc.write_bytes(self._body())
            time.sleep(SETTLE_S)  # another driver that wrote meanwhile overwrote us, or we it: read back
            holder = self._holder()
            if holder is None or holder.get("token") != self.token:
                raise self._refuse(holder or {})
        else:
            try:
                fd = os.open(self.loc.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise self._refuse(self._holder() or {}) from None
            with os.fdopen(fd, "wb") as f:
                f.write(self._body())
        self._thread = threading.Thread(target=self._beat, name="nas_lth-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.loc.write_bytes(self._body())  # written whole, then renamed
            except OSError:
                pass  # a missed beat; the lease goes stale only after STALE_S without one

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            try:
                self.loc.fs.delete_file(self.loc.path)
            except OSError:
                pass
