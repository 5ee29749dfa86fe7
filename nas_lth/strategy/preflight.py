"""The one preflight of a search: everything that can be checked before Ray starts, for the CLI and the Python
API alike - the options (counts, seed, name, device, data folder), the storage, the space against the
experiment it resumes, the ``--warm-start`` experiment, the resources a trial asks for, and the space against
its data: every dataset loads, every stopping and rewind point fits every budget, every channel ticket keeps
a channel in every layer. A bad input is one :class:`~nas_lth.errors.UserError` here, before anything is
started or written.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from nas_lth.errors import DataError, UserError
from nas_lth.experiment.folder import check_storage
from nas_lth.experiment.record import check_space
from nas_lth.names import valid_name
from nas_lth.space import SearchSpace
from nas_lth.space.schema import MAX_RESOURCE, MAX_SAMPLES, Resources
from nas_lth.store.fs import Location
from nas_lth.strategy.options import SearchOptions


@dataclass(frozen=True)
class Plan:
    """What the preflight found, and what the search starts from."""

    experiment: Location
    warm: list  # Optuna trials of --warm-start
    seed: int | None  # the searcher's
    cpus: float  # per trial
    gpus: float
    metric: str  # the search's objective column
    max_t: int  # the scheduler's maximum fidelity (epochs)


def preflight(opts: SearchOptions) -> Plan:
    check_options(opts)
    space, strat, res = opts.space, opts.space.spec.strategy, opts.space.spec.resources
    exp = check_storage(opts.storage, opts.name, opts.resume)
    if opts.resume:
        check_space(exp, space, opts.name)
    warm = _warm(opts)
    cpus = opts.cpus_per_trial if opts.cpus_per_trial is not None else res.cpus_per_trial
    gpus = opts.gpus_per_trial if opts.gpus_per_trial is not None else res.gpus_per_trial
    check_trial_resources(cpus, gpus)
    multilabel = check_data(space, opts.data_dir)  # always: a missing file is one error before Ray starts
    from nas_lth.strategy.trial import objective_metric

    max_t = max(1, math.ceil(max(float(b) for b in space.values_of("budget") or [space.recipe({}).budget])))
    if strat.ladders:  # the scheduler's resource is a ladder's halvings of the weights, down to the floor
        max_t = max(1, math.ceil(-math.log2(strat.min_weights)))
    thin = few_samples_for_rungs(space, opts.num_samples or space.num_samples(), max_t)
    if thin:  # not an error: a small trial search is legitimate, but it is mostly early stopping
        print(f"warning: {space.source}: {thin}", file=sys.stderr, flush=True)
    return Plan(exp, warm, strat.seed if opts.seed is None else opts.seed, cpus, gpus,
                strat.search_metric or objective_metric(multilabel), max_t)


def few_samples_for_rungs(space: SearchSpace, num_samples: int, max_t: int) -> str | None:
    """Successive halving keeps about 1/reduction_factor of the trials at each rung below the full budget: with
    fewer samples than reduction_factor ** rungs, most trials are stopped and few (or none, but for ASHA's
    early promotions) reach the budget. What to say, or None."""
    strat = space.spec.strategy
    if strat.scheduler != "asha":
        return None
    grace, eta = min(strat.grace_period, max_t), strat.reduction_factor
    rungs = sum(1 for k in range(64) if grace * eta ** k < max_t)  # decision points below the full budget
    needed = math.ceil(eta ** rungs)
    if rungs == 0 or num_samples >= needed:
        return None
    return (f"strategy.num_samples {num_samples} is small for ASHA's {rungs} rung(s) below the budget of {max_t} "
            f"epochs (grace_period {grace}, reduction_factor {eta:g}): about {num_samples / eta ** rungs:.1f} trial(s) "
            f"would reach it by merit; give at least {needed} samples, fewer rungs, or scheduler: fifo")


def check_options(opts: SearchOptions) -> None:
    """The options' own limits (the space file's limits where they mirror a key of it)."""
    for flag in ("num_samples", "max_concurrent", "num_cpus"):
        v = getattr(opts, flag)
        if v is not None and v < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    # Ray's counters overflow far below 2**64
    for flag, most in (("num_samples", MAX_SAMPLES), ("max_concurrent", MAX_RESOURCE), ("num_cpus", MAX_RESOURCE)):
        v = getattr(opts, flag)
        if v is not None and v > most:
            raise UserError(f"--{flag.replace('_', '-')} {v}: allowed 1 to {most}")
    if not isinstance(opts.storage, str) or not opts.storage.strip():
        raise UserError(f"--storage {opts.storage!r}: give a folder (e.g. runs, or . for this one) or a URI "
                        "(s3://bucket/runs)")
    if not (math.isfinite(opts.progress_every_s) and opts.progress_every_s > 0):
        raise UserError(f"--progress-every {opts.progress_every_s}: give a number of seconds > 0")
    if opts.data_dir and not Path(opts.data_dir).is_dir():
        raise UserError(f"--data-dir {opts.data_dir}: no such directory")
    if opts.seed is not None and not 0 <= opts.seed < 2**32:
        raise UserError(f"--seed {opts.seed}: allowed 0 <= seed < 2**32")
    if not isinstance(opts.name, str) or not valid_name(opts.name):
        raise UserError(f"--name {opts.name!r}: an experiment name is a folder name: letters, digits, '_', '-', "
                        "'.' (not '.' or '..')")
    if opts.device != "auto":
        from nas_lth.device import parse_device, pick_device

        if opts.address:  # the driver's machine says nothing about the cluster's devices
            parse_device(opts.device)
        else:
            pick_device(opts.device)


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


# The keys that decide whether a stopping or rewind point fits the budget: the points, the budget, and
# the batch size (iterations per epoch); val_size and the dataset change the training set itself.
BUDGET_KEYS = ("stop_at", "rewind_to", "budget", "training.batch_size")


def check_data(space: SearchSpace, data_dir: str | None) -> bool:
    """Load each dataset the space uses once on the driver, so a missing or corrupt file is one clear
    error before any trial starts (not the same failure in every trial), and check that every
    stopping and rewind point the space can ask for lies within every budget it can meet. Returns:
    multi-label?"""
    from nas_lth.data import load_dataset

    options = space.spec.fixed.get("dataset_options") or None
    multilabel = False
    for name in space.values_of("dataset") or []:
        _check_dataset_options(space, name, options)
        for val_size in _val_sizes(space):
            try:
                ds = load_dataset(name, data_dir, seed=0, val_size=val_size, options=options)
            except DataError:
                raise
            except UserError as exc:  # the split cannot be made: val_size does not fit the training set
                raise UserError(f"{space.source}: {_where(space, 'val_size')}: {exc}") from None
            multilabel |= ds.multilabel
            _check_budgets(space, name, val_size, len(ds.train))
            models = _check_models(space, ds)
            _check_channels(space, ds, models)
            _check_floor(space, models)
    return multilabel


def _check_models(space: SearchSpace, ds) -> dict:
    """Every model the space can pick builds on this data into a module with prunable layers: a model without
    one would report 100 % of its weights as a "ticket" in every trial."""
    import torch

    from nas_lth.models import build_model
    from nas_lth.models.layers import masked_layers

    built: dict = {}
    for sampled, _ in _extreme_combos(space, ("model",)):
        rc = space.recipe(sampled)
        if rc.model in built:
            continue
        where = _where(space, "model")
        try:
            model = build_model(rc.model, ds.input_shape, ds.num_classes, seed=0, options=rc.model_options,
                                meta=ds.meta)
        except UserError as exc:
            raise UserError(f"{space.source}: {where}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a user's factory: whatever it raises, one line
            last = (str(exc).strip().splitlines() or [""])[-1]
            raise UserError(f"{space.source}: {where}: model {rc.model!r} cannot be built for {ds.name} "
                            f"({type(exc).__name__}: {last})") from None
        if not isinstance(model, torch.nn.Module):
            raise UserError(f"{space.source}: {where}: model {rc.model!r} returned {type(model).__name__}, not a "
                            "torch.nn.Module")
        if not any(True for _ in masked_layers(model)):
            raise UserError(f"{space.source}: {where}: model {rc.model!r} has no prunable layer (nn.Linear, "
                            "nn.Conv1d/2d, nn.Embedding, or nas_lth's masked layers; none marked nas_lth_kind = None)")
        built[rc.model] = model
    return built


def _check_floor(space: SearchSpace, models: dict) -> None:
    """``fidelity: rounds``: some ladder the space can run reaches ``min_weights`` within its rounds (the
    largest rates and round caps it can ask for); a floor none can reach is a space that never ends a ladder
    where it says."""
    from nas_lth.models.layers import masked_layers

    strat = space.spec.strategy
    if not strat.ladders:
        return
    keys = ("model", "rounds", *(k for k in space.dims if k.startswith("prune_rate")))
    best = None
    for sampled, _ in _extreme_combos(space, keys):
        rc = space.recipe(sampled)
        sizes = {n: m.weight.numel() for n, m in masked_layers(models[rc.model])}
        kinds = {n: m.kind for n, m in masked_layers(models[rc.model])}
        rates = rc.effective_prune_rate()
        left = sum(n * (1 - rates.get(kinds[name], 0.0)) ** rc.rounds for name, n in sizes.items()) / sum(
            sizes.values())
        if best is None or left < best[0]:
            best = (left, rc.rounds, {k: v for k, v in rates.items() if k in set(kinds.values())})
    if best is not None and best[0] > strat.min_weights:
        left, rounds, rates = best
        shown = ", ".join(f"{k} {v:g}" for k, v in sorted(rates.items()))
        raise UserError(f"{space.source}: strategy.min_weights: {strat.min_weights:g} is out of reach: the largest "
                        f"rates the space allows ({shown} per round) leave {100 * left:.2f} % of the weights "
                        f"after its largest round cap ({rounds}); raise the rates or rounds, or the floor")


# The keys that decide whether a channel ticket keeps a channel in every group (layer-wise selection)
CHANNEL_KEYS = ("model", "granularity", "criterion", "scope", "rounds", "target_weights", "prune_rate.conv",
                "prune_rate.fc")


def _check_channels(space: SearchSpace, ds, models: dict) -> None:
    """``granularity: channel``: every model the space can pick (``models``: built by :func:`_check_models`) has
    channels to remove, and no layer-wise schedule it can ask for removes a layer's last channel (a global one can
    only be checked while pruning)."""
    from nas_lth.pruning.channels import channel_groups, check_rates

    if "channel" not in (space.values_of("granularity") or []):
        return  # nothing to check (and no start-up cost) for weight tickets
    groups: dict[str, list] = {}
    for sampled, context in _extreme_combos(space, CHANNEL_KEYS):
        rc = space.recipe(sampled)
        if rc.granularity != "channel":
            continue
        if rc.model not in groups:  # traced on a copy: the built model stays as it is
            groups[rc.model] = channel_groups(models[rc.model], ds.train.x[:2].cpu())
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


def _check_dataset_options(space: SearchSpace, name: str, options) -> None:
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


def check_trial_resources(cpus: float, gpus: float) -> None:
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
