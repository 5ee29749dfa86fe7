"""Ray Tune + Optuna over a search space: the searcher and scheduler, the Tuner (new or restored), and the run
of a search's stages (the search, then the confirmation stage). The checks before it are in
:mod:`nas_lth.strategy.preflight`, the Ray session in :mod:`nas_lth.strategy.cluster`, the experiment folder's
bookkeeping in :mod:`nas_lth.experiment`."""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack

import pandas as pd

from nas_lth import plugins
from nas_lth.errors import UserError
from nas_lth.experiment.folder import create, start_over
from nas_lth.space import SearchSpace, define_by_run
from nas_lth.store import read
from nas_lth.store.fs import Location, locate
from nas_lth.strategy.cluster import check_resources, init_ray, loopback_only, quiet_libraries
from nas_lth.strategy.options import SearchOptions, SearchOutcome
from nas_lth.strategy.preflight import preflight

log = logging.getLogger(__name__)


def run_search(opts: SearchOptions, on_start=None) -> SearchOutcome:
    quiet_libraries()  # first: some settings must be in the environment before Tune reads them
    if not opts.address:
        loopback_only()
    plan = preflight(opts)  # every check that needs no Ray: a bad input starts and writes nothing
    import ray
    from ray import tune

    from nas_lth.experiment.broker import start_broker
    from nas_lth.experiment.lease import DriverLock
    from nas_lth.experiment.orphans import session_name
    from nas_lth.strategy.trainable import ticket_trainable
    from nas_lth.strategy.trial import TrialSpec

    space, strat, exp, metric = opts.space, opts.space.spec.strategy, plan.experiment, plan.metric
    with ExitStack() as stack:  # unwinds in reverse: Ray's session ends, then the lease is given back
        lease = None
        if opts.resume:  # before Ray starts: a second driver on a running experiment starts nothing
            lease = DriverLock(exp, opts.name).acquire()
            stack.callback(lease.release)
        dashboard_url, owns_ray = init_ray(opts.address, opts.num_cpus, opts.dashboard,
                                           plugins.runtime_env(space.spec.plugins))
        if owns_ray:
            stack.callback(ray.shutdown)  # the session this search started (local instance or cluster connection)
        check_resources(opts.address, plan.cpus, plan.gpus)
        if not opts.resume:  # only now: a bad input must leave no half-made experiment behind
            lease = create(exp, opts.name, opts.storage, space)
            stack.callback(lease.release)
        if owns_ray and not opts.address:  # a local instance: a driver that takes over after a kill ends it
            lease.record_ray_session(session_name())
        if on_start is not None:
            on_start(dashboard_url)
        broker = start_broker(opts.name)  # keep the handle: a non-detached actor dies with its last handle
        spec = TrialSpec.from_space(space, name=opts.name, experiment=exp.uri, device=opts.device,
                                    data_dir=os.path.abspath(opts.data_dir) if opts.data_dir else None,
                                    threads=max(1, int(plan.cpus)), checkpoint_every_s=strat.checkpoint_every_s,
                                    metric=metric, required=tuple(k for k, _ in objective_keys(space, metric)))
        trainable = tune.with_resources(tune.with_parameters(ticket_trainable, spec=spec),
                                        {"cpu": plan.cpus, "gpu": plan.gpus})
        interrupted, confirm = _stages(opts, exp, trainable, metric, plan.seed, plan.max_t, plan.warm)
        stats = ray.get(broker.get_stats.remote())
    objectives = [(metric if o.metric == metric else o.metric, o.mode) for o in strat.objectives or []]
    return SearchOutcome(exp, interrupted, stats, dashboard_url, metric, warm_started=len(plan.warm),
                         confirm=confirm, objectives=objectives if strat.multi_objective else None)


def objective_keys(space: SearchSpace, metric: str) -> list[tuple[str, str]]:
    """(result key, mode) of each objective; the search's own metric is reported as ``objective``."""
    objectives = space.spec.strategy.objectives or []
    return [("objective" if o.metric == metric else o.metric, o.mode) for o in objectives] or [("objective", "max")]


def objective_label(strat, metric: str) -> str:
    """What the progress line's best value is: the metric, or the sparsest_within score."""
    if strat.sparsest_within is not None:
        return f"sparsest ticket within {strat.sparsest_within:g} of the dense network's {metric}"
    return metric


def _reporter(space: SearchSpace, metric: str, opts):
    """The live progress table of the search and of its confirmation stage."""
    from nas_lth.experiment.progress import TableReporter

    strat = space.spec.strategy
    return TableReporter(objective_label(strat, metric), space.fixed_flat(), every_s=opts.progress_every_s,
                         within=strat.sparsest_within, ladder=strat.ladders,
                         multi_objective=strat.multi_objective)


def startup_trials(num_samples: int) -> int:
    """TPE's random start for a budget of ``num_samples``: a fifth of it, within 4..10. Optuna's fixed 10 is
    half of a 20-trial search, which then learns little (issue 26: TPE + ASHA tied random search exactly)."""
    return max(4, min(10, num_samples // 5))


def tpe_sampler(strat, num_samples: int, seed: int | None):
    """Optuna's TPE sized to the budget; multivariate (grouped: conditional dimensions are modelled per group)
    unless the space says ``multivariate: false``; with a constant liar, so that trials running at once are
    not proposed the same recipe."""
    import warnings

    import optuna

    n = strat.startup_trials if strat.startup_trials is not None else startup_trials(num_samples)
    multivariate = strat.multivariate is not False
    with warnings.catch_warnings():  # multivariate, group and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n, multivariate=multivariate,
                                          group=multivariate, constant_liar=True)


def _searcher_and_scheduler(space: SearchSpace, seed: int | None, max_t: int, searcher_cls: type | None = None,
                            metric: str = "val_acc", log_path: str | None = None, num_samples: int | None = None):
    import optuna
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from nas_lth.strategy.moasha import MultiObjectiveASHA
    from nas_lth.strategy.searcher import FidelitySearch

    strat = space.spec.strategy
    keys = objective_keys(space, metric)
    # constrained MOTPE / NSGA-II read each trial's constraints, which the searcher sets (Trial.set_constraint)
    cons = strat.constraint_dicts
    if strat.searcher in ("tpe", "motpe"):  # Optuna's TPE is multi-objective (MOTPE) when the study is
        sampler = tpe_sampler(strat, num_samples or space.num_samples(), seed)
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
        if cons:
            searcher.constraints = cons
        scheduler = MultiObjectiveASHA(keys, max_t=max_t, grace_period=min(strat.grace_period, max_t),
                                       reduction_factor=strat.reduction_factor, log_path=log_path, constraints=cons) \
            if strat.scheduler == "asha" else FIFOScheduler()
        return searcher, scheduler
    searcher = cls(define_by_run(space), metric="objective", mode="max", sampler=sampler)
    if strat.scheduler == "asha" and strat.ladders:  # rungs at halvings of the weights, each decision logged
        scheduler = MultiObjectiveASHA([("objective", "max")], max_t=max_t, grace_period=min(strat.grace_period, max_t),
                                       reduction_factor=strat.reduction_factor, log_path=log_path)
    elif strat.scheduler == "asha":
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

    from nas_lth.experiment.callback import ResultsCallback
    from nas_lth.experiment.restore import add_runtime_callbacks
    from nas_lth.experiment.signing import TUNER_FILE, sign
    from nas_lth.strategy.stopper import EpochBudgetStopper, TargetStopper

    space, strat = opts.space, opts.space.spec.strategy
    rows_before = 0
    if opts.resume:
        from nas_lth.experiment.restore import restorable, restore_tuner

        if restorable(exp, opts.trust_state):
            return restore_tuner(exp.uri, trainable, exp)
        rows_before = start_over(exp, opts.space)
    log_path = None if "://" in exp.uri else os.path.join(exp.path, "moasha.jsonl")  # why trials were stopped
    searcher, scheduler = _searcher_and_scheduler(space, seed, max_t, opts.searcher_cls, metric, log_path,
                                                  opts.num_samples or space.num_samples())
    if warm:
        searcher._ot_study.add_trials(warm)  # the study exists once metric and mode are given
        for t in warm:  # and the live view starts with them too
            if hasattr(searcher, "mirror"):
                searcher.mirror(t)
    root = locate(opts.storage)
    stoppers = ([TargetStopper(strat.stop_when, metric)] if strat.stop_when else []) + \
        ([EpochBudgetStopper(strat.epoch_budget)] if strat.epoch_budget else [])
    callback = ResultsCallback(space, exp, opts.name, metric, quiet=opts.quiet, target=strat.stop_when,
                               epoch_budget=strat.epoch_budget)
    if opts.resume and rows_before:  # Tune's state was lost: its rows stand for the trials drawn again
        callback.find_orphans([])
    tuner = tune.Tuner(
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
            progress_reporter=_reporter(space, metric, opts),
            stop=CombinedStopper(*stoppers) if stoppers else None,
            verbose=1),
    )
    sign(exp, [exp.join(TUNER_FILE)])  # written just now by the Tuner: only this user's pickles are resumed
    add_runtime_callbacks(tuner, exp)
    return tuner, callback


def _stages(opts: SearchOptions, exp: Location, trainable, metric: str, seed, max_t: int, warm: list):
    """The search, then (when it is complete) the confirmation stage: (interrupted?, ConfirmOutcome)."""
    from nas_lth.experiment import journal
    from nas_lth.experiment.diskfull import is_disk_full, quiet_tune_failures
    from nas_lth.experiment.goals import budget_spent, target_met
    from nas_lth.experiment.signing import sign
    from nas_lth.strategy import searcher

    space, strat = opts.space, opts.space.spec.strategy
    # the live study for optuna-dashboard (on object stores a driver-local file, copied after each stage)
    path = journal.local_path(exp)
    searcher.JOURNAL.update(path=path, name=opts.name, metric=metric)
    keys = objective_keys(space, metric)
    try:  # the study exists before its command is printed (the dashboard refuses a missing file)
        journal.study(path, opts.name, ["maximize" if mode == "max" else "minimize" for _, mode in keys],
                      [metric if k == "objective" else k for k, _ in keys])
    except Exception as exc:  # noqa: BLE001 - a failure costs the live view, not the search
        log.warning("optuna journal %s: %s", path, exc)
    if not opts.quiet:
        print(f"live study: {journal.dashboard_command(path)}  (pip install 'nas_lth[dashboard]'; on a cluster: "
              f"ssh -L {journal.PORT}:127.0.0.1:{journal.PORT} <head node>)", flush=True)
    tuner, callback = _tuner(opts, exp, trainable, metric, seed, max_t, warm)
    callback.disk_full = False
    quiet_tune_failures()
    try:
        grid = tuner.fit()
    except Exception as exc:  # Tune's own snapshot write on a full disk ends fit() with the OSError
        if is_disk_full(exc):
            raise disk_full_error(opts, exp) from None
        raise
    finally:
        try:
            journal.upload(exp, path)
            sign(exp)  # Tune's last save comes after the last step's signature
        except OSError as exc:  # a full disk: an unsigned last snapshot is set aside on resume
            if is_disk_full(exc):
                callback.disk_full = True  # its one error line comes below
            else:
                log.warning("after the search: %s", exc)
    if callback.disk_full:
        raise disk_full_error(opts, exp)
    # After a SIGINT Tune saves its state and returns early; the trials table tells what is done.
    wanted = opts.num_samples or space.num_samples()
    if opts.resume:
        wanted = max(wanted, _restored_num_samples(tuner, wanted))
    try:  # the table, read once, says what is done
        trials = read(exp.uri).trials
    except UserError:  # no trials/ folder yet: nothing finished
        trials = pd.DataFrame()
    done = len(trials)
    target_met = bool(strat.stop_when) and target_met(trials, strat.stop_when, metric)
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


def disk_full_error(opts: SearchOptions, exp: Location) -> UserError:
    return UserError(f"--storage {opts.storage}: no space left on device; the experiment {exp.uri} is kept as it "
                     f"is: free space, then continue with --resume --name {opts.name}")


def _confirm_stage(opts: SearchOptions, exp: Location, trainable, metric: str, configs: dict):
    """The confirmation stage (``strategy.confirm``): a FIFO grid over the plan in ``<experiment>/confirm``."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from nas_lth.experiment.callback import ResultsCallback
    from nas_lth.strategy.confirm import FOLDER, run_confirm

    space, strat = opts.space, opts.space.spec.strategy
    tune_config = tune.TuneConfig(scheduler=FIFOScheduler(), num_samples=1, reuse_actors=True,
                                  max_concurrent_trials=opts.max_concurrent or strat.max_concurrent)
    run_config = tune.RunConfig(
        name=FOLDER, storage_path=exp.uri if "://" in exp.uri else exp.path,
        failure_config=tune.FailureConfig(max_failures=strat.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[ResultsCallback(space, exp, opts.name, metric, quiet=opts.quiet)],
        progress_reporter=_reporter(space, metric, opts), verbose=1)
    if not opts.quiet and strat.confirm is not None:
        print(f"\n== confirmation stage: top {strat.confirm.top} recipes x seeds {space.confirm_seeds()}", flush=True)
    return run_confirm(tune_config, run_config, exp, trainable, configs, space, metric, opts.trust_state)


def _restored_num_samples(tuner, default: int) -> int:
    try:  # the restored TuneConfig knows how many samples the first run asked for
        return int(tuner._local_tuner._tune_config.num_samples)
    except Exception:  # noqa: BLE001 - private API; fall back to the CLI/space value
        return default
