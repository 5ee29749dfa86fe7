"""What a killed driver's local Ray instance leaves running on this machine.

A driver that starts its own Ray instance (no ``--address``) records the instance's session name in its lease
(``driver.lock``). SIGKILL the driver and that instance's processes (GCS server, raylet, dashboard and
runtime-env agents, idle workers) outlive it for a while. The next driver that takes the stale lease over on
the same host ends them: the processes whose command line names that session or that hold its log files
open (Ray's renamed agents and workers), and their children. Nothing
else is touched: another search's Ray instance has another session name, and a cluster joined with
``--address`` is never recorded. Linux only (``/proc``); elsewhere the orphans are left to exit by themselves.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def session_name() -> str | None:
    """The session name of the Ray instance this process started (None without one)."""
    try:
        import ray

        node = ray._private.worker._global_node  # the local instance ray.init started (Ray 2.x)
        return getattr(node, "session_name", None)
    except Exception:  # noqa: BLE001 - Ray internals moved: no record, no clean-up later
        return None


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid ...
        if fields[0] != "Z":  # a zombie is gone already
            out[int(entry)] = (int(fields[1]), cmd)
    return out


def _holds_session_files(pid: int, session: str) -> bool:
    """Whether the process has a file of the session's folder open (its logs): Ray's agents and workers
    rename themselves (``ray::DashboardAgent``) and no longer name the session on their command line."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(f"/{session}/" in link for link in links)


def session_processes(session: str) -> list[int]:
    """Live processes that name ``session`` on their command line or hold its files open, with their
    descendants."""
    if not session or not session.startswith("session_") or not Path("/proc").is_dir():
        return []
    procs = _processes()
    found = {pid for pid, (_, cmd) in procs.items() if pid != os.getpid() and (
        session in cmd or (cmd.startswith("ray::") and _holds_session_files(pid, session)))}
    grew = True
    while grew:  # workers forked by the raylet need not name the session
        more = {pid for pid, (ppid, _) in procs.items() if ppid in found and pid not in found and pid != os.getpid()}
        found |= more
        grew = bool(more)
    return sorted(found)


def end_session(session: str, grace_s: float = 5.0) -> list[int]:
    """SIGTERM the session's processes, SIGKILL what is left after ``grace_s``; returns the pids ended."""
    pids = session_processes(session)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline and set(session_processes(session)) & set(pids):
            time.sleep(0.1)
    return pids
