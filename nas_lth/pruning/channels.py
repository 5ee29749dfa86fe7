"""Channel (structured) masks: whole output channels of convolutions and whole neurons of fully-connected
layers, with every layer that reads them kept consistent.

Which slices of which layers belong to one channel comes from Torch-Pruning's dependency graph (traced once
on a copy of the model): a *group* is a set of channels that must go together - a conv's filters with its
BatchNorm and the next layer's input slices (expanded through a flatten: one channel is H*W inputs of the
next fc layer); in a residual net every layer that writes or reads the same residual stream is one group.
The output layer's classes are never removed, and embeddings are no root (their columns are features, not
channels).

A channel mask is stored as ordinary weight masks: the group's filters (rows) in every layer that writes
the channel, and the matching input slices (columns) in every layer that reads it, are zero. A removed
channel's bias and BatchNorm shift still produce a constant, but every reader's weights for it are zero, so
the masked network computes what the network without the channel computes
(:func:`nas_lth.export.compact.compact` removes them physically, and a test checks both agree).

Scores per channel (the highest are kept), from the filters of the writers, pruned inputs excluded:
the Zhou et al. criteria on filter norms (``large_final`` is Li et al. 2017's filter-norm pruning,
``channel_norm`` l1 as there or l2), ``bn_gamma`` (|gamma| of the BatchNorm on the channel: network
slimming, Liu et al. 2017, and Early-Bird tickets), and ``random``. In a residual group the scores of its
writers (their BatchNorms for ``bn_gamma``) are averaged. Rates count channels, not weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nas_lth import terms
from nas_lth.errors import UserError
from nas_lth.models.layers import masked_layers
from nas_lth.pruning.select import _top_k, keep_count

Tensor = torch.Tensor
Masks = dict[str, Tensor]
State = dict[str, Tensor]
ROOTS = (nn.Conv1d, nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Slice:
    """Positions ``index`` along ``axis`` of a layer's weight (0: the layer writes the channel, its filters or
    neurons; 1: it reads it) and the group channel each position belongs to."""

    layer: str
    axis: int
    index: Tensor
    channel: Tensor


@dataclass(frozen=True)
class ChannelGroup:
    name: str  # the root layer (for a residual stream: the first layer tracing found)
    kind: str  # the root's layer kind, whose prune rate applies
    size: int
    slices: tuple[Slice, ...]  # masked layers
    norms: tuple[Slice, ...]  # BatchNorm layers on the channels (axis 0 of their weight)

    @property
    def writers(self) -> list[Slice]:
        return [s for s in self.slices if s.axis == 0]


def _rows(t: Tensor, s: Slice) -> Tensor:
    """(positions, rest) view of the slice's positions of ``t`` (a weight or its mask)."""
    return t.index_select(s.axis, s.index.to(t.device)).movedim(s.axis, 0).flatten(1)


def traced(model: nn.Module, example: Tensor):
    """(copy of the model, its dependency graph, copy module -> name) on the CPU, in eval mode."""
    import torch_pruning as tp  # noqa: PLC0415 - only channel tickets need it

    # tracing follows autograd's graph: it must be on even when the caller is in no_grad / inference mode
    with torch.inference_mode(False), torch.enable_grad():
        net = copy.deepcopy(model).cpu().float().eval()
        graph = tp.DependencyGraph().build_dependency(net, example_inputs=example[:2].cpu().clone())
    return net, graph, {m: n for n, m in net.named_modules()}


def _roots(net: nn.Module, graph) -> list[nn.Module]:
    ignored = [m for _, m in masked_layers(net) if m.kind in ("output", "embedding")]
    groups = graph.get_all_groups(ignored_layers=ignored, root_module_types=ROOTS)
    return [g[0].dep.target.module for g in groups]


def channel_groups(model: nn.Module, example: Tensor) -> list[ChannelGroup]:
    """The model's channel groups; ``example``: a batch of real inputs (tracing runs the model once)."""
    return [g for _, g in traced_groups(*traced(model, example))]


def traced_groups(net: nn.Module, graph, names: dict) -> list[tuple[nn.Module, ChannelGroup]]:
    """(root module, group) of a traced copy (:func:`nas_lth.export.compact.compact` prunes through them)."""
    masked = {m: n for n, m in masked_layers(net)}
    out = []
    for root in _roots(net, graph):
        pruner = graph.get_pruner_of_module(root)
        size = pruner.get_out_channels(root)
        group = graph.get_pruning_group(root, pruner.prune_out_channels, idxs=list(range(size)))
        slices: dict[tuple[str, int], tuple[list, list]] = {}
        norms: dict[str, tuple[list, list]] = {}
        for item in group:
            mod, fn = item.dep.target.module, item.dep.handler.__name__
            idx, ch = [int(i) for i in item.idxs], [int(i) for i in item.root_idxs]
            if mod in masked and fn in ("prune_out_channels", "prune_in_channels"):
                slices.setdefault((masked[mod], 0 if fn == "prune_out_channels" else 1), (idx, ch))
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm) and fn == "prune_out_channels":
                norms.setdefault(names[mod], (idx, ch))
        out.append((root, ChannelGroup(
            masked[root], root.kind, size,
            tuple(Slice(n, a, torch.tensor(i), torch.tensor(c)) for (n, a), (i, c) in slices.items()),
            tuple(Slice(n, 0, torch.tensor(i), torch.tensor(c)) for n, (i, c) in norms.items()))))
    return out


def _covered(group: ChannelGroup, slices, masks: Masks) -> Tensor:
    """Bool (size,): channels for which one of ``slices`` still holds a weight."""
    used = torch.zeros(group.size, dtype=torch.bool)
    for s in slices:
        used[s.channel[_rows(masks[s.layer], s).any(1).cpu()]] = True
    return used


def alive_channels(group: ChannelGroup, masks: Masks) -> Tensor:
    """Bool (size,): channels that some writer still has a weight for."""
    return _covered(group, group.writers, masks)


def removable_channels(group: ChannelGroup, masks: Masks) -> Tensor:
    """Bool (size,): channels no layer writes *or* reads any more. A weight ticket can leave a neuron without
    inputs whose bias still reaches a reader; such a channel is not removable without changing the output."""
    return ~_covered(group, group.slices, masks)


def channel_vectors(groups: list[ChannelGroup], masks: Masks) -> Masks:
    """Group -> its alive channels as 0/1 (what Early-Bird compares for channel tickets)."""
    return {g.name: alive_channels(g, masks).float() for g in groups}


def _mean_over(group: ChannelGroup, slices, values) -> Tensor:
    """Per channel, the mean of ``values(slice)`` over the slices that cover it (one for a plain layer, every
    writer of a residual stream), so that groups with several writers compete fairly in a global ranking."""
    total = torch.zeros(group.size, dtype=torch.float64)
    count = torch.zeros(group.size, dtype=torch.float64)
    for s in slices:
        total.index_add_(0, s.channel, values(s))
        count.index_add_(0, s.channel, torch.ones(len(s.channel), dtype=torch.float64))
    return total / count.clamp(min=1)


def _norms(group: ChannelGroup, state: State, masks: Masks, norm: str) -> Tensor:
    def filter_norm(s: Slice) -> Tensor:
        w = _rows(state[f"{s.layer}.weight"] * masks[s.layer], s).double().cpu()
        return w.abs().sum(1) if norm == "l1" else w.pow(2).sum(1).sqrt()

    return _mean_over(group, group.writers, filter_norm)


def _gamma(group: ChannelGroup, state: State) -> Tensor:
    if not group.norms:
        raise UserError(f"criterion 'bn_gamma': layer {group.name!r} has no BatchNorm on its channels; "
                        "use a filter-norm criterion (large_final, ...) for this model")
    return _mean_over(group, group.norms,
                      lambda s: state[f"{s.layer}.weight"].detach().double().cpu()[s.index].abs())


# criterion -> score of a group's channels from (group, initial state, final state, masks, norm, generator)
Scorer = Callable[[ChannelGroup, State, State, Masks, str, torch.Generator | None], Tensor]
CHANNEL_CRITERIA: dict[str, Scorer] = {
    "large_final": lambda g, si, sf, m, p, gen: _norms(g, sf, m, p),
    "small_final": lambda g, si, sf, m, p, gen: -_norms(g, sf, m, p),
    "large_init": lambda g, si, sf, m, p, gen: _norms(g, si, m, p),
    "small_init": lambda g, si, sf, m, p, gen: -_norms(g, si, m, p),
    "magnitude_increase": lambda g, si, sf, m, p, gen: _norms(g, sf, m, p) - _norms(g, si, m, p),
    "movement": lambda g, si, sf, m, p, gen: _norms(g, {k: sf[k] - si[k] for k in sf if k in si}, m, p),
    "random": lambda g, si, sf, m, p, gen: torch.rand(g.size, generator=gen).double(),
    "bn_gamma": lambda g, si, sf, m, p, gen: _gamma(g, sf),
}
CHANNEL_ONLY = terms.CHANNEL_ONLY  # criteria that exist only for channels (not in the weight registry)
if tuple(CHANNEL_CRITERIA) != terms.CHANNEL_CRITERIA:  # the names are declared once, in nas_lth.terms
    raise ValueError(f"channel scorers {tuple(CHANNEL_CRITERIA)} differ from nas_lth.terms.CHANNEL_CRITERIA")


def check_rates(groups: list[ChannelGroup], rates: dict[str, float], rounds: int, key: str = "prune_rate") -> None:
    """Layer-wise selection: no group may lose its last channel within ``rounds`` rounds."""
    for g in groups:
        alive = g.size
        for r in range(1, rounds + 1):
            alive = keep_count(alive, rates[g.kind])
            if alive < 1:
                raise UserError(f"{key}: {g.kind} rate {rates[g.kind]:g} removes every channel of layer "
                                f"{g.name!r} ({g.size} channels) by round {r}; lower the rate or the rounds")


def next_channel_masks(criterion: str, groups: list[ChannelGroup], init: State, final: State, masks: Masks,
                       rates: dict[str, float], *, scope: str = "layerwise", norm: str = "l1",
                       generator: torch.Generator | None = None) -> Masks:
    """One pruning round on channels: each group (layer-wise) or each kind's groups together (global) keep
    ``1 - rate`` of their alive channels, by the criterion's channel scores; returns the expanded weight
    masks. ``rates``: kind -> rate."""
    scorer = CHANNEL_CRITERIA[criterion]
    alive = {g.name: alive_channels(g, masks) for g in groups}
    scores = {g.name: scorer(g, init, final, masks, norm, generator) for g in groups}
    pools = [[g] for g in groups] if scope == "layerwise" else \
        [[g for g in groups if g.kind == k] for k in dict.fromkeys(g.kind for g in groups)]
    keep: dict[str, Tensor] = {}
    for pool in pools:
        ids = [torch.nonzero(alive[g.name], as_tuple=True)[0] for g in pool]
        pooled = torch.cat([scores[g.name][i] for g, i in zip(pool, ids, strict=True)])
        k = keep_count(pooled.numel(), rates[pool[0].kind])
        chosen = torch.zeros(pooled.numel(), dtype=torch.bool)
        chosen[_top_k(pooled, k, generator)] = True
        for g, i in zip(pool, ids, strict=True):
            kept, chosen = chosen[: i.numel()], chosen[i.numel():]
            if i.numel() and not kept.any():
                raise UserError(f"prune_rate: {scope} selection at {g.kind} rate {rates[g.kind]:g} removes every "
                                f"channel of layer {g.name!r}; lower the rate, or use scope: layerwise")
            keep[g.name] = torch.zeros(g.size, dtype=torch.bool)
            keep[g.name][i[kept]] = True
    return expand(groups, keep, masks)


def expand(groups: list[ChannelGroup], keep: dict[str, Tensor], masks: Masks) -> Masks:
    """``masks`` with every slice of the removed channels (``keep[group]`` False) set to zero."""
    out = {n: m.clone() for n, m in masks.items()}
    for g in groups:
        dead = ~keep[g.name]
        for s in g.slices:
            pos = s.index[dead[s.channel]].to(out[s.layer].device)
            if pos.numel():
                out[s.layer].index_fill_(s.axis, pos, 0)
    return out
