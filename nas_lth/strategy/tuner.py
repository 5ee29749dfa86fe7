"""Ray Tune + Optuna over a search space: searcher, scheduler, resources, storage, resume."""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import sys
import uuid
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from nas_lth.errors import DataError, UserError
from nas_lth.space import SearchSpace, define_by_run
from nas_lth.space.schema import Resources
from nas_lth.store import read
from nas_lth.store.fs import Location, locate

CONNECT_TIMEOUT_S = 10.0  # for the first TCP connection to a cluster's head (--address)
# Ray 2.60 binds its gRPC servers (GCS, raylet, workers) and agents to 127.0.0.1 instead of all interfaces
# exactly when the node's IP is 127.0.0.1, and it takes the loopback address as the node's IP when this
# variable is "0" (its own setting for macOS and Windows, where multi-node clusters are off by default).
# Ray reads it when it is imported; the processes it starts inherit it.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
log = logging.getLogger(__name__)


@dataclass
class SearchOptions:
    space: SearchSpace
    name: str
    storage: str = "runs"
    num_samples: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    resume: bool = False
    data_dir: str | None = None
    seed: int | None = None
    device: str = "auto"
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    dashboard: bool = True
    num_cpus: int | None = None  # local Ray only
    progress_every_s: float = 15.0
    quiet: bool = False
    warm_start: str | None = None  # an earlier experiment whose completed trials seed the study
    # the Tune searcher class over the Optuna sampler (None: FidelitySearch); benchmarks pass Ray's own
    # OptunaSearch to measure what telling stopped trials PRUNED adds
    searcher_cls: type | None = None


@dataclass
class SearchOutcome:
    experiment: Location
    interrupted: bool
    trajectory_stats: dict
    dashboard_url: str | None
    metric: str
    warm_started: int = 0  # trials of --warm-start added to the study
    confirm: object = None  # ConfirmOutcome of the confirmation stage, when one ran
    objectives: list = None  # (column, mode) of each objective of a multi-objective search


def _check_storage(opts: SearchOptions) -> Location:
    try:
        root = locate(opts.storage)
        exp = root.join(opts.name)
        exists = exp.exists()
    except (OSError, ValueError) as exc:  # unknown scheme, missing credentials, ...
        raise UserError(f"--storage {opts.storage}: cannot be used ({str(exc).splitlines()[0]})") from None
    if exists and not opts.resume:
        raise UserError(f"experiment {opts.name!r} already exists in {root.uri}; pass --resume to "
                        "continue it or --name to start a new one")
    if opts.resume and not exists:
        raise UserError(f"--resume: no experiment {opts.name!r} in {root.uri}")
    if opts.resume:
        _check_writable(exp, opts.storage)  # Tune writes its state there from the first second
    if not exists and "://" not in root.uri:  # a local path: find out now, before Ray starts, if it can be made
        probe = Path(root.path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise UserError(f"--storage {opts.storage}: cannot be created ({probe} is not a directory)")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UserError(f"--storage {opts.storage}: cannot write in {probe}")
        _check_writable(locate(str(probe)), opts.storage)  # a full disk, before Ray starts
    return exp


def _check_writable(exp: Location, storage: str) -> None:
    """Write and delete a probe file: a full disk or read-only storage is one error before any trial."""
    try:  # a name no one else uses: the folder may be the user's own (the parent of a new --storage)
        probe = exp.join(f".nas_lth-write-test-{uuid.uuid4().hex[:8]}")
        probe.write_bytes(b"ok")
        exp.fs.delete_file(probe.path)
    except OSError as exc:
        raise UserError(f"--storage {storage}: cannot write there ({exc.strerror or exc})") from None


def _create(exp: Location, opts: SearchOptions):
    """Make the new experiment's folder, take its driver lease, record its space; returns the lease."""
    from nas_lth.strategy.experiment import DriverLock, record_space

    if exp.exists():  # it was not there when the search started: another driver made it meanwhile
        lock = DriverLock(exp, opts.name).acquire()  # refuses while that driver runs
        lock.release()
        raise UserError(f"experiment {opts.name!r} appeared in {exp.uri} while this search started (another "
                        "driver?); pass --resume to continue it or --name to start a new one")
    try:
        exp.mkdir()
        _check_writable(exp, opts.storage)
    except OSError as exc:
        raise UserError(f"--storage {opts.storage}: cannot write there ({exc.strerror or exc})") from None
    except UserError:
        exp.fs.delete_dir(exp.path)  # made just now, empty: a failed start leaves no experiment behind
        raise
    lock = DriverLock(exp, opts.name).acquire()
    record_space(exp, opts.space)
    return lock


def _init_ray(opts: SearchOptions) -> tuple[str | None, bool]:
    """(dashboard URL, whether this call started the Ray session). A caller that already holds a
    Ray session (a notebook, a test) keeps it: the search joins it and leaves it running."""
    import ray

    if ray.is_initialized():
        return None, False
    kwargs = dict(namespace="nas_lth", logging_level=logging.WARNING, log_to_driver=False)
    if opts.address:
        _check_reachable(opts.address)
        try:
            ctx = ray.init(address=opts.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"--address {opts.address}: cannot connect to a Ray cluster "
                            f"({str(exc).splitlines()[0]})") from None
    else:  # address="local": a new instance, never a cluster some other program left running here
        ctx = ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=opts.dashboard, **kwargs)
    url = getattr(ctx, "dashboard_url", None)
    return (f"http://{url}" if url and not url.startswith("http") else url), True


def _check_reachable(address: str) -> None:
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


def _loopback_only() -> None:
    """A local instance listens on the loopback interface only (call before ray is imported)."""
    os.environ.setdefault(LOOPBACK_ENV, "0")
    if "ray" in sys.modules:
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:
            log.warning("ray was imported before the search started: its local instance listens on all "
                        "interfaces (set %s=0 before importing ray to keep it on 127.0.0.1)", LOOPBACK_ENV)


def _quiet_libraries() -> None:
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


def objective_keys(space: SearchSpace, metric: str) -> list[tuple[str, str]]:
    """(result key, mode) of each objective; the search's own metric is reported as ``objective``."""
    objectives = space.spec.strategy.objectives or []
    return [("objective" if o.metric == metric else o.metric, o.mode) for o in objectives] or [("objective", "max")]


def _searcher_and_scheduler(space: SearchSpace, seed: int | None, max_t: int, searcher_cls: type | None = None,
                            metric: str = "val_acc", log_path: str | None = None):
    import optuna
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from nas_lth.strategy.moasha import MultiObjectiveASHA
    from nas_lth.strategy.searcher import FidelitySearch

    strat = space.spec.strategy
    keys = objective_keys(space, metric)
    if strat.searcher in ("tpe", "motpe"):  # Optuna's TPE is multi-objective (MOTPE) when the study is
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif strat.searcher == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    elif strat.searcher == "grid":
        sampler = optuna.samplers.GridSampler(space.grid(), seed=seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    # told PRUNED / COMPLETE / FAIL by what the trial reported, intermediate values at their epoch
    cls = searcher_cls or FidelitySearch
    if strat.multi_objective:
        searcher = cls(define_by_run(space), metric=[k for k, _ in keys], mode=[m for _, m in keys], sampler=sampler)
        scheduler = MultiObjectiveASHA(keys, max_t=max_t, grace_period=min(strat.grace_period, max_t),
                                       reduction_factor=strat.reduction_factor, log_path=log_path) \
            if strat.scheduler == "asha" else FIFOScheduler()
        return searcher, scheduler
    searcher = cls(define_by_run(space), metric="objective", mode="max", sampler=sampler)
    if strat.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="fidelity", metric="objective", mode="max", max_t=max_t,
                                  grace_period=min(strat.grace_period, max_t), reduction_factor=strat.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return searcher, scheduler


def _tuner(opts: SearchOptions, exp: Location, trainable, metric: str, seed: int | None, max_t: int,
           warm: list | None = None):
    """(a new Tuner or the experiment's restored one (``--resume``), its results callback)."""
    from ray import tune
    from ray.tune.stopper import CombinedStopper

    from nas_lth.strategy.callback import ResultsCallback
    from nas_lth.strategy.progress import TableReporter
    from nas_lth.strategy.stopper import EpochBudgetStopper, TargetStopper

    space, strat = opts.space, opts.space.spec.strategy
    if opts.resume:
        if tune.Tuner.can_restore(exp.uri):
            from nas_lth.strategy.restore import restore_tuner

            return restore_tuner(exp.uri, trainable, exp)
        _start_over(exp, opts)
    log_path = None if "://" in exp.uri else os.path.join(exp.path, "moasha.jsonl")  # why trials were stopped
    searcher, scheduler = _searcher_and_scheduler(space, seed, max_t, opts.searcher_cls, metric, log_path)
    if warm:
        searcher._ot_study.add_trials(warm)  # the study exists once metric and mode are given
        for t in warm:  # and the live view starts with them too
            if hasattr(searcher, "mirror"):
                searcher.mirror(t)
    root = locate(opts.storage)
    stoppers = ([TargetStopper(strat.stop_when)] if strat.stop_when else []) + \
        ([EpochBudgetStopper(strat.epoch_budget)] if strat.epoch_budget else [])
    callback = ResultsCallback(space, exp, opts.name, metric, quiet=opts.quiet, target=strat.stop_when,
                               epoch_budget=strat.epoch_budget)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=opts.num_samples or space.num_samples(),
            max_concurrent_trials=opts.max_concurrent or strat.max_concurrent,
            reuse_actors=True, time_budget_s=strat.time_budget_s),
        run_config=tune.RunConfig(
            name=opts.name, storage_path=root.uri if "://" in root.uri else root.path,
            failure_config=tune.FailureConfig(max_failures=strat.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[callback],
            progress_reporter=TableReporter(metric, space.fixed_flat(), every_s=opts.progress_every_s),
            stop=CombinedStopper(*stoppers) if stoppers else None,
            verbose=1),
    ), callback


def _start_over(exp: Location, opts: SearchOptions) -> None:
    """``--resume`` of an experiment without Tune state: a driver killed between making the folder and Tune's
    first save. With no trial recorded there is nothing to lose: the search starts in the same folder."""
    from nas_lth.strategy.experiment import record_space

    if exp.join("trials").is_dir() and exp.join("trials").list(".parquet"):
        raise UserError(f"--resume: {exp.uri} holds trial rows but no restorable Tune state (tuner.pkl is "
                        "missing or damaged); its results stay readable - start a new experiment with --name")
    print(f"note: {exp.uri} holds no Tune state and no trial yet (its first run stopped before it started): "
          "starting the search there", flush=True)
    record_space(exp, opts.space)


def run_search(opts: SearchOptions, on_start=None) -> SearchOutcome:
    _quiet_libraries()  # first: some settings must be in the environment before Tune reads them
    if not opts.address:
        _loopback_only()
    import ray
    from ray import tune

    from nas_lth.strategy.broker import start_broker
    from nas_lth.strategy.experiment import DriverLock, check_space
    from nas_lth.strategy.trainable import objective_metric, ticket_trainable
    from nas_lth.strategy.trial import TrialSpec

    space, strat, res = opts.space, opts.space.spec.strategy, opts.space.spec.resources
    exp = _check_storage(opts)
    if opts.resume:
        check_space(exp, space, opts.name)
    warm = _warm(opts)
    seed = strat.seed if opts.seed is None else opts.seed
    cpus = opts.cpus_per_trial if opts.cpus_per_trial is not None else res.cpus_per_trial
    gpus = opts.gpus_per_trial if opts.gpus_per_trial is not None else res.gpus_per_trial
    _check_trial_resources(cpus, gpus)
    multilabel = _check_data(space, opts.data_dir)  # always: a missing file is one error before Ray starts
    metric = strat.search_metric or objective_metric(multilabel)
    max_t = max(1, math.ceil(max(float(b) for b in space.values_of("budget") or [space.recipe({}).budget])))
    with ExitStack() as stack:  # unwinds in reverse: Ray's session ends, then the lease is given back
        if opts.resume:  # before Ray starts: a second driver on a running experiment starts nothing
            stack.callback(DriverLock(exp, opts.name).acquire().release)
        dashboard_url, owns_ray = _init_ray(opts)
        if owns_ray:
            stack.callback(ray.shutdown)  # the session this search started (local instance or cluster connection)
        _check_resources(opts, cpus, gpus)
        if not opts.resume:  # only now: a bad input must leave no half-made experiment behind
            stack.callback(_create(exp, opts).release)
        if on_start is not None:
            on_start(dashboard_url)
        broker = start_broker(opts.name)  # keep the handle: a non-detached actor dies with its last handle
        spec = TrialSpec.from_space(space, name=opts.name, experiment=exp.uri, device=opts.device,
                                    data_dir=os.path.abspath(opts.data_dir) if opts.data_dir else None,
                                    threads=max(1, int(cpus)), checkpoint_every_s=strat.checkpoint_every_s,
                                    metric=metric, required=tuple(k for k, _ in objective_keys(space, metric)))
        trainable = tune.with_resources(tune.with_parameters(ticket_trainable, spec=spec),
                                        {"cpu": cpus, "gpu": gpus})
        interrupted, confirm = _stages(opts, exp, trainable, metric, seed, max_t, warm)
        stats = ray.get(broker.get_stats.remote())
    objectives = [(metric if o.metric == metric else o.metric, o.mode) for o in strat.objectives or []]
    return SearchOutcome(exp, interrupted, stats, dashboard_url, metric, warm_started=len(warm), confirm=confirm,
                         objectives=objectives if strat.multi_objective else None)


def _stages(opts: SearchOptions, exp: Location, trainable, metric: str, seed, max_t: int, warm: list):
    """The search, then (when it is complete) the confirmation stage: (interrupted?, ConfirmOutcome)."""
    from nas_lth.strategy import journal, searcher
    from nas_lth.strategy.stopper import _target_met, budget_spent

    space, strat = opts.space, opts.space.spec.strategy
    # the live study for optuna-dashboard (on object stores a driver-local file, copied after each stage)
    path = journal.local_path(exp)
    searcher.JOURNAL.update(path=path, name=opts.name, metric=metric)
    if not opts.quiet:
        print(f"live study: {journal.dashboard_command(path)}  (pip install 'nas_lth[dashboard]'; on a cluster: "
              f"ssh -L {journal.PORT}:127.0.0.1:{journal.PORT} <head node>)", flush=True)
    tuner, _ = _tuner(opts, exp, trainable, metric, seed, max_t, warm)
    try:
        grid = tuner.fit()
    finally:
        journal.upload(exp, path)
    # After a SIGINT Tune saves its state and returns early; the trials table tells what is done.
    wanted = opts.num_samples or space.num_samples()
    if opts.resume:
        wanted = max(wanted, _restored_num_samples(tuner, wanted))
    try:  # the table, read once, says what is done
        trials = read(exp.uri).trials
    except UserError:  # no trials/ folder yet: nothing finished
        trials = pd.DataFrame()
    done = len(trials)
    target_met = bool(strat.stop_when) and _target_met(trials, strat.stop_when)
    budget_met = bool(strat.epoch_budget) and budget_spent(trials) >= strat.epoch_budget
    interrupted = done < wanted and strat.time_budget_s is None and not target_met and not budget_met
    if interrupted:
        return True, None
    configs = {r.metrics["trial_id"]: r.config for r in grid if r.metrics and "trial_id" in r.metrics}
    try:
        confirm = _confirm_stage(opts, exp, trainable, metric, configs)
    except KeyboardInterrupt:  # between the stages, outside Tune's handler: nothing of it is lost
        return True, None
    finally:
        journal.upload(exp, path)
    return confirm is not None and confirm.interrupted, confirm


def _confirm_stage(opts: SearchOptions, exp: Location, trainable, metric: str, configs: dict):
    """The confirmation stage (``strategy.confirm``): a FIFO grid over the plan in ``<experiment>/confirm``."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from nas_lth.strategy.callback import ResultsCallback
    from nas_lth.strategy.confirm import FOLDER, run_confirm
    from nas_lth.strategy.progress import TableReporter

    space, strat = opts.space, opts.space.spec.strategy
    tune_config = tune.TuneConfig(scheduler=FIFOScheduler(), num_samples=1, reuse_actors=True,
                                  max_concurrent_trials=opts.max_concurrent or strat.max_concurrent)
    run_config = tune.RunConfig(
        name=FOLDER, storage_path=exp.uri if "://" in exp.uri else exp.path,
        failure_config=tune.FailureConfig(max_failures=strat.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[ResultsCallback(space, exp, opts.name, metric, quiet=opts.quiet)],
        progress_reporter=TableReporter(metric, space.fixed_flat(), every_s=opts.progress_every_s), verbose=1)
    if not opts.quiet and strat.confirm is not None:
        print(f"\n== confirmation stage: top {strat.confirm.top} recipes x seeds {space.confirm_seeds()}", flush=True)
    return run_confirm(tune_config, run_config, exp, trainable, configs, space, metric)


def _warm(opts: SearchOptions) -> list:
    """The --warm-start trials, checked before Ray starts (a bad experiment changes nothing)."""
    if not opts.warm_start:
        return []
    if opts.resume:
        raise UserError("--warm-start: only for a new experiment (a resumed one keeps its own study)")
    from nas_lth.strategy.warm import warm_trials

    warm = warm_trials(opts.space, opts.warm_start)
    if not warm:
        raise UserError(f"--warm-start {opts.warm_start}: it has no completed trials to start from")
    return warm


def _restored_num_samples(tuner, default: int) -> int:
    try:  # the restored TuneConfig knows how many samples the first run asked for
        return int(tuner._local_tuner._tune_config.num_samples)
    except Exception:  # noqa: BLE001 - private API; fall back to the CLI/space value
        return default


# The keys that decide whether a stopping or rewind point fits the budget: the points, the budget, and
# the batch size (iterations per epoch); val_size and the dataset change the training set itself.
BUDGET_KEYS = ("stop_at", "rewind_to", "budget", "training.batch_size")


def _check_data(space: SearchSpace, data_dir: str | None) -> bool:
    """Load each dataset the space uses once on the driver, so a missing or corrupt file is one clear
    error before any trial starts (not the same failure in every trial), and check that every
    stopping and rewind point the space can ask for lies within every budget it can meet. Returns:
    multi-label?"""
    from nas_lth.data import load_dataset

    options = space.spec.fixed.get("dataset_options") or None
    multilabel = False
    for name in space.values_of("dataset") or []:
        _check_options(space, name, options)
        for val_size in _val_sizes(space):
            try:
                ds = load_dataset(name, data_dir, seed=0, val_size=val_size, options=options)
            except DataError:
                raise
            except UserError as exc:  # the split cannot be made: val_size does not fit the training set
                raise UserError(f"{space.source}: {_where(space, 'val_size')}: {exc}") from None
            multilabel |= ds.multilabel
            _check_budgets(space, name, val_size, len(ds.train))
            _check_channels(space, ds)
    return multilabel


# The keys that decide whether a channel ticket keeps a channel in every group (layer-wise selection)
CHANNEL_KEYS = ("model", "granularity", "criterion", "scope", "rounds", "target_weights", "prune_rate.conv",
                "prune_rate.fc")


def _check_channels(space: SearchSpace, ds) -> None:
    """``granularity: channel``: every model the space can pick has channels to remove, and no layer-wise
    schedule it can ask for removes a layer's last channel (a global one can only be checked while pruning)."""
    from nas_lth.models import build_model
    from nas_lth.pruning.channels import channel_groups, check_rates

    if "channel" not in (space.values_of("granularity") or []):
        return  # nothing to check (and no start-up cost) for weight tickets
    groups: dict[str, list] = {}
    for sampled, context in _extreme_combos(space, CHANNEL_KEYS):
        rc = space.recipe(sampled)
        if rc.granularity != "channel":
            continue
        if rc.model not in groups:
            model = build_model(rc.model, ds.input_shape, ds.num_classes, seed=0, options=rc.model_options,
                                meta=ds.meta)
            groups[rc.model] = channel_groups(model, ds.train.x[:2].cpu())
        where = _where(space, "model") if "model" in space.dims else "fixed.model"
        if not groups[rc.model]:
            raise UserError(f"{space.source}: {where}: {rc.model!r} has no channels to remove "
                            "(granularity: channel needs convolutions or hidden fc layers)")
        bare = [g.name for g in groups[rc.model] if not g.norms]
        if rc.criterion == "bn_gamma" and bare:
            raise UserError(f"{space.source}: {_where(space, 'criterion')}: 'bn_gamma' needs a BatchNorm on every "
                            f"channel; {rc.model!r} has none on {bare[0]!r} (use a filter-norm criterion)")
        if rc.scope == "layerwise":
            key = _where(space, "target_weights") if rc.target_weights is not None else "prune_rate"
            try:
                check_rates(groups[rc.model], rc.effective_prune_rate(), rc.rounds, key=key)
            except UserError as exc:
                raise UserError(f"{space.source}: {exc}" + (f" (with {', '.join(context)})" if context else "")) \
                    from None


def _where(space: SearchSpace, key: str) -> str:
    return f"search.{key}" if key in space.dims else f"fixed.{key}"


def _check_options(space: SearchSpace, name: str, options) -> None:
    from nas_lth.data.load import get_spec, resolve_options

    try:
        resolve_options(get_spec(name), options)
    except UserError as exc:
        raise UserError(f"{space.source}: fixed.dataset_options: {exc}") from None


def _val_sizes(space: SearchSpace) -> list:
    if "val_size" in space.dims:
        return space.dims["val_size"].extremes()
    return [space.fixed_flat().get("val_size")]


def _active(space: SearchSpace, sampled: dict) -> dict:
    """``sampled`` without the dimensions whose ``when`` does not hold for it (they are not drawn)."""
    values, out = space.fixed_flat(), {}
    for key, dim in space.dims.items():
        if key in sampled and dim.matches({**values, **out}):
            out[key] = sampled[key]
    return out


def _extreme_combos(space: SearchSpace, keys, pinned: dict | None = None):
    """Every combination of the extremes of the searched ``keys`` (the other dimensions at their first value,
    ``pinned`` ones at the given value): (the sampled values that act, ``search.k = v`` of those that vary)."""
    searched = [k for k in keys if k in space.dims]
    base = {k: d.extremes()[0] for k, d in space.dims.items()}
    pinned = {k: v for k, v in (pinned or {}).items() if k in space.dims}
    for combo in itertools.product(*(space.dims[k].extremes() for k in searched)):
        sampled = _active(space, {**base, **dict(zip(searched, combo, strict=True)), **pinned})
        context = [f"search.{k} = {sampled[k]!r}" for k in (*searched, *pinned)
                   if k in sampled and len(space.dims[k].extremes()) > 1]
        yield sampled, context


def _check_budgets(space: SearchSpace, dataset: str, val_size, n_train: int) -> None:
    """Every combination of the extremes of :data:`BUDGET_KEYS` (the other dimensions at their first
    value): a stopping point that fits each budget alone may still not fit a short one with large batches."""
    for sampled, context in _extreme_combos(space, BUDGET_KEYS, {"dataset": dataset, "val_size": val_size}):
        try:
            problem = space.recipe(sampled).budget_problem(n_train)
        except UserError as exc:
            raise UserError(f"{exc} (with {', '.join(context)})" if context else str(exc)) from None
        if problem is not None:
            key, why = problem
            others = [c for c in context if not c.startswith(f"search.{key} ")]
            with_ = f" (with {', '.join(others)})" if others else ""
            raise UserError(f"{space.source}: {_where(space, key)}: {why}{with_}")


def _check_trial_resources(cpus: float, gpus: float) -> None:
    """The resources a trial asks for, by the space file's rules (a value from the file passed them
    when it was loaded; a flag's value is checked here, before Ray starts)."""
    values = {"cpus_per_trial": cpus, "gpus_per_trial": gpus}
    try:
        Resources.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0])
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"--{key.replace('_', '-')} {values[key]!r}: {msg}") from None


def _check_resources(opts: SearchOptions, cpus: float, gpus: float) -> None:
    """A local instance cannot grow: a trial asking for more than it has would wait forever."""
    import ray

    if opts.address:
        return  # an autoscaling cluster may add the nodes later
    have = ray.cluster_resources()
    for name, want in (("CPU", cpus), ("GPU", gpus)):
        if want > have.get(name, 0):
            flag = "--cpus-per-trial" if name == "CPU" else "--gpus-per-trial"
            raise UserError(f"{flag} {want:g}: this machine's Ray instance has {have.get(name, 0):g} {name}s; "
                            f"lower it (or join a cluster with --address)")
