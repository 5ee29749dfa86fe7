"""The search-space file: what is fixed, what is searched, and how the search runs.

```yaml
name: digits_quick                 # default experiment name
description: one line for the report
fixed:                             # recipe keys shared by every trial (see Recipe)
  model: lenet300_100
  dataset: digits
  budget: 10
search:                            # dimensions, sampled in this order (conditions may look back)
  criterion: {choice: [large_final, snip, random]}
  stop_at:   {choice: [0, 20, end, early_bird]}
  eb_eps:    {float: [0.02, 0.2], log: true, when: {stop_at: early_bird}}
  rounds:    {int: [1, 6]}
  prune_rate.fc: {float: [0.1, 0.5]}
  model_options.hidden: {choice: [[300, 100], [100]]}   # a choice of lists: LeNet's hidden widths
strategy: {num_samples: 40, max_concurrent: 2, searcher: tpe, scheduler: asha, grace_period: 2}
resources: {cpus_per_trial: 1, gpus_per_trial: 0}
```

Every value a dimension can take is validated as part of a recipe when the file is loaded, so an
unknown criterion or a rate outside [0, 1) is reported with the file and the key, before any trial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas_lth import plugins as plugin_modules
from nas_lth.errors import UserError
from nas_lth.names import valid_name
from nas_lth.recipe import LATENCY_FORMS, MAX_EPOCHS, Recipe, format_validation_error
from nas_lth.space.sample import build_recipe, merge_sampled
from nas_lth.terms import DENSE_OF
from nas_lth.yamlfile import read_yaml

Scalar = str | int | float | bool | None
ChoiceValue = Scalar | list[Scalar]  # a list value: e.g. LeNet's hidden widths, model_options.hidden
MAX_STEPS = 10**6  # values of a stepped float dimension
MAX_SAMPLES = 10**6  # trials of one search
MIN_RESOURCE = 1e-4  # Ray counts resources in units of 0.0001: a smaller request rounds to nothing
MAX_RESOURCE = 10_000  # CPUs or GPUs of a trial, trials at once; more would wait forever on any cluster
# an experiment name is a folder name inside the storage: no separators, not "." or ".."


class Dimension(BaseModel):
    """One searched recipe key: exactly one of ``choice``, ``int``, ``float``.

    A choice of lists (``model_options.hidden: {choice: [[300, 100], [100]]}``) is *encoded*: Optuna's
    categorical distributions hold only None, bool, int, float and str, so Optuna sees each list as its JSON
    text (:meth:`encode`) and the sample is decoded back (:meth:`decode`) before a recipe is built. A choice
    of single values is handed to Optuna as it is; one choice does not mix the two, so a value is either
    encoded (a string) or decoded (a list), never both.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    choice: list[ChoiceValue] | None = Field(
        None, description="the values to choose from: strings, numbers, true/false, null; or lists of those "
        "only (e.g. hidden-layer widths [[300, 100], [100]])")
    int_: tuple[int, int] | None = Field(None, alias="int", description="an integer range [low, high], both included")
    float_: tuple[float, float] | None = Field(None, alias="float",
                                               description="a real range [low, high], both included")
    log: bool = Field(False, description="int or float: sample on a log scale (bounds > 0)")
    step: float | None = Field(None, gt=0, description="int or float: only low + n * step (int: a whole number)")
    when: dict[str, ChoiceValue | list[ChoiceValue]] | None = Field(
        None, description="sample this key only when every named key (fixed, or searched before it) has the "
        "given value, or one of a list of values; e.g. {stop_at: early_bird}")

    @field_validator("choice", mode="before")
    @classmethod
    def _choice_values(cls, v):
        # before pydantic's union errors ("choice.0.str: Input should be a valid string"): one plain line
        if v is None:
            return v
        if not isinstance(v, list | tuple):
            raise ValueError(f"{v!r}: give the values as a list, e.g. choice: [a, b]")
        for value in v:
            inner = value if isinstance(value, list | tuple) else [value]
            if not all(x is None or isinstance(x, str | int | float | bool) for x in inner):
                raise ValueError(f"{value!r} is not a choice value; a choice takes strings, numbers, true/false, "
                                 "null, or lists of those (e.g. [[32], [64]])")
        if len({isinstance(value, list | tuple) for value in v}) > 1:
            raise ValueError(f"{list(v)!r} mixes lists and single values; a choice takes single values only, or "
                             "lists only (e.g. [[32], [64]])")
        return v

    @field_validator("step")
    @classmethod
    def _step(cls, v: float | None, info) -> float | None:
        # the bounds are validated before step (field order); Optuna would take a fractional int step
        # as 0, and a tiny float step makes a grid of astronomically many points
        if v is None:
            return v
        ints, floats = info.data.get("int_"), info.data.get("float_")
        if ints is not None and v != int(v):
            raise ValueError(f"an int dimension's step must be a whole number >= 1, got {v!r}")
        if floats is not None and (floats[1] - floats[0]) / v > MAX_STEPS:
            raise ValueError(f"step {v!r} makes more than {MAX_STEPS:,} values in [{floats[0]}, {floats[1]}]; "
                             "give a larger step (or none: a continuous range)")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [k for k in ("choice", "int_", "float_") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of choice: [...], int: [lo, hi], float: [lo, hi]")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        bounds = self.int_ or self.float_
        if bounds is not None:
            lo, hi = bounds
            if lo > hi:
                raise ValueError(f"low bound {lo} is above high bound {hi}")
            if self.log and lo <= 0:
                raise ValueError("log-scaled bounds must be > 0")
        return self

    @property
    def kind(self) -> str:
        return "choice" if self.choice is not None else ("int" if self.int_ is not None else "float")

    @property
    def encoded(self) -> bool:
        """Whether Optuna sees this choice's values as JSON text (a choice of lists)."""
        return self.choice is not None and any(isinstance(c, list) for c in self.choice)

    def optuna_choices(self) -> list[Scalar]:
        """The choices as Optuna's categorical distribution and grid sampler take them."""
        return [self.encode(c) for c in self.choice or []]

    def encode(self, value: Any) -> Any:
        """A value of this dimension as Optuna holds it (JSON text for an encoded choice)."""
        return _json(value) if self.encoded else value

    def decode(self, value: Any) -> Any:
        """What Optuna sampled, back as the value of the space file (a list is a fresh copy)."""
        if self.encoded and isinstance(value, str):
            for c in self.choice:
                if _json(c) == value:
                    return json.loads(value)
        return value

    def extremes(self) -> list[Scalar]:
        """Values that must all make a valid recipe: every choice, or both bounds (and, for a float
        range, a fractional point: an integer-only key must not take a float range)."""
        if self.choice is not None:
            return list(self.choice)
        if self.int_ is not None:
            return list(self.int_)
        lo, hi = self.float_
        return [lo, hi, lo + 0.37 * (hi - lo) if hi > lo else lo + 0.37]

    def matches(self, values: dict[str, Any]) -> bool:
        """Whether the ``when`` condition holds for the values sampled (or fixed) so far (a list names the
        values allowed; for a list-valued key, the list itself is allowed too)."""
        for key, want in (self.when or {}).items():
            have = values.get(key)
            if have != want and not (isinstance(want, list) and have in want):
                return False
        return True


def _json(value: Any) -> str:
    """The JSON text a list of an encoded choice is known by in Optuna (1 and 1.0, true and 1 stay apart)."""
    return json.dumps(value)


# what an objective may name: a trial's validation metrics, its size, the training it cost and the measured
# inference latency of its ticket (milliseconds per batch, the fastest of the measured forms); each with its
# meaning (the reference, python -m nas_lth.reference, prints them)
METRICS = {
    "val_acc": "validation accuracy of the final ticket (single-label data)",
    "val_micro_f1": "validation micro-averaged F1 of the final ticket (the default for multi-label data)",
    "val_macro_f1": "validation macro-averaged F1 of the final ticket (every class counts the same)",
    "weights_remaining": "fraction of the prunable weights the final ticket keeps (1 = dense)",
    "iterations_trained": "training iterations the trial cost, every round (its share of the dense run too)",
    "mask_iter": "iteration of the previous run at which the final ticket's mask was chosen",
    "latency_ms": "measured inference latency of the ticket in milliseconds per batch of batch_size, the fastest "
                  "of the timed forms",
}
VALIDATION_METRICS = ("val_acc", "val_micro_f1", "val_macro_f1")  # what a search may maximise alone
OBJECTIVE_METRICS = tuple(METRICS)


class Objective(BaseModel):
    """One objective of a multi-objective search: a metric and whether to maximise or minimise it."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal[OBJECTIVE_METRICS] = Field(  # type: ignore[valid-type]
        description="what is optimised (see the objectives' metrics)")
    mode: Literal["max", "min"] = Field(description="maximise or minimise it")
    batch_size: int | None = Field(None, ge=1, le=65536, description="latency_ms only: the batch timed")
    forms: list[Literal[LATENCY_FORMS]] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, description="latency_ms only: the ways to run the ticket that are timed (default "
        "dense, masked, csr, compact); the objective is the fastest")
    reference: float | None = Field(
        None, allow_inf_nan=False, description="the hypervolume's reference value, in the metric's units: a ticket "
        "counts only where it beats it (default: the dense network's value minus 0.05 for a validation metric, "
        "0.5 for weights_remaining, 1.1x the largest value for the others)")

    @model_validator(mode="after")
    def _latency(self) -> Objective:
        if self.metric == "latency_ms":
            if self.batch_size is None:
                raise ValueError("latency_ms: give batch_size, the batch the latency is measured on (e.g. 1 or 256)")
            if self.mode != "min":
                raise ValueError("latency_ms: mode must be min")
        elif self.batch_size is not None or self.forms is not None:
            raise ValueError(f"{self.metric}: batch_size and forms belong to a latency_ms objective only")
        if self.forms is not None and len(set(self.forms)) != len(self.forms):
            raise ValueError(f"forms {self.forms}: each form once")
        r = self.reference
        if r is not None:
            if self.metric.startswith("val_") and not 0 <= r <= 1:
                raise ValueError(f"reference {r}: {self.metric} lies in 0..1")
            if self.metric == "weights_remaining" and not 0 < r <= 1:
                raise ValueError(f"reference {r}: weights_remaining lies in (0, 1] (1 = all the weights)")
            if not self.metric.startswith("val_") and self.metric != "weights_remaining" and r <= 0:
                raise ValueError(f"reference {r}: {self.metric} is positive")
        return self


class Constraint(BaseModel):
    """A bound a multi-objective search's tickets must meet to count: exactly one of min, max or min_vs_dense."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal[OBJECTIVE_METRICS] = Field(  # type: ignore[valid-type]
        description="the metric bounded (see the objectives' metrics)")
    min: float | None = Field(None, allow_inf_nan=False, description="the metric must be at least this")
    max: float | None = Field(None, allow_inf_nan=False, description="the metric must be at most this")
    min_vs_dense: float | None = Field(
        None, gt=-1, le=1, description="val_acc or val_micro_f1 only: at least the dense network's value plus this "
        "(-0.02: at most 2 pp below it)")

    @model_validator(mode="after")
    def _one_bound(self) -> Constraint:
        given = [k for k in ("min", "max", "min_vs_dense") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"constraint on {self.metric}: give exactly one of min, max, min_vs_dense "
                             f"(given: {', '.join(given) or 'none'})")
        if self.min_vs_dense is not None and self.metric not in DENSE_OF:
            raise ValueError(f"min_vs_dense: {self.metric} has no dense value recorded; use it with "
                             f"{' or '.join(DENSE_OF)}, or give min or max")
        return self


class StopWhen(BaseModel):
    """End the whole search once a full-budget ticket meets both conditions."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_weights_remaining: float = Field(gt=0, le=1, description="the ticket keeps at most this fraction of "
                                         "its prunable weights")
    within_dense: float = Field(0.0, ge=0, description="objective >= dense objective - this")


class Confirm(BaseModel):
    """After the search: retrain the ``top`` distinct full-budget recipes (by the validation objective)
    from scratch with fresh ``seeds`` (a count, or the seeds themselves), as trials of the same experiment."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    top: int = Field(ge=1, le=100, description="distinct recipes to re-evaluate")
    seeds: int | list[int] = Field(3, description="how many fresh seeds (1-100), or a list of them")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int):
            if not 1 <= v <= 100:
                raise ValueError(f"{v} seeds: allowed 1 to 100")
            return v
        if not v:
            raise ValueError("an empty list: give at least one seed (or a count)")
        if len(v) > 100 or len(set(v)) != len(v):
            raise ValueError("give at most 100 distinct seeds")
        bad = [s for s in v if not 0 <= s < 2**32]
        if bad:
            raise ValueError(f"seed {bad[0]} out of range: allowed 0 <= seed < 2**32")
        return v


class Strategy(BaseModel):
    """How the search runs: how many trials, which searcher and scheduler, what it optimises, when it ends."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    num_samples: int | None = Field(None, ge=1, le=MAX_SAMPLES,
                                    description="trials of the search: default 20, or the grid size for searcher: grid")
    max_concurrent: int | None = Field(None, ge=1, le=MAX_RESOURCE,
                                       description="most trials running at once (--max-concurrent overrides it; "
                                       "default: as many as the resources allow)")
    searcher: Literal["tpe", "motpe", "nsga2", "random", "grid"] = Field(
        "tpe", description="Optuna's sampler: TPE (multi-objective with objectives: MOTPE), NSGA-II, random, or "
        "every combination of the choices (grid: unconditional choice dimensions only)")
    constraints: list[Constraint] | None = Field(
        None, min_length=1, description="multi-objective search: bounds a ticket must meet to count, e.g. "
        "[{metric: val_acc, min_vs_dense: -0.02}]: the samplers learn them (constrained MOTPE / NSGA-II), ASHA ranks "
        "infeasible tickets below every feasible one, fronts and hypervolumes leave them out")
    objectives: list[Objective] | None = Field(
        None, min_length=1, max_length=3, description="multi-objective search, e.g. [{metric: val_acc, mode: max}, "
        "{metric: weights_remaining, mode: min}]; the scheduler then is multi-objective ASHA")
    seed: int = Field(0, ge=0, lt=2**32, description="seed of the searcher's sampler (a trial's training seed is the "
                     "recipe key seed)")
    startup_trials: int | None = Field(
        None, ge=1, le=MAX_SAMPLES, description="TPE: random trials before it models the results (default: a fifth "
        "of num_samples, at least 4 and at most Optuna's 10)")
    multivariate: bool | None = Field(
        None, description="TPE: model the dimensions jointly (Optuna's multivariate TPE, grouped for conditional "
        "dimensions; default: on) rather than one at a time")
    scheduler: Literal["asha", "fifo"] = Field(
        "asha", description="asha: stop poor trials early at epoch rungs; fifo: every trial runs its full budget")
    grace_period: int = Field(1, ge=1, le=MAX_EPOCHS, description="epochs before ASHA may stop a trial")
    reduction_factor: float = Field(3, gt=1, le=1000,
                                    description="ASHA: 1 / the fraction of trials promoted from one rung to the next")
    metric: Literal[VALIDATION_METRICS] | None = Field(  # type: ignore[valid-type]
        None, description="the validation metric the search maximises (default: val_acc, or val_micro_f1 for "
        "multi-label data)")
    time_budget_s: float | None = Field(None, gt=0, le=1e9, description="end the search after this many seconds")
    epoch_budget: float | None = Field(
        None, gt=0, le=1e7, description="end the search once its trials trained this many epochs in all (every "
        "iteration of every round, the shared dense run once); trials still running then are recorded as stopped")
    max_failures: int = Field(2, ge=0, le=1000, description="retries of a trial whose worker or node died")
    stop_when: StopWhen | None = Field(None, description="end the search once a full-budget ticket is small and "
                                       "good enough (below)")
    confirm: Confirm | None = Field(None, description="after the search, retrain the best recipes with fresh seeds "
                                    "(below)")
    checkpoint_every_s: float = Field(
        0.0, ge=0, le=1e6, description="least seconds between two trial checkpoints; 0 = every epoch of the "
        "measured run (tiny models finish an epoch in milliseconds: there a few seconds is wiser)")
    fidelity: Literal["epochs", "rounds"] | None = Field(
        None, description="epochs (default): a trial is one recipe, its measured run's epochs are the scheduler's "
        "resource; rounds: a trial is a pruning ladder - every round's ticket is trained, evaluated and stored "
        "in rounds/ - pruned until min_weights (or its rounds), and the scheduler compares ladders at levels of "
        "weights remaining (halvings: grace_period 2 = at 25 % of the weights)")
    min_weights: float | None = Field(
        None, gt=0, lt=1, description="fidelity: rounds: a ladder stops after the first round at or below this "
        "fraction of its prunable weights (the recipe's rounds are its cap)")
    share_rounds: bool = Field(
        True, description="fidelity: rounds: a ladder continues from the rounds another ladder of the same recipe "
        "(up to its round cap) stored in prefixes/, instead of training them again; false: every ladder trains "
        "all its rounds (a benchmark's control)")
    sparsest_within: float | None = Field(
        None, ge=0, lt=1, description="the objective: the sparsest ticket whose validation metric is within this "
        "of the dense network's (a trial scores -log10 of its weights remaining, a ladder its sparsest such "
        "round; none within: minus the shortfall of its best ticket, below every ticket within)")

    @model_validator(mode="after")
    def _ladder(self) -> Strategy:
        if self.fidelity == "rounds" and self.min_weights is None:
            raise ValueError("fidelity: rounds: give min_weights, the sparsity floor of a ladder (e.g. 0.01)")
        if self.min_weights is not None and self.fidelity != "rounds":
            raise ValueError("min_weights belongs to fidelity: rounds (a ladder's sparsity floor)")
        return self

    @model_validator(mode="after")
    def _constraints(self) -> Strategy:
        if self.constraints and not self.multi_objective:
            raise ValueError("constraints belong to a multi-objective search: give objectives (two or more) too")
        return self

    @model_validator(mode="after")
    def _sparsest(self) -> Strategy:
        if self.sparsest_within is not None and self.multi_objective:
            raise ValueError("sparsest_within is the search's single objective: give it or objectives, not both")
        return self

    @property
    def ladders(self) -> bool:
        """Trials are pruning ladders (``fidelity: rounds``)."""
        return self.fidelity == "rounds"

    @property
    def constraint_dicts(self) -> list[dict]:
        """``constraints`` as plain mappings (what the searcher, the scheduler and a trial evaluate)."""
        return [c.model_dump(exclude_none=True) for c in self.constraints or []]

    @model_validator(mode="after")
    def _objectives(self) -> Strategy:
        if self.objectives:
            names = [o.metric for o in self.objectives]
            if len(set(names)) != len(names):
                raise ValueError(f"objectives: {names}: each metric once")
            if self.metric is not None:
                raise ValueError("give either metric or objectives (the first objective is the search's metric)")
            first = self.objectives[0]
            if len(self.objectives) == 1 and not (first.metric in VALIDATION_METRICS and first.mode == "max"):
                raise ValueError(f"objectives: a single objective must be a validation metric to maximise, not "
                                 f"{first.metric} ({first.mode}); give two or more for a multi-objective search")
        return self

    @property
    def search_metric(self) -> str | None:
        """The validation metric trials report as ``objective``: ``metric``, else the first objective when it
        is one (None: the dataset's default, val_acc or val_micro_f1)."""
        first = self.objectives[0].metric if self.objectives else None
        return self.metric or (first if first in VALIDATION_METRICS else None)

    @property
    def latency(self) -> Objective | None:
        """The latency_ms objective, if the search has one."""
        return next((o for o in self.objectives or [] if o.metric == "latency_ms"), None)

    @property
    def multi_objective(self) -> bool:
        return bool(self.objectives) and len(self.objectives) > 1


class Resources(BaseModel):
    """What Ray reserves for each trial (fractions share a CPU or GPU between trials)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cpus_per_trial: float = Field(1, ge=MIN_RESOURCE, le=MAX_RESOURCE, description="CPUs reserved for a trial")
    gpus_per_trial: float = Field(0, ge=0, le=MAX_RESOURCE,
                                  description="GPUs reserved for a trial: 0, or at least 0.0001 (Ray's smallest unit)")

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpus(cls, v: float) -> float:
        if 0 < v < MIN_RESOURCE:
            raise ValueError(f"must be 0 or at least {MIN_RESOURCE:g} (Ray's smallest unit), got {v!r}")
        return v


class SpaceFile(BaseModel):
    """The keys at the top of a space file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the default experiment name: a folder name (letters, digits, '_', '-', '.')")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not valid_name(v):
            raise ValueError(f"{v!r} is not a folder name: use letters, digits, '_', '-', '.' (not '.' or '..')")
        return v
    description: str = Field("", description="one line for the report")
    plugins: list[str] = Field(
        default_factory=list, description="Python modules imported before the space is validated, on the driver "
        "and in every Ray worker (and by report, export and ticket): where your own models, datasets and "
        "criteria are registered (e.g. [my_lab.models])")
    fixed: dict[str, Any] = Field(description="recipe keys shared by every trial (see the recipe keys)")
    search: dict[str, Dimension] = Field(
        description="the searched recipe keys, each a dimension (below), sampled in file order (a condition may "
        "look back); a key is a recipe key or a dotted key into one of its mappings")
    strategy: Strategy = Field(default_factory=Strategy, description="how the search runs (below)")
    resources: Resources = Field(default_factory=Resources, description="what each trial reserves (below)")


RECIPE_KEYS = set(Recipe.model_fields)
NESTED_KEYS = {"prune_rate", "training", "model_options"}


class SearchSpace:
    """A validated space: fixed recipe keys + dimensions + strategy + resources."""

    def __init__(self, spec: SpaceFile, source: str):
        self.spec = spec
        self.source = source
        self._validate()

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "space", plugins: list[str] | tuple[str, ...] = ()) -> SearchSpace:
        """The space of a file's mapping; ``plugins`` (a command's ``--plugin``, the API's ``plugins=``) join the
        file's own list, so the experiment records them with the space."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping with keys name, fixed, search, got "
                            f"{type(data).__name__}")
        if plugins:
            listed = data.get("plugins") if isinstance(data.get("plugins"), list) else []
            data = {**data, "plugins": list(dict.fromkeys([*listed, *plugins]))}
        try:
            spec = SpaceFile.model_validate(data)
        except ValidationError as exc:
            raise UserError(format_validation_error(exc, source)) from None
        plugin_modules.load(spec.plugins, where=f"{source}: plugins")  # their names must be known to validate
        return cls(spec, source)

    def to_dict(self) -> dict:
        return self.spec.model_dump(by_alias=True, exclude_none=True)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dims(self) -> dict[str, Dimension]:
        return self.spec.search

    # -- recipes -------------------------------------------------------------------------------
    def decode(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """Sampled values as the space file gives them: Optuna's JSON text of a list-valued choice decoded
        (values that are already decoded, as in a trial's config, pass unchanged)."""
        return {k: self.dims[k].decode(v) if k in self.dims else v for k, v in sampled.items()}

    def recipe_dict(self, sampled: dict[str, Any]) -> dict:
        return merge_sampled(self.spec.fixed, self.decode(sampled))

    def recipe(self, sampled: dict[str, Any]) -> Recipe:
        return build_recipe(self.spec.fixed, self.decode(sampled), self.source)

    def fixed_flat(self) -> dict[str, Any]:
        """Fixed values by dotted key (conditions may refer to fixed keys too)."""
        out: dict[str, Any] = {}
        for k, v in self.spec.fixed.items():
            if k in NESTED_KEYS and isinstance(v, dict):
                out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            out[k] = v
        return out

    def values_of(self, key: str) -> list[Any] | None:
        """Every value ``key`` can take (None when a numeric range makes that open-ended)."""
        if key in self.dims:
            dim = self.dims[key]
            return list(dim.choice) if dim.choice is not None else None
        fixed = self.fixed_flat()
        if key in fixed:
            return [fixed[key]]
        field = Recipe.model_fields.get(key)
        return [field.get_default(call_default_factory=True)] if field is not None else None

    def search_seeds(self):
        """The seeds the search's trials can run with (a set or a range)."""
        dim = self.dims.get("seed")
        if dim is None:
            return set(self.values_of("seed") or [])
        if dim.int_ is not None:
            return range(dim.int_[0], dim.int_[1] + 1)
        return {v for v in dim.choice or [] if isinstance(v, int)}

    def confirm_seeds(self) -> list[int]:
        """The confirmation stage's seeds: the listed ones, or the first ``n`` seeds the search did not use
        (a recipe re-run with a seed of the search would only repeat its search-time result)."""
        conf, taken = self.spec.strategy.confirm, self.search_seeds()
        if conf is None:
            return []
        if isinstance(conf.seeds, list):
            reused = [s for s in conf.seeds if s in taken]
            if reused:
                raise UserError(f"{self.source}: strategy.confirm.seeds: seed {reused[0]} is one the search runs "
                                "with; confirmation needs fresh seeds")
            return list(conf.seeds)
        fresh, s = [], 0
        while len(fresh) < conf.seeds:
            if s not in taken:
                fresh.append(s)
            s += 1
        return fresh

    # -- validation ----------------------------------------------------------------------------
    def _validate(self) -> None:
        src = self.source
        if not self.dims:
            raise UserError(f"{src}: search: the search space is empty; add at least one dimension "
                            "(to run a single recipe use python -m nas_lth.ticket)")
        fixed_flat = self.fixed_flat()
        for key in self.dims:
            head, _, rest = key.partition(".")
            if head not in RECIPE_KEYS or (rest and head not in NESTED_KEYS):
                raise UserError(f"{src}: search.{key}: not a recipe key; allowed: {', '.join(sorted(RECIPE_KEYS))} "
                                "(and prune_rate.KIND, training.KEY, model_options.NAME)")
            if key in fixed_flat or (head in self.spec.fixed and not rest):
                raise UserError(f"{src}: search.{key}: also given under fixed; keep it in one place")
        seen: list[str] = []
        for key, dim in self.dims.items():
            for cond in dim.when or {}:
                if cond not in seen and cond not in fixed_flat:
                    raise UserError(f"{src}: search.{key}.when: {cond!r} is neither fixed nor a dimension "
                                    "sampled before it")
            seen.append(key)
        # First the fixed part with each dimension at its first value, then every value a dimension
        # can take (choices, bounds, a fractional point of float ranges) one at a time.
        base = {k: d.extremes()[0] for k, d in self.dims.items()}
        self._check(base, None, None)
        for key, dim in self.dims.items():
            for value in dim.extremes():
                self._check({**base, key: value}, key, value)
        self.confirm_seeds()
        if self.spec.strategy.ladders:
            self._check_ladder()
        if self.spec.strategy.searcher == "grid":
            for key, dim in self.dims.items():
                if dim.kind != "choice" or dim.when:
                    raise UserError(f"{src}: search.{key}: searcher 'grid' needs unconditional choice "
                                    "dimensions only")

    def _check_ladder(self) -> None:
        """A ladder trial evaluates every round and prunes at least once; its floor must be reachable."""
        src, fixed = self.source, self.fixed_flat()
        if "eval_rounds" in self.dims or fixed.get("eval_rounds", "all") != "all":
            raise UserError(f"{src}: fixed.eval_rounds: fidelity: rounds evaluates every round of a ladder; leave "
                            "eval_rounds out (or set it to all)")
        if "target_weights" in self.dims or fixed.get("target_weights") is not None:
            raise UserError(f"{src}: fixed.target_weights: a ladder prunes at its per-round rate down to "
                            "strategy.min_weights; give prune_rate (a dimension), not target_weights")
        rounds = self.values_of("rounds")
        if rounds is not None and min(int(r) for r in rounds) < 1:
            where = "search.rounds" if "rounds" in self.dims else "fixed.rounds"
            raise UserError(f"{src}: {where}: a ladder needs at least 1 round (its cap)")

    def _dim_for(self, loc: tuple) -> str | None:
        """The dimension a pydantic error location points into, if any."""
        parts = [str(p) for p in loc]
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in self.dims:
                return ".".join(parts[:n])
        return next((k for k in self.dims if k.split(".")[0] == parts[0]), None) if parts else None

    def _check(self, sampled: dict, key: str | None, value) -> None:
        try:
            Recipe.model_validate(self.recipe_dict(sampled))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(err.get("loc", ()))
            msg = err.get("msg", "invalid").removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = "unknown key"
            dim = self._dim_for(loc)
            if dim is None:
                where = "fixed." + ".".join(str(p) for p in loc) if loc else "fixed"
                raise UserError(f"{self.source}: {where}: {msg}") from None
            shown = sampled[dim]
            extra = "" if key in (None, dim) else f" (with search.{key} = {value!r})"
            raise UserError(f"{self.source}: search.{dim}: {msg} (value {shown!r}){extra}") from None

    def grid(self) -> dict[str, list]:
        """The dimensions as a grid (for Optuna's GridSampler): the values as Optuna holds them, i.e. a
        list-valued choice as JSON text (the define-by-run function decodes what the sampler picks)."""
        return {k: d.optuna_choices() for k, d in self.dims.items()}

    def grid_size(self) -> int:
        n = 1
        for d in self.dims.values():
            n *= len(d.choice) if d.choice is not None else 1
        return n

    def num_samples(self) -> int:
        st = self.spec.strategy
        if st.num_samples is not None:
            return st.num_samples
        return self.grid_size() if st.searcher == "grid" else 20


def load_space(path: str | Path, plugins: list[str] | tuple[str, ...] = ()) -> SearchSpace:
    """The space file at ``path``, with ``plugins`` added to its own (see :meth:`SearchSpace.from_dict`)."""
    return SearchSpace.from_dict(read_yaml(path, "search space"), str(path), plugins=plugins)
