"""Gradient information for SNIP, GraSP and SynFlow, computed on a throw-away copy of the model
(so BatchNorm statistics and the caller's weights are never touched).

A criterion names what it ``needs`` (``grad``, ``hess_grad``, ``synflow_grad``); a provider registered
here under that name computes it from the model, the data and the recipe. :func:`context_fn` is what
the ticket procedure calls, so a new gradient criterion touches ``pruning/`` only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from nas_lth.data.base import Dataset, epoch_permutation
from nas_lth.models.layers import masked_layers, set_masks
from nas_lth.pruning.criteria import get_criterion
from nas_lth.recipe import Recipe
from nas_lth.registry import Registry

Tensor = torch.Tensor


def _loss(model: nn.Module, x: Tensor, y: Tensor, multilabel: bool, temperature: float = 1.0) -> Tensor:
    out = model(x) / temperature
    if multilabel:
        return nn.functional.binary_cross_entropy_with_logits(out, y)
    return nn.functional.cross_entropy(out, y)


def snip_grads(model: nn.Module, batches, *, multilabel: bool = False) -> dict[str, dict[str, Tensor]]:
    """dL/dw of every prunable weight, summed over ``batches`` (an iterable of (x, y))."""
    net = copy.deepcopy(model).train()
    layers = dict(masked_layers(net))
    net.zero_grad(set_to_none=True)
    for x, y in batches:
        _loss(net, x, y, multilabel).backward()
    return {n: {"grad": m.weight.grad.detach().clone()} for n, m in layers.items()}


def class_balanced_indices(y: Tensor, per_class: int, order: Tensor) -> Tensor:
    """Indices of the first ``per_class`` examples of every class in ``order`` (a permutation), as
    GraSP's reference code fetches its sample (``GraSP_fetch_data``); classes with fewer examples give
    all they have. For multi-label targets (N, C) an example counts for every label it carries."""
    y = y.to(order.device)
    labels = y[order].bool() if y.dim() == 2 else nn.functional.one_hot(y[order], int(y.max()) + 1).bool()
    # rank of each example among the earlier examples of its class, in ``order``
    rank = labels.long().cumsum(0) - 1
    take = (labels & (rank < per_class)).any(dim=1)
    return order[take]


def grasp_hess_grads(model: nn.Module, x: Tensor, y: Tensor, *, multilabel: bool = False,
                     temperature: float = 200.0) -> dict[str, dict[str, Tensor]]:
    """Hessian-gradient product Hg of the loss w.r.t. the prunable weights (GraSP), with the logits
    divided by ``temperature`` before the loss, as both reference implementations do (Wang et al.'s
    GraSP code and Tanaka et al.'s SynFlow suite, T = 200): g = dL/dw held constant, then
    Hg = d(g^T dL/dw)/dw, on the whole sample (x, y) as one batch. (Wang et al. sum the two halves of
    their sample to save memory, which scales g and Hg by constants and leaves the ranking unchanged;
    the class-balanced sample is small, so one batch is exact.)"""
    net = copy.deepcopy(model).train()
    layers = dict(masked_layers(net))
    weights = [m.weight for m in layers.values()]
    g_const = [g.detach() for g in torch.autograd.grad(_loss(net, x, y, multilabel, temperature), weights)]
    gs = torch.autograd.grad(_loss(net, x, y, multilabel, temperature), weights, create_graph=True)
    z = sum((gc * g).sum() for gc, g in zip(g_const, gs, strict=True))
    hg = torch.autograd.grad(z, weights)
    return {n: {"hess_grad": h.detach()} for n, h in zip(layers, hg, strict=True)}


def synflow_grads(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, dict[str, Tensor]]:
    """dR/dw with R = 1^T (prod_l |W_l|) 1: every parameter made positive, an all-ones input, double
    precision to avoid overflow in deep nets; BatchNorm in eval mode so it acts as an affine map."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    layers = dict(masked_layers(net))
    device = next(net.parameters()).device
    net.zero_grad(set_to_none=True)
    if hasattr(net, "synflow_forward"):  # models that read token ids define their all-ones input
        out = net.synflow_forward(torch.float64)
    else:
        out = net(torch.ones(1, *input_shape, dtype=torch.float64, device=device))
    out.sum().backward()
    return {n: {"synflow_grad": m.weight.grad.detach().float()} for n, m in layers.items()}


Context = dict[str, dict[str, Tensor]]  # layer -> {need: tensor}
Provider = Callable[[nn.Module, Dataset, Recipe], Context]
PROVIDERS: Registry[Provider] = Registry("gradient context")


def _score_order(data: Dataset, recipe: Recipe) -> Tensor:
    # one seeded permutation for every scoring sample (independent of the training data order)
    return epoch_permutation(len(data.train), recipe.seed + 1, 0).to(data.train.x.device)


@PROVIDERS.register("grad")
def _snip(net: nn.Module, data: Dataset, recipe: Recipe) -> Context:
    """SNIP: the gradient over ``score_batches`` mini-batches of the training set."""
    perm, bs = _score_order(data, recipe), recipe.training.batch_size
    batches = ((data.train.x[idx], data.train.y[idx])
               for idx in (perm[i * bs : (i + 1) * bs] for i in range(recipe.score_batches)))
    return snip_grads(net, batches, multilabel=data.multilabel)


@PROVIDERS.register("hess_grad")
def _grasp(net: nn.Module, data: Dataset, recipe: Recipe) -> Context:
    """GraSP: Hg at temperature T on a class-balanced sample, as the reference code does."""
    idx = class_balanced_indices(data.train.y, recipe.samples_per_class, _score_order(data, recipe))
    return grasp_hess_grads(net, data.train.x[idx], data.train.y[idx], multilabel=data.multilabel,
                            temperature=recipe.grasp_temperature)


@PROVIDERS.register("synflow_grad")
def _synflow(net: nn.Module, data: Dataset, recipe: Recipe) -> Context:
    return synflow_grads(net, data.input_shape)


def context_fn(criterion: str, model: nn.Module, state: dict, data: Dataset,
               recipe: Recipe) -> Callable[[dict], Context] | None:
    """``fn(masks)``: the context ``criterion`` needs at weights ``state`` with ``masks`` applied (None
    for criteria that need none). The model is copied once; each call only swaps the masks."""
    needs = get_criterion(criterion).needs
    if not needs:
        return None
    providers = [PROVIDERS.get(n) for n in needs]
    net = copy.deepcopy(model)
    net.load_state_dict({k: v.to(next(model.parameters()).device) for k, v in state.items()})

    def fn(masks: dict) -> Context:
        set_masks(net, masks)
        out: Context = {}
        for provide in providers:
            for layer, tensors in provide(net, data, recipe).items():
                out.setdefault(layer, {}).update(tensors)
        return out

    return fn
