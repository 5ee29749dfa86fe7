"""Gradient information for SNIP, GraSP and SynFlow, computed on a throw-away copy of the model
(so BatchNorm statistics and the caller's weights are never touched)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from nas_lth.models.layers import masked_layers

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
