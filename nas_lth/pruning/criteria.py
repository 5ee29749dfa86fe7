"""Scoring criteria: which weights a mask keeps (the highest scores survive).

Each criterion is a small function registered by name. ``w_init`` is the weight at the start of the
training run that produced ``w_final`` (the original init for the first round, the rewound weights
after), and ``w_final`` is the weight at the stopping point. Scores of already-pruned weights do not
matter: selection only ranks surviving weights.

Zhou et al. 2019 ("Deconstructing Lottery Tickets") define the ten magnitude-style criteria;
SNIP (Lee et al. 2019), GraSP (Wang et al. 2020) and SynFlow (Tanaka et al. 2020) need gradients,
which the caller passes through ``context`` (see :mod:`nas_lth.pruning.context`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from nas_lth.registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class Criterion:
    name: str
    fn: Callable[..., Tensor]
    needs: tuple[str, ...] = ()  # context keys the score reads ("grad", "hess_grad", "synflow_grad")
    iterative: bool = False  # re-scored while pruning in small steps (SynFlow)
    doc: str = ""


CRITERIA: Registry[Criterion] = Registry("criterion")


def register(name: str, needs: tuple[str, ...] = (), iterative: bool = False):
    """Register a criterion; ``needs`` names the gradient context it reads, which
    :mod:`nas_lth.pruning.context` provides (a provider registered under each name)."""
    return CRITERIA.register(name, make=lambda fn: Criterion(name, fn, needs, iterative, (fn.__doc__ or "").strip()))


def criterion_names() -> list[str]:
    return CRITERIA.names()


def get_criterion(name: str) -> Criterion:
    return CRITERIA.get(name)


def score(criterion: str, w_init: Tensor, w_final: Tensor, **context) -> Tensor:
    """Scores for ranking the weights of one layer; the highest are kept.

    ``context`` may hold ``mask`` (current mask: rank-based criteria rank only surviving weights),
    ``generator`` (for ``random``) and the gradient tensors a criterion ``needs``.
    """
    crit = get_criterion(criterion)
    missing = [k for k in crit.needs if context.get(k) is None]
    if missing:
        raise ValueError(f"criterion {criterion!r} needs context {missing}")
    if w_init.shape != w_final.shape:
        raise ValueError(f"w_init {tuple(w_init.shape)} and w_final {tuple(w_final.shape)} differ in shape")
    return crit.fn(w_init, w_final, **context).to(torch.float32)


def _percentile_rank(x: Tensor, mask: Tensor | None) -> Tensor:
    """Rank of each entry among the surviving entries, scaled to [0, 1] (pruned entries get -1)."""
    flat = x.flatten().to(torch.float64)
    alive = torch.ones_like(flat, dtype=torch.bool) if mask is None else mask.flatten().bool()
    ranks = torch.full_like(flat, -1.0)
    vals = flat[alive]
    n = vals.numel()
    if n:
        order = torch.argsort(vals, stable=True)
        r = torch.empty_like(vals)
        r[order] = torch.arange(n, dtype=vals.dtype, device=vals.device) / max(n - 1, 1)
        ranks[alive] = r
    return ranks.view_as(x)


@register("large_final")
def large_final(w_i, w_f, **_):
    """|w_f|: the LTH criterion."""
    return w_f.abs()


@register("small_final")
def small_final(w_i, w_f, **_):
    """-|w_f|: the smallest final magnitudes are kept (a control)."""
    return -w_f.abs()


@register("large_init")
def large_init(w_i, w_f, **_):
    """|w_i|: the largest initial magnitudes are kept."""
    return w_i.abs()


@register("small_init")
def small_init(w_i, w_f, **_):
    """-|w_i|: the smallest initial magnitudes are kept."""
    return -w_i.abs()


@register("large_init_large_final")
def large_init_large_final(w_i, w_f, mask=None, **_):
    """Kept only if above the layer's percentile in both |w_i| and |w_f|.

    Scored as min(percentile rank of |w_i|, percentile rank of |w_f|): keeping the top k by this score
    keeps exactly the weights above a common percentile in both, with k set by the prune rate.
    """
    return torch.minimum(_percentile_rank(w_i.abs(), mask), _percentile_rank(w_f.abs(), mask))


@register("small_init_small_final")
def small_init_small_final(w_i, w_f, mask=None, **_):
    """Kept only if below the layer's percentile in both |w_i| and |w_f|."""
    return torch.minimum(_percentile_rank(-w_i.abs(), mask), _percentile_rank(-w_f.abs(), mask))


@register("magnitude_increase")
def magnitude_increase(w_i, w_f, **_):
    """|w_f| - |w_i|: the weights whose magnitude grew most are kept."""
    return w_f.abs() - w_i.abs()


@register("movement")
def movement(w_i, w_f, **_):
    """|w_f - w_i|: the weights that moved most in training are kept."""
    return (w_f - w_i).abs()


@register("random")
def random(w_i, w_f, generator=None, **_):
    """Uniform random scores (seeded by the recipe's seed through ``generator``)."""
    return torch.rand(w_f.shape, generator=generator, device="cpu").to(w_f.device)


@register("large_final_same_sign")
def large_final_same_sign(w_i, w_f, **_):
    """|w_f| where sign(w_f) = sign(w_i), else 0."""
    return torch.where(torch.sign(w_f) == torch.sign(w_i), w_f.abs(), torch.zeros_like(w_f))


@register("snip", needs=("grad",))
def snip(w_i, w_f, grad=None, **_):
    """SNIP connection sensitivity |g * w| at the stopping point."""
    return (grad * w_f).abs()


@register("grasp", needs=("hess_grad",))
def grasp(w_i, w_f, hess_grad=None, **_):
    """GraSP gradient-signal preservation: w * (Hg) is kept, the weights whose removal would most reduce
    gradient flow.

    The paper scores S = -w * (Hg) and *removes* the highest S (Wang et al. 2020, Alg. 1), hence this
    keep-score."""
    return w_f * hess_grad


@register("synflow", needs=("synflow_grad",), iterative=True)
def synflow(w_i, w_f, synflow_grad=None, **_):
    """SynFlow (dR/dw) * w with R = 1^T prod|W| 1, data-free; re-scored over many small steps."""
    return (synflow_grad * w_f).abs()
