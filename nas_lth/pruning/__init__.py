"""Pruning: criteria, mask selection, reinit variants, mask distance.

The one call the ticket procedure needs is :func:`next_masks`; :func:`score` is the public,
per-layer scoring function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nas_lth.errors import UserError
from nas_lth.pruning.criteria import CRITERIA, criterion_names, get_criterion, score
from nas_lth.pruning.early_bird import EarlyBird
from nas_lth.pruning.masks import count, density, digest, distance, pack, per_layer_density, unpack
from nas_lth.pruning.reinit import REINIT_VARIANTS, reset_state
from nas_lth.pruning.select import SCOPES, keep_count, select_masks

Tensor = torch.Tensor
Masks = dict[str, Tensor]
ContextFn = Callable[[Masks], dict[str, dict[str, Tensor]]]

__all__ = [
    "CRITERIA", "REINIT_VARIANTS", "SCOPES", "EarlyBird", "count", "criterion_names", "density",
    "digest", "distance", "get_criterion", "keep_count", "layer_rates", "next_masks", "pack",
    "per_layer_density",
    "reset_state", "score", "select_masks", "unpack",
]


def layer_rates(kinds: dict[str, str], prune_rate: dict[str, float]) -> dict[str, float]:
    """Per-layer prune rate from the per-kind rates (fc, conv, output, embedding)."""
    missing = sorted({k for k in kinds.values() if k not in prune_rate})
    if missing:
        raise UserError(f"prune_rate has no rate for layer kind(s) {missing}; given: {sorted(prune_rate)}")
    return {name: float(prune_rate[kind]) for name, kind in kinds.items()}


def next_masks(
    criterion: str,
    w_init: dict[str, Tensor],
    w_final: dict[str, Tensor],
    masks: Masks,
    rates: dict[str, float],
    *,
    scope: str = "layerwise",
    generator: torch.Generator | None = None,
    context_fn: ContextFn | None = None,
    iterations: int = 100,
    kinds: dict[str, str] | None = None,
) -> Masks:
    """One pruning round: score the surviving weights and drop ``rates`` of them per layer/group.

    ``kinds`` (layer -> kind) is needed for ``scope='global'``, which ranks each kind's layers
    together. ``context_fn(masks)`` supplies the gradients gradient-based criteria need, evaluated with the
    given masks applied. Iterative criteria (SynFlow) prune in ``iterations`` exponentially spaced
    steps, re-scoring after each, as in Tanaka et al. 2020.
    """
    crit = get_criterion(criterion)
    if crit.needs and context_fn is None:
        raise ValueError(f"criterion {criterion!r} needs a context function (gradients)")

    def scores_for(current: Masks) -> dict[str, Tensor]:
        ctx = context_fn(current) if crit.needs else {}
        w_f = {n: w_final[n] * current[n] for n in current}
        return {
            n: score(criterion, w_init[n], w_f[n], mask=current[n], generator=generator, **ctx.get(n, {}))
            for n in current
        }

    if not crit.iterative:
        return select_masks(scores_for(masks), masks, rates, scope=scope, generator=generator, kinds=kinds)

    alive = {n: int(m.count_nonzero()) for n, m in masks.items()}
    current = masks
    for step in range(1, iterations + 1):
        # keep (1 - rate)^(step / iterations) of the weights alive at the start of this round
        keep = {n: int(round(alive[n] * (1.0 - rates[n]) ** (step / iterations))) for n in masks}
        current = select_masks(scores_for(current), current, rates, scope=scope, generator=generator,
                               keep=keep, kinds=kinds)
    return current
