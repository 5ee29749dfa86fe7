"""A ticket recipe: everything that decides one ticket run (DESIGN.md "Vocabulary of a trial").

Validated with pydantic; :func:`load_recipe` turns any validation failure into a one-line
:class:`UserError` naming the file and the key.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas_lth.errors import UserError
from nas_lth.pruning.criteria import CRITERIA
from nas_lth.pruning.reinit import REINIT_VARIANTS
from nas_lth.yamlfile import read_yaml

_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:ep|epoch|epochs)\s*$")
STOP_WORDS = ("end", "early_bird")
# LTH paper: fc 20 %, conv 15 % (Conv-6; 10 % for Conv-2/4), output 10 % per round
DEFAULT_PRUNE_RATE = {"fc": 0.2, "conv": 0.15, "output": 0.1, "embedding": 0.1}


class Training(BaseModel):
    """How every training run of the recipe is done (dense net and each ticket)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1.2e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(60, ge=1)
    eval_every: int = Field(100, ge=1, description="iterations between evaluations")
    lr_milestones: list[float] = Field(default_factory=list, description="epochs at which lr *= lr_gamma")
    lr_gamma: float = Field(0.1, gt=0, le=1)


class StopAt(BaseModel):
    """When the mask is selected. Parsed from the recipe's ``stop_at``."""

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
        if value < 0:
            raise ValueError(f"stop_at iterations must be >= 0, got {value}")
        return StopAt(kind="iterations", value=value)
    if isinstance(value, str):
        v = value.strip()
        if v in STOP_WORDS:
            return StopAt(kind=v)
        if v.isdigit():
            return StopAt(kind="iterations", value=int(v))
        m = _EPOCHS.match(v)
        if m:
            return StopAt(kind="epochs", value=float(m.group(1)))
    raise ValueError(
        f"stop_at {value!r} is not an iteration count, 'Nep' epochs (e.g. '0.5ep'), 'end' or 'early_bird'"
    )


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    dataset: str
    model_options: dict = Field(default_factory=dict)
    dataset_options: dict = Field(default_factory=dict, description="e.g. {representation: tokens, max_len: 256}")
    val_size: int | None = Field(None, ge=1)
    criterion: str = "large_final"
    stop_at: int | str = "end"
    eb_eps: float = Field(0.1, gt=0, lt=1, description="early-bird: max mask distance (drawn when all <= eps)")
    eb_window: int = Field(5, ge=2, description="early-bird: masks in the FIFO, the newest compared with the rest")
    eb_every: int | None = Field(None, ge=1, description="early-bird: iterations between checks (default: one "
                                 "epoch, as in You et al. 2020)")
    rewind_to: int = Field(0, ge=0, description="iteration the kept weights are reset to; the ticket then "
                           "trains from k to the budget on the dense run's clock (late resetting)")
    reinit: str = "original"
    prune_rate: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_PRUNE_RATE),
        description="per-round rate per layer kind; kinds not given keep the default")
    target_weights: float | None = Field(
        None, gt=0, lt=1,
        description="fraction of weights to keep after all rounds; sets the per-round rate of every "
        "non-output kind to 1 - target**(1/rounds) (the output layer keeps its prune_rate)")
    rounds: int = Field(1, ge=0, le=100, description="0 = dense only, 1 = one-shot, >1 iterative")
    scope: Literal["layerwise", "global"] = "layerwise"
    budget: float = Field(1.0, gt=0, description="epochs of each training run")
    seed: int = Field(0, ge=0, lt=2**32, description="fixes init, data order, tie-breaks")
    training: Training = Field(default_factory=Training)
    score_batches: int = Field(1, ge=1, description="mini-batches for SNIP gradients")
    grasp_temperature: float = Field(200.0, gt=0, description="GraSP: logits / T before g and Hg (reference: 200)")
    samples_per_class: int = Field(10, ge=1, description="GraSP: class-balanced sample size per class "
                                   "(reference: 10)")
    synflow_iterations: int = Field(100, ge=1)
    eval_rounds: Literal["all", "last"] = "all"

    @field_validator("criterion")
    @classmethod
    def _criterion(cls, v: str) -> str:
        if v not in CRITERIA:
            raise ValueError(f"unknown criterion {v!r}; allowed: {', '.join(CRITERIA)}")
        return v

    @field_validator("reinit")
    @classmethod
    def _reinit(cls, v: str) -> str:
        if v not in REINIT_VARIANTS:
            raise ValueError(f"unknown reinit {v!r}; allowed: {', '.join(REINIT_VARIANTS)}")
        return v

    @field_validator("stop_at", mode="before")  # before pydantic turns `true` into 1
    @classmethod
    def _stop_at(cls, v):
        parse_stop_at(v)
        return v

    @field_validator("prune_rate")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        from nas_lth.models.layers import LAYER_KINDS

        for kind, rate in v.items():
            if kind not in LAYER_KINDS:
                raise ValueError(f"unknown layer kind {kind!r}; allowed: {', '.join(LAYER_KINDS)}")
            if not (isinstance(rate, int | float) and 0 <= rate < 1):
                raise ValueError(f"rate for {kind!r} is {rate!r}; allowed: 0 <= rate < 1")
        return {**DEFAULT_PRUNE_RATE, **{k: float(r) for k, r in v.items()}}

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from nas_lth.data import DATASETS

        if v not in DATASETS:
            raise ValueError(f"unknown dataset {v!r}; allowed: {', '.join(sorted(DATASETS))}")
        return v

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from nas_lth.models import MODELS

        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; allowed: {', '.join(sorted(MODELS))}")
        return v

    def effective_prune_rate(self) -> dict[str, float]:
        """Per-kind rates per round, after ``target_weights`` (if set) is turned into rates."""
        rates = dict(self.prune_rate)
        if self.target_weights is not None and self.rounds > 0:
            per_round = 1.0 - self.target_weights ** (1.0 / self.rounds)
            from nas_lth.models.layers import LAYER_KINDS

            rates.update({k: per_round for k in LAYER_KINDS if k != "output"})
        return rates

    @model_validator(mode="after")
    def _stop_within_budget(self) -> Recipe:
        stop = parse_stop_at(self.stop_at)
        if stop.kind == "epochs" and stop.value > self.budget:
            raise ValueError(f"stop_at {self.stop_at!r} is beyond the budget of {self.budget:g} epochs")
        return self

    def check_budget(self, n_train: int) -> None:
        """Stopping and rewind iterations must lie within the budget (needs the training-set size)."""
        ipe = self.iterations_per_epoch(n_train)
        budget = max(1, int(round(self.budget * ipe)))
        stop = self.stop.iteration(ipe, budget)
        if stop is not None and stop > budget:
            raise UserError(f"stop_at {self.stop_at!r} is iteration {stop}, beyond the budget of {budget} "
                            f"iterations ({self.budget:g} epochs of {ipe})")
        if self.rewind_to > budget:
            raise UserError(f"rewind_to {self.rewind_to} is beyond the budget of {budget} iterations "
                            f"({self.budget:g} epochs of {ipe})")

    def eb_check_every(self, n_train: int) -> int:
        """Iterations between Early-Bird checks (``eb_every``, else one epoch)."""
        return self.eb_every or self.iterations_per_epoch(n_train)

    @property
    def stop(self) -> StopAt:
        return parse_stop_at(self.stop_at)

    def iterations_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.training.batch_size)


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
