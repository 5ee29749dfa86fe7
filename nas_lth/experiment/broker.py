"""Share the dense trajectory between trials: computed once per key, by one trial, reused by all.

The trajectory is content-addressed under ``<experiment>/trajectories/<key>.pt`` in the experiment's
storage (so it survives a resume and every node of a cluster reaches it). A small Ray actor decides
who computes a missing key; the others wait for it. A claim lapses when its holder stops sending
heartbeats (a dead node), so a waiting trial can take over.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import ray

from nas_lth.estimation.trajectory import DenseTrajectory
from nas_lth.store.fs import Location

log = logging.getLogger(__name__)
NAMESPACE = "nas_lth"
LEASE_S = 120.0  # a claim without a heartbeat for this long is considered dead
HEARTBEAT_S = 10.0


@ray.remote(num_cpus=0, max_restarts=-1)
class TrajectoryBroker:
    def __init__(self):
        self.ready: set[str] = set()
        self.claims: dict[str, tuple[str, float]] = {}  # key -> (trial id, last heartbeat)
        self.changed: dict[str, asyncio.Event] = {}
        self.stats = {"computed": 0, "reused": 0, "computed_iterations": 0}

    def _event(self, key: str) -> asyncio.Event:
        return self.changed.setdefault(key, asyncio.Event())

    async def claim(self, key: str, trial_id: str) -> str:
        """'ready' (stored), 'compute' (the caller holds the claim) or 'wait'."""
        if key in self.ready:
            return "ready"
        holder = self.claims.get(key)
        if holder is None or holder[0] == trial_id or time.monotonic() - holder[1] > LEASE_S:
            self.claims[key] = (trial_id, time.monotonic())
            return "compute"
        return "wait"

    async def heartbeat(self, key: str, trial_id: str) -> None:
        if self.claims.get(key, (None,))[0] == trial_id:
            self.claims[key] = (trial_id, time.monotonic())

    async def wait(self, key: str, timeout: float) -> str:
        if key in self.ready:
            return "ready"
        event = self._event(key)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return "ready" if key in self.ready else "retry"

    async def done(self, key: str, trial_id: str, iterations: int) -> None:
        self.ready.add(key)
        self.claims.pop(key, None)
        self.stats["computed"] += 1
        self.stats["computed_iterations"] += iterations
        self._event(key).set()

    async def release(self, key: str, trial_id: str) -> None:
        if self.claims.get(key, (None,))[0] == trial_id:
            del self.claims[key]
            event = self.changed.pop(key, None)
            if event is not None:
                event.set()  # wake the waiters: one of them claims next

    async def invalidate(self, key: str) -> None:
        """The stored file of ``key`` failed its check: it is missing again until someone recomputes it."""
        self.ready.discard(key)
        event = self.changed.get(key)
        if event is not None and event.is_set():
            del self.changed[key]  # a set event would wake the next waiter at once, before the new file exists

    async def mark_ready(self, key: str) -> None:
        self.ready.add(key)
        self.stats["reused"] += 1

    async def get_stats(self) -> dict:
        return dict(self.stats)


def broker_name(experiment: str) -> str:
    return f"trajectory-broker:{experiment}"


def start_broker(experiment: str):
    """The broker lives on the driver's node (soft affinity): worker nodes come and go on a cluster.
    If it dies anyway it restarts empty, and trials fall back on the stored trajectory files."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return TrajectoryBroker.options(
        name=broker_name(experiment), namespace=NAMESPACE, get_if_exists=True, lifetime=None,
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()


def get_trajectory(
    key: str,
    location: Location,
    trial_id: str,
    broker,
    compute: Callable[[Callable[[], None]], DenseTrajectory],
) -> tuple[DenseTrajectory, bool]:
    """The trajectory ``key`` from storage, computing it here if nobody else does.

    ``compute(heartbeat)`` trains it and should call ``heartbeat()`` now and then. Returns
    (trajectory, computed_here).
    """
    path = location.join("trajectories", f"{key}.pt")
    while True:
        if path.exists():
            traj = _load(path, key)
            if traj is not None:
                ray.get(broker.mark_ready.remote(key))
                return traj, False
            ray.get(broker.invalidate.remote(key))  # then computed again, by this trial or another
        status = ray.get(broker.claim.remote(key, trial_id))
        if status == "ready":
            continue
        if status == "wait":
            ray.get(broker.wait.remote(key, LEASE_S))
            continue
        try:
            traj = compute(_heartbeat(broker, key, trial_id))
            path.write_bytes(traj.to_bytes())
        except BaseException:
            ray.get(broker.release.remote(key, trial_id))
            raise
        ray.get(broker.done.remote(key, trial_id, traj.iterations))
        return traj, True


def _load(path: Location, key: str) -> DenseTrajectory | None:
    """The stored trajectory, or None (with a warning) when the file fails its check: a damaged or
    foreign file is computed again and replaced, not the failure of every trial that needs it."""
    try:
        traj = DenseTrajectory.from_bytes(path.read_bytes())
        if traj.key != key:
            raise ValueError(f"it holds trajectory {traj.key!r}")
        return traj
    except FileNotFoundError:
        return None  # replaced or removed since exists(): look again
    except ValueError as exc:
        log.warning("shared trajectory %s failed its check (%s); computing it again to replace it", path.uri, exc)
        return None


def _heartbeat(broker, key: str, trial_id: str) -> Callable[[], None]:
    last = [0.0]
    lock = threading.Lock()

    def beat() -> None:
        with lock:
            now = time.monotonic()
            if now - last[0] >= HEARTBEAT_S:
                last[0] = now
                broker.heartbeat.remote(key, trial_id)  # fire and forget

    return beat
