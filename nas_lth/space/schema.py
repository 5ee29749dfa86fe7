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
strategy: {num_samples: 40, max_concurrent: 2, searcher: tpe, scheduler: asha, grace_period: 2}
resources: {cpus_per_trial: 1, gpus_per_trial: 0}
```

Every value a dimension can take is validated as part of a recipe when the file is loaded, so an
unknown criterion or a rate outside [0, 1) is reported with the file and the key, before any trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas_lth.errors import UserError
from nas_lth.names import valid_name
from nas_lth.recipe import LATENCY_FORMS, MAX_EPOCHS, Recipe, format_validation_error
from nas_lth.space.sample import build_recipe, merge_sampled
from nas_lth.yamlfile import read_yaml

Scalar = str | int | float | bool | None
MAX_STEPS = 10**6  # values of a stepped float dimension
MAX_SAMPLES = 10**6  # trials of one search
MIN_RESOURCE = 1e-4  # Ray counts resources in units of 0.0001: a smaller request rounds to nothing
MAX_RESOURCE = 10_000  # CPUs or GPUs of a trial, trials at once; more would wait forever on any cluster
# an experiment name is a folder name inside the storage: no separators, not "." or ".."


class Dimension(BaseModel):
    """One searched recipe key: exactly one of ``choice``, ``int``, ``float``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    choice: list[Scalar] | None = None
    int_: tuple[int, int] | None = Field(None, alias="int")
    float_: tuple[float, float] | None = Field(None, alias="float")
    log: bool = False
    step: float | None = Field(None, gt=0)
    when: dict[str, Scalar | list[Scalar]] | None = None

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
        """Whether the ``when`` condition holds for the values sampled (or fixed) so far."""
        for key, want in (self.when or {}).items():
            allowed = want if isinstance(want, list) else [want]
            if values.get(key) not in allowed:
                return False
        return True


# what an objective may name: a trial's validation metrics, its size, the training it cost and the measured
# inference latency of its ticket (milliseconds per batch, the fastest of the measured forms)
VALIDATION_METRICS = ("val_acc", "val_micro_f1", "val_macro_f1")  # what a search may maximise alone
OBJECTIVE_METRICS = (*VALIDATION_METRICS, "weights_remaining", "iterations_trained",
                     "mask_iter", "latency_ms")


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Literal[OBJECTIVE_METRICS]  # type: ignore[valid-type]
    mode: Literal["max", "min"]
    batch_size: int | None = Field(None, ge=1, le=65536, description="latency_ms only: the batch timed")
    forms: list[Literal[LATENCY_FORMS]] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, description="latency_ms only: the ways to run the ticket that are timed (default "
        "dense, masked, csr, compact); the objective is the fastest")

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
        return self


class StopWhen(BaseModel):
    """End the whole search once a full-budget ticket meets both conditions."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_weights_remaining: float = Field(gt=0, le=1)
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
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    num_samples: int | None = Field(None, ge=1, le=MAX_SAMPLES,
                                    description="default 20, or the grid size for searcher: grid")
    max_concurrent: int | None = Field(None, ge=1, le=MAX_RESOURCE)
    searcher: Literal["tpe", "motpe", "nsga2", "random", "grid"] = "tpe"
    objectives: list[Objective] | None = Field(
        None, min_length=1, max_length=3, description="multi-objective search, e.g. [{metric: val_acc, mode: max}, "
        "{metric: weights_remaining, mode: min}]; the scheduler then is multi-objective ASHA")
    seed: int = Field(0, ge=0, lt=2**32)
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, ge=1, le=MAX_EPOCHS, description="epochs before ASHA may stop a trial")
    reduction_factor: float = Field(3, gt=1, le=1000)
    metric: Literal[VALIDATION_METRICS] | None = Field(  # type: ignore[valid-type]
        None, description="default: val_acc, or val_micro_f1 for multi-label data")
    time_budget_s: float | None = Field(None, gt=0, le=1e9)
    epoch_budget: float | None = Field(
        None, gt=0, le=1e7, description="end the search once its trials trained this many epochs in all (every "
        "iteration of every round, the shared dense run once); trials still running then are recorded as stopped")
    max_failures: int = Field(2, ge=0, le=1000, description="retries of a trial whose worker or node died")
    stop_when: StopWhen | None = None
    confirm: Confirm | None = None
    checkpoint_every_s: float = Field(
        0.0, ge=0, le=1e6, description="least seconds between two trial checkpoints; 0 = every epoch of the "
        "measured run (tiny models finish an epoch in milliseconds: there a few seconds is wiser)")

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
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cpus_per_trial: float = Field(1, ge=MIN_RESOURCE, le=MAX_RESOURCE)
    gpus_per_trial: float = Field(0, ge=0, le=MAX_RESOURCE)

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpus(cls, v: float) -> float:
        if 0 < v < MIN_RESOURCE:
            raise ValueError(f"must be 0 or at least {MIN_RESOURCE:g} (Ray's smallest unit), got {v!r}")
        return v


class SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not valid_name(v):
            raise ValueError(f"{v!r} is not a folder name: use letters, digits, '_', '-', '.' (not '.' or '..')")
        return v
    description: str = ""
    fixed: dict[str, Any]
    search: dict[str, Dimension]
    strategy: Strategy = Field(default_factory=Strategy)
    resources: Resources = Field(default_factory=Resources)


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
    def from_dict(cls, data: Any, source: str = "space") -> SearchSpace:
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping with keys name, fixed, search, got "
                            f"{type(data).__name__}")
        try:
            spec = SpaceFile.model_validate(data)
        except ValidationError as exc:
            raise UserError(format_validation_error(exc, source)) from None
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
    def recipe_dict(self, sampled: dict[str, Any]) -> dict:
        return merge_sampled(self.spec.fixed, sampled)

    def recipe(self, sampled: dict[str, Any]) -> Recipe:
        return build_recipe(self.spec.fixed, sampled, self.source)

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
                raise UserError(f"{src}: search.{key}: not a recipe key; allowed: "
                                f"{', '.join(sorted(RECIPE_KEYS))} (and prune_rate.KIND, training.KEY)")
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
        if self.spec.strategy.searcher == "grid":
            for key, dim in self.dims.items():
                if dim.kind != "choice" or dim.when:
                    raise UserError(f"{src}: search.{key}: searcher 'grid' needs unconditional choice "
                                    "dimensions only")

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
        """The dimensions as a grid (for Optuna's GridSampler)."""
        return {k: list(d.choice) for k, d in self.dims.items()}

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


def load_space(path: str | Path) -> SearchSpace:
    return SearchSpace.from_dict(read_yaml(path, "search space"), str(path))
