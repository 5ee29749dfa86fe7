"""Gradient information for SNIP, GraSP and SynFlow, computed on a throw-away copy of the model
(so BatchNorm statistics and the caller's weights are never touched)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from nas_lth.models.layers import masked_layers

Tensor = torch.Tensor


def _loss(model: nn.Module, x: Tensor, y: Tensor, multilabel: bool) -> Tensor:
    out = model(x)
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


def grasp_hess_grads(model: nn.Module, batches, *, multilabel: bool = False) -> dict[str, dict[str, Tensor]]:
    """Hessian-gradient product Hg of the loss w.r.t. the prunable weights (GraSP)."""
    net = copy.deepcopy(model).train()
    layers = dict(masked_layers(net))
    weights = [m.weight for m in layers.values()]
    batches = list(batches)
    grads = [torch.zeros_like(w) for w in weights]
    for x, y in batches:  # g: the plain gradient, held constant
        gs = torch.autograd.grad(_loss(net, x, y, multilabel), weights)
        grads = [a + b for a, b in zip(grads, gs, strict=True)]
    hg = [torch.zeros_like(w) for w in weights]
    for x, y in batches:  # Hg = d(g^T dL/dw)/dw
        gs = torch.autograd.grad(_loss(net, x, y, multilabel), weights, create_graph=True)
        z = sum((g_const * g).sum() for g_const, g in zip(grads, gs, strict=True))
        hs = torch.autograd.grad(z, weights)
        hg = [a + b for a, b in zip(hg, hs, strict=True)]
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
