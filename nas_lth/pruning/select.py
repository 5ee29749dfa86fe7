"""Turn scores into masks: layer-wise or global ranking, per-kind rates, seeded tie-breaks.

Rates compound on the surviving weights: a layer with rate p keeps round(alive * (1 - p)) of its
alive weights each round, so LeNet-300-100 at fc 0.2 / output 0.1 holds 51.3 % after 3 rounds.
"""

from __future__ import annotations

import torch

from nas_lth.errors import UserError

Tensor = torch.Tensor
SCOPES = ("layerwise", "global")


def _top_k(flat_scores: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """Indices of the k highest scores; ties are broken by a seeded random permutation so that no
    layer position is systematically favoured (e.g. all-zero scores of ``large_final_same_sign``)."""
    n = flat_scores.numel()
    if k >= n:
        return torch.arange(n, device=flat_scores.device)
    if k <= 0:
        return flat_scores.new_zeros(0, dtype=torch.long)
    perm = torch.randperm(n, generator=generator).to(flat_scores.device)
    order = torch.argsort(flat_scores[perm], descending=True, stable=True)
    return perm[order[:k]]


def keep_count(alive: int, rate: float) -> int:
    return int(round(alive * (1.0 - rate)))


def select_masks(
    scores: dict[str, Tensor],
    masks: dict[str, Tensor],
    rates: dict[str, float],
    *,
    scope: str = "layerwise",
    generator: torch.Generator | None = None,
    keep: dict[str, int] | None = None,
    kinds: dict[str, str] | None = None,
) -> dict[str, Tensor]:
    """New masks that prune ``rates[name]`` of each layer's surviving weights.

    ``scope='global'`` ranks all layers of the same kind together (``kinds``: layer -> kind; LTH's
    global pruning of conv layers, the output layer keeping its own rate). ``keep`` overrides the
    number of weights to keep per layer (layer-wise) or per kind (global); used by iterative scorers.
    """
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r}; allowed: {', '.join(SCOPES)}")
    for name, rate in rates.items():
        if not 0.0 <= rate < 1.0:
            raise UserError(f"prune rate for {name!r} is {rate}; allowed: 0 <= rate < 1")
    new: dict[str, Tensor] = {}
    if scope == "layerwise":
        groups = [[name] for name in masks]
    else:
        if kinds is None:
            raise ValueError("global scope needs the layer kinds")
        by_kind: dict[str, list[str]] = {}
        for name in masks:
            by_kind.setdefault(kinds[name], []).append(name)
        for group in by_kind.values():
            if len({rates[n] for n in group}) > 1:
                raise UserError(f"global scope: layers of kind {kinds[group[0]]!r} have different rates")
        groups = list(by_kind.values())
    for group in groups:
        alive_idx, alive_scores = [], []
        for name in group:
            m = masks[name].flatten().bool()
            idx = torch.nonzero(m, as_tuple=True)[0]
            alive_idx.append(idx)
            alive_scores.append(scores[name].flatten()[idx].to(torch.float32))
        pooled = torch.cat(alive_scores) if alive_scores else torch.zeros(0)
        n_alive = pooled.numel()
        key = group[0] if scope == "layerwise" else None
        if keep is not None and scope == "layerwise":
            k = keep[key]
        elif keep is not None:
            k = sum(keep[n] for n in group)
        else:
            k = keep_count(n_alive, rates[group[0]])
        chosen = _top_k(torch.nan_to_num(pooled, nan=float("-inf")), k, generator)
        selected = torch.zeros(n_alive, dtype=torch.bool, device=pooled.device)
        selected[chosen] = True
        offset = 0
        for name, idx in zip(group, alive_idx, strict=True):
            flat = torch.zeros(masks[name].numel(), dtype=masks[name].dtype, device=masks[name].device)
            flat[idx[selected[offset : offset + idx.numel()]]] = 1
            offset += idx.numel()
            new[name] = flat.view_as(masks[name])
    return new
