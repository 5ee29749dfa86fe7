"""The one vocabulary: a ticket recipe and, beside every field, its role (docs/design.md, "The recipe").

Every field declares two roles where it is defined, and the rest of the code derives from them:

- **dense**: round 0 (training the dense network) depends on it, so it is part of the shared
  trajectory's key (:func:`dense_key_fields`); a field that changes dense training and is not marked
  dense would make trials share a wrong trajectory.
- **column**: how it is stored in the trials table (:func:`recorded_columns`): a scalar type, ``json``
  for mappings, ``rates`` for the per-kind prune rates (one column per :data:`LAYER_KINDS`), or
  ``nested`` for the training settings (one ``training_<key>`` column each). ``applies`` names when a
  value acts (Early-Bird keys only with ``stop_at: early_bird``, GraSP keys only with GraSP); where it
  does not, the column is null.

This module imports neither torch nor the substrate: names (criteria, models, datasets, reinit
variants) are checked against their registries when a recipe is validated, so the space stays plain
data and the store stays free of torch.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from nas_lth.errors import UserError
from nas_lth.registry import known_names
from nas_lth.roles import cell as _cell
from nas_lth.roles import role, roles_of
from nas_lth.terms import CHANNEL_CRITERIA, CHANNEL_ONLY, LAYER_KINDS
from nas_lth.yamlfile import read_yaml

# the ways a ticket can be executed when its latency is measured (nas_lth.export.latency)
LATENCY_FORMS = ("dense", "masked", "csr", "csr_fc", "compact")
# LTH paper: fc 20 %, conv 15 % (Conv-6; 10 % for Conv-2/4), output 10 % per round
DEFAULT_PRUNE_RATE = {"fc": 0.2, "conv": 0.15, "output": 0.1, "embedding": 0.1}
STOP_WORDS = ("end", "early_bird")
# how rewind_to is applied, recorded with every result: the ticket continues the dense run's clock from k
REWIND_MODE = "continue"
# Upper bounds of the numeric keys: far beyond any real run, small enough that a value past them is a typo
# (2**64, 1e308) caught when the file is loaded, not a trial that hangs counting to it or overflows.
MAX_EPOCHS = 100_000
MAX_ITERATIONS = 10**9
MAX_EXAMPLES = 10**8  # batch sizes, validation-set sizes, samples per class
MAX_LR = 1e6  # far above any sane rate, still a float that SGD can diverge with (a result, not a crash)
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:ep|epoch|epochs)\s*$")


class Training(BaseModel):
    """How every training run of the recipe is done (dense net and each ticket): all of it is dense."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    optimizer: Literal["adam", "sgd"] = role("adam", dense=True, column="string",
                                             description="Adam, or SGD (with momentum)")
    lr: float = role(1.2e-3, dense=True, column="float64", gt=0, le=MAX_LR, description="learning rate")
    momentum: float = role(0.0, dense=True, column="float64", ge=0, lt=1, description="SGD only: momentum")
    weight_decay: float = role(0.0, dense=True, column="float64", ge=0, le=1,
                               description="L2 penalty the optimizer adds (either optimizer)")
    batch_size: int = role(60, dense=True, column="int64", ge=1, le=MAX_EXAMPLES,
                           description="training examples per iteration")
    eval_every: int = role(100, dense=True, column="int64", ge=1, le=MAX_ITERATIONS,
                           description="iterations between evaluations")
    lr_milestones: list[Annotated[float, Field(ge=0, le=MAX_EPOCHS)]] = role(
        default_factory=list, dense=True, column="json", description="epochs at which lr *= lr_gamma")
    lr_gamma: float = role(0.1, dense=True, column="float64", gt=0, le=1,
                           description="factor applied to the learning rate at each of lr_milestones")
    bn_l1: float = role(0.0, dense=True, column="float64", ge=0, le=1,
                        description="L1 penalty on BatchNorm scales, lambda * sign(gamma) added to their gradients "
                        "(network slimming and Early-Bird tickets: 1e-4)")
    precision: Literal["fp32", "bf16"] = role(
        "fp32", dense=True, column="string",
        description="bf16: forward passes under torch.autocast to bfloat16 (for GPUs with bf16 units; weights, "
                    "optimizer and masks stay float32)")


class StopAt(BaseModel):
    """When the mask is selected. Parsed once from the recipe's ``stop_at``."""

    kind: Literal["iterations", "epochs", "end", "early_bird"]
    value: float = 0.0

    def iteration(self, iters_per_epoch: int, budget_iters: int) -> int | None:
        """The stopping iteration, or None for ``early_bird`` (decided while training)."""
        if self.kind == "iterations":
            return int(self.value)
        if self.kind == "epochs":
            return int(round(self.value * iters_per_epoch))
        if self.kind == "end":
            return budget_iters
        return None

    def label(self) -> str:
        if self.kind == "iterations":
            return str(int(self.value))
        if self.kind == "epochs":
            return f"{self.value:g}ep"
        return self.kind


def parse_stop_at(value) -> StopAt:
    if isinstance(value, StopAt):
        return value
    if isinstance(value, bool):
        raise ValueError("stop_at must be an iteration count, 'Nep' epochs, 'end' or 'early_bird'")
    if isinstance(value, int):
        return _iterations(value)
    if isinstance(value, str):
        v = value.strip()
        if v in STOP_WORDS:
            return StopAt(kind=v)
        if v.isdigit():
            return _iterations(int(v))
        m = _EPOCHS.match(v)
        if m:
            return StopAt(kind="epochs", value=float(m.group(1)))
    raise ValueError(
        f"stop_at {value!r} is not an iteration count, 'Nep' epochs (e.g. '0.5ep'), 'end' or 'early_bird'"
    )


def _iterations(n: int) -> StopAt:
    if not 0 <= n <= MAX_ITERATIONS:
        raise ValueError(f"stop_at iterations must be in [0, {MAX_ITERATIONS}], got {n}")
    return StopAt(kind="iterations", value=n)


def _known(name: str, registry, kind: str) -> str:
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; allowed: {', '.join(registry)}")
    return name


EARLY_BIRD, GRASP, CHANNEL = "early_bird", "grasp", "channel"  # the `applies` conditions
# named fields and the registry that knows their names (imported when a recipe is validated)
class Recipe(BaseModel):
    """One lottery-ticket experiment: the network and data, how the dense net trains, and how its tickets are
    found (criterion, stopping point, rounds, rates, rewind, reinit). A search space fixes some of its keys and
    searches others; ``python -m nas_lth.ticket`` runs one."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = role(dense=True, column="string", description="the network: a registered model (see the models)")
    dataset: str = role(dense=True, column="string", description="the data: a registered dataset (see the datasets)")
    model_options: dict = role(default_factory=dict, dense=True, column="json",
                               description="options of the model, e.g. {hidden: [300, 100]} (see the models)")
    dataset_options: dict = role(default_factory=dict, dense=True, column="json",
                                 description="options of the dataset, e.g. {representation: tokens, max_len: 256} "
                                 "(see the datasets)")
    val_size: int | None = role(None, dense=True, column="int64", ge=1, le=MAX_EXAMPLES,
                                description="training examples held out for validation (default: the dataset's)")
    criterion: str = role("large_final", column="string",
                          description="what a mask keeps: the highest-scoring weights, or channels (see the criteria)")
    stop_at: int | str = role("end", column="string",
                              description="when the mask is chosen: an iteration count, epochs as 'Nep' (e.g. "
                              "'0.5ep'), end (the end of training) or early_bird (once the masks settle)")
    eb_eps: float = role(0.1, column="float64", applies=EARLY_BIRD, gt=0, lt=1,
                         description="early-bird: max mask distance (drawn when all <= eps)")
    eb_window: int = role(5, column="int64", applies=EARLY_BIRD, ge=2, le=1000,
                          description="early-bird: masks in the FIFO, the newest compared with the rest")
    eb_every: int | None = role(None, column="int64", applies=EARLY_BIRD, ge=1, le=MAX_ITERATIONS,
                                description="early-bird: iterations between checks (default: one epoch, as in "
                                "You et al. 2020)")
    rewind_to: int = role(0, column="int64", ge=0, le=MAX_ITERATIONS,
                          description="iteration the kept weights are reset to; the ticket then trains from k to "
                          "the budget on the dense run's clock (late resetting)")
    reinit: str = role("original", column="string",
                       description="what the kept weights of the evaluated ticket start from (see the reinit variants)")
    prune_rate: dict[str, float] = role(
        default_factory=lambda: dict(DEFAULT_PRUNE_RATE), column="rates",
        description="per-round rate (0 <= rate < 1) per layer kind; kinds not given keep the default")
    target_weights: float | None = role(
        None, column="float64", gt=0, lt=1,
        description="fraction of weights to keep after all rounds; sets the per-round rate of every "
        "non-output kind to 1 - target**(1/rounds) (the output layer keeps its prune_rate)")
    # a ladder's rounds 1..r do not depend on its cap: ladders that differ only there share their round prefixes
    rounds: int = role(1, ladder=False, column="int64", ge=0, le=100,
                       description="0 = dense only, 1 = one-shot, >1 iterative")
    scope: Literal["layerwise", "global"] = role(
        "layerwise", column="string",
        description="layerwise: each layer loses its kind's rate; global: the layers of one kind are ranked together")
    granularity: Literal["weight", "channel"] = role(
        "weight", column="string",
        description="what a mask removes: single weights, or whole channels and neurons (rates and "
        "target_weights then count channels; nas_lth.pruning.channels)")
    channel_norm: Literal["l1", "l2"] = role("l1", column="string", applies=CHANNEL,
                                             description="filter norm the channel criteria score (Li et al. 2017: l1)")
    budget: float = role(1.0, dense=True, column="float64", gt=0, le=MAX_EPOCHS,
                         description="epochs of each training run")
    seed: int = role(0, dense=True, column="int64", ge=0, lt=2**32, description="fixes init, data order, tie-breaks")
    training: Training = role(default_factory=Training, dense=True, column="nested",
                              description="how every training run is done (see the training keys)")
    score_batches: int = role(1, column="int64", ge=1, le=10_000, description="mini-batches for SNIP gradients")
    grasp_temperature: float = role(200.0, column="float64", applies=GRASP, gt=0, le=1e6,
                                    description="GraSP: logits / T before g and Hg (reference: 200)")
    samples_per_class: int = role(10, column="int64", applies=GRASP, ge=1, le=MAX_EXAMPLES,
                                  description="GraSP: class-balanced sample size per class (reference: 10)")
    synflow_iterations: int = role(100, column="int64", ge=1, le=10_000,
                                   description="SynFlow: small pruning steps, each re-scored, per round")
    eval_rounds: Literal["all", "last"] = role(
        "all", column="string",
        description="all: every round's ticket trains the full budget and is evaluated; last: only the last "
        "round's (earlier rounds train only to the stopping point)")

    _stop: StopAt = PrivateAttr()

    @field_validator("criterion", "reinit", "dataset", "model")
    @classmethod
    def _known_name(cls, v: str, info) -> str:
        names = known_names(info.field_name)
        if info.field_name == "criterion":  # criteria that only score channels (granularity: channel)
            names += list(CHANNEL_ONLY)
        return _known(v, names, info.field_name)

    @field_validator("stop_at", mode="before")  # before pydantic turns `true` into 1
    @classmethod
    def _stop_at(cls, v):
        parse_stop_at(v)
        return v

    @field_validator("prune_rate")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        for kind, rate in v.items():
            if kind not in LAYER_KINDS:
                raise ValueError(f"unknown layer kind {kind!r}; allowed: {', '.join(LAYER_KINDS)}")
            if not (isinstance(rate, int | float) and 0 <= rate < 1):
                raise ValueError(f"rate for {kind!r} is {rate!r}; allowed: 0 <= rate < 1")
        return {**DEFAULT_PRUNE_RATE, **{k: float(r) for k, r in v.items()}}

    @model_validator(mode="after")
    def _stop_within_budget(self) -> Recipe:
        self._stop = stop = parse_stop_at(self.stop_at)
        if stop.kind == "epochs" and stop.value > self.budget:
            raise ValueError(f"stop_at {self.stop_at!r} is beyond the budget of {self.budget:g} epochs")
        return self

    @model_validator(mode="after")
    def _criterion_has_granularity(self) -> Recipe:
        if self.granularity == "channel" and self.criterion not in CHANNEL_CRITERIA:
            raise ValueError(f"criterion {self.criterion!r} has no channel form; with granularity: channel "
                             f"allowed: {', '.join(CHANNEL_CRITERIA)}")
        if self.granularity == "weight" and self.criterion in CHANNEL_ONLY:
            raise ValueError(f"criterion {self.criterion!r} scores channels; it needs granularity: channel")
        return self

    @property
    def stop(self) -> StopAt:
        return self._stop

    def effective_prune_rate(self) -> dict[str, float]:
        """Per-kind rates per round, after ``target_weights`` (if set) is turned into rates."""
        rates = dict(self.prune_rate)
        if self.target_weights is not None and self.rounds > 0:
            per_round = 1.0 - self.target_weights ** (1.0 / self.rounds)
            rates.update({k: per_round for k in LAYER_KINDS if k != "output"})
        return rates

    def budget_problem(self, n_train: int) -> tuple[str, str] | None:
        """(key, why) when the stopping or the rewind iteration lies beyond the budget, else None
        (needs the training-set size)."""
        ipe = self.iterations_per_epoch(n_train)
        budget = max(1, int(round(self.budget * ipe)))
        stop = self.stop.iteration(ipe, budget)
        of = f"the budget of {budget} iterations ({self.budget:g} epochs of {ipe})"
        if stop is not None and stop > budget:
            return "stop_at", f"stop_at {self.stop_at!r} is iteration {stop}, beyond {of}"
        if self.rewind_to > budget:
            return "rewind_to", f"rewind_to {self.rewind_to} is beyond {of}"
        return None

    def check_budget(self, n_train: int) -> None:
        """Stopping and rewind iterations must lie within the budget."""
        problem = self.budget_problem(n_train)
        if problem is not None:
            raise UserError(problem[1])

    def eb_check_every(self, n_train: int) -> int:
        """Iterations between Early-Bird checks (``eb_every``, else one epoch)."""
        return self.eb_every or self.iterations_per_epoch(n_train)

    def iterations_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.training.batch_size)

    def applies(self, condition: str | None) -> bool:
        """Whether fields with this ``applies`` condition act in this recipe."""
        if condition is None:
            return True
        if condition == EARLY_BIRD:
            return self.stop.kind == "early_bird"
        if condition == GRASP:
            return self.criterion == "grasp"
        if condition == CHANNEL:
            return self.granularity == "channel"
        raise ValueError(f"unknown applies condition {condition!r}")  # a bug in this file

    def columns(self, layer_kinds: set[str] | None = None) -> dict[str, Any]:
        """The recipe as trials-table columns: null where a value does not act (see ``applies``), and
        for prune rates of layer kinds the model does not have (``layer_kinds``; None = keep all)."""
        out: dict[str, Any] = {}
        rates = self.effective_prune_rate()
        for name, r in roles_of(Recipe).items():
            value = getattr(self, name) if self.applies(r["applies"]) else None
            if r["column"] == "rates":
                out.update({f"prune_rate_{k}": rates.get(k) if layer_kinds is None or k in layer_kinds else None
                            for k in LAYER_KINDS})
            elif r["column"] == "nested":
                out.update({f"{name}_{k}": _cell(getattr(value, k), rr["column"])
                            for k, rr in roles_of(type(value)).items()})
            else:
                out[name] = _cell(value, r["column"])
        out["stop_at"] = self.stop.label()
        return out


def dense_key_fields() -> list[str]:
    return [n for n, r in roles_of(Recipe).items() if r["dense"]]


def ladder_key_fields() -> list[str]:
    """The fields a pruning ladder's rounds 1..r depend on (all but those that only decide where it ends)."""
    return [n for n, r in roles_of(Recipe).items() if r["ladder"]]


def recorded_columns() -> list[tuple[str, str]]:
    """(column name, column type) of every recipe field in the trials table, in field order."""
    cols: list[tuple[str, str]] = []
    for name, r in roles_of(Recipe).items():
        if r["column"] == "rates":
            cols += [(f"prune_rate_{k}", "float64") for k in LAYER_KINDS]
        elif r["column"] == "nested":
            cols += [(f"{name}_{k}", rr["column"]) for k, rr in roles_of(Training).items()]
        else:
            cols.append((name, r["column"]))
    return cols


def format_validation_error(exc: ValidationError, source: str) -> str:
    """First pydantic error as '<source>: key.path: message'."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    msg = err.get("msg", "invalid value")
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    return f"{source}: {loc}: {msg}"


def recipe_from_dict(data: dict, source: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of recipe keys, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, source)) from None


def load_recipe(path: str | Path) -> Recipe:
    return recipe_from_dict(read_yaml(path, "recipe"), str(path))
