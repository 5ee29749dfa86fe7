"""The Ray session a search runs in: a new local instance (on loopback only) or a cluster's, and the library
settings Tune and Optuna read before they start."""

from __future__ import annotations

import logging
import os
import socket
import sys
import warnings

from nas_lth.errors import UserError

CONNECT_TIMEOUT_S = 10.0  # for the first TCP connection to a cluster's head (--address)
# Ray 2.60 binds its gRPC servers (GCS, raylet, workers) and agents to 127.0.0.1 instead of all interfaces
# exactly when the node's IP is 127.0.0.1, and it takes the loopback address as the node's IP when this
# variable is "0" (its own setting for macOS and Windows, where multi-node clusters are off by default).
# Ray reads it when it is imported; the processes it starts inherit it.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
log = logging.getLogger(__name__)


def init_ray(address: str | None, num_cpus: int | None, dashboard: bool,
             runtime_env: dict | None = None) -> tuple[str | None, bool]:
    """(dashboard URL, whether this call started the Ray session). A caller that already holds a
    Ray session (a notebook, a test) keeps it: the search joins it and leaves it running (its workers must
    then import the plugins themselves). ``runtime_env``: the job's (the plugins' code and set-up hook)."""
    import ray

    if ray.is_initialized():
        return None, False
    kwargs = dict(namespace="nas_lth", logging_level=logging.WARNING, log_to_driver=False)
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    if address:
        check_reachable(address)
        try:
            ctx = ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"--address {address}: cannot connect to a Ray cluster "
                            f"({str(exc).splitlines()[0]})") from None
    else:  # address="local": a new instance, never a cluster some other program left running here
        ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, **kwargs)
    url = getattr(ctx, "dashboard_url", None)
    return (f"http://{url}" if url and not url.startswith("http") else url), True


def check_reachable(address: str) -> None:
    """Something must listen at the cluster's host:port: where nothing does, ray.init retries for ~90 s
    (and sits out SIGTERM meanwhile), so a plain TCP connection is tried first."""
    from ray._private.services import canonicalize_bootstrap_address

    try:  # "auto" becomes the address of the cluster last started here; "ray://h:p" a client address
        hostport = canonicalize_bootstrap_address(address.split("://", 1)[-1]) or ""
    except Exception:  # noqa: BLE001 - a private helper; whatever it refuses, ray.init says why below
        return
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"--address {address}: cannot connect to a Ray cluster ({host}:{port}: "
                        f"{exc.strerror or exc or 'timed out'}); is its head node running?") from None


def loopback_only() -> None:
    """A local instance listens on the loopback interface only (call before ray is imported)."""
    os.environ.setdefault(LOOPBACK_ENV, "0")
    if "ray" in sys.modules:
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:
            log.warning("ray was imported before the search started: its local instance listens on all "
                        "interfaces (set %s=0 before importing ray to keep it on 127.0.0.1)", LOOPBACK_ENV)


def quiet_libraries() -> None:
    # Tune's CSV/JSON/TensorBoard loggers would duplicate the Parquet tables (and grow with the
    # per-report curve records); the legacy output engine is the one that takes our reporter.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a trial resumed from a checkpoint reports some steps again; Optuna keeps the first value
    warnings.filterwarnings("ignore", message="The reported value is ignored")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    # with Tune's file loggers off, its ResultGrid warns that result.json is missing: we don't use it
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def check_resources(address: str | None, cpus: float, gpus: float) -> None:
    """A local instance cannot grow: a trial asking for more than it has would wait forever."""
    import ray

    if address:
        return  # an autoscaling cluster may add the nodes later
    have = ray.cluster_resources()
    for name, want in (("CPU", cpus), ("GPU", gpus)):
        if want > have.get(name, 0):
            flag = "--cpus-per-trial" if name == "CPU" else "--gpus-per-trial"
            raise UserError(f"{flag} {want:g}: this machine's Ray instance has {have.get(name, 0):g} {name}s; "
                            f"lower it (or join a cluster with --address)")
