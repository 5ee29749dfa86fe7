"""Model registry: name -> builder(input_shape, num_classes, **options) -> nn.Module."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nas_lth.errors import UserError
from nas_lth.models.layers import make_prunable, masked_layers
from nas_lth.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    description: str


MODELS: Registry[ModelSpec] = Registry("model")


def register(name: str, description: str = ""):
    return MODELS.register(name, make=lambda fn: ModelSpec(
        name, fn, description or next(iter((fn.__doc__ or "").strip().splitlines()), "")))


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    seed: int = 0,
    options: dict | None = None,
    meta: dict | None = None,
) -> nn.Module:
    """Build a model with a seeded initialisation.

    The model is created on the CPU inside a forked RNG seeded with ``seed``: the same seed gives the
    same initial weights on every device and does not disturb the caller's global RNG. Builder
    parameters that the dataset knows (``vocab_size``, ``vocab``) come from its ``meta`` unless given.
    """
    builder = MODELS.get(name).builder
    kwargs = dict(options or {})
    params = inspect.signature(builder).parameters
    for key in ("vocab_size", "vocab"):
        if key in params and key not in kwargs and meta and key in meta:
            kwargs[key] = meta[key]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = builder(tuple(input_shape), num_classes, **kwargs)
        except TypeError as exc:
            raise UserError(f"model {name!r}: bad options {sorted(options or {})}: {exc}") from None
    # a model of plain PyTorch layers is pruned as it is: its layers become masked layers (kinds by rule)
    if isinstance(model, nn.Module) and not any(True for _ in masked_layers(model)):
        make_prunable(model)
    return model
