"""Physically smaller tickets: a copy of a ticket without the channels it removed.

Every channel that no layer writes or reads any more (as channel tickets leave them) is cut out of every layer
of its group - filters, BatchNorm entries, the readers' input slices - by Torch-Pruning's
dependency graph, the same one that defined the groups (:mod:`nas_lth.pruning.channels`). The masked layers
become their plain torch parents (``nn.Conv2d``, ``nn.Linear``, ...), so the result is a dense network whose
outputs equal the masked ticket's up to float summation order (tests check every model family). Weights
pruned one by one inside the kept channels stay in place as zeros.

:func:`save_program` writes it as a ``torch.export`` program: ``torch.export.load(path).module()`` runs it
with nothing but torch installed, batch size free.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from nas_lth.models.layers import MaskedMixin, masked_layers
from nas_lth.models.layout import set_memory_format
from nas_lth.pruning.channels import removable_channels, traced, traced_groups


def _plain(module: MaskedMixin) -> nn.Module:
    """The layer as its torch parent class, same parameters, no mask buffer."""
    parent = next(c for c in type(module).__mro__ if c.__module__.startswith("torch.nn"))
    module.__class__ = parent  # the parameters are the parent's already; only the mask buffer is ours
    del module._buffers["mask"]
    del module.kind
    return module


def compact(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A plain, smaller copy of ``model`` (CPU, eval mode); ``example``: a batch of real inputs."""
    net, graph, names = traced(model, example)
    masks = {n: m.mask for n, m in masked_layers(net)}
    dead = [(root, removable_channels(g, masks).nonzero().flatten().tolist())
            for root, g in traced_groups(net, graph, names)]
    for root, idxs in dead:  # each group's channels index its own axes, which other groups never cut
        if idxs:
            pruner = graph.get_pruner_of_module(root)
            graph.get_pruning_group(root, pruner.prune_out_channels, idxs=idxs).prune()
    for _, m in list(masked_layers(net)):
        _plain(m)
    set_memory_format(net, "auto")  # pruning made NCHW copies; convolutions run fastest channels-last
    return net


def save_program(module: nn.Module, example: torch.Tensor, path) -> None:
    """``module`` as a ``torch.export`` program with a free batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    prog = torch.export.export(module, (example[:2].cpu(),), dynamic_shapes=({0: batch},))
    with warnings.catch_warnings():  # torch's archive writer notes NHWC (channels-last) weights; they load fine
        warnings.filterwarnings("ignore", message="No complete tensor found in the group")
        torch.export.save(prog, path)


def load_program(path) -> nn.Module:
    """A saved program as a module that :func:`nas_lth.estimation.metrics.evaluate` can call (it was exported
    in eval mode, and an exported module refuses ``.eval()``)."""
    return _Frozen(torch.export.load(path).module())


class _Frozen(nn.Module):
    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True):  # fixed in eval mode when it was exported
        return self

    def forward(self, x):
        return self.program(x)


def example_input(model: nn.Module, input_shape) -> torch.Tensor:
    """Two zero inputs of the model's shape: token ids for models that start with an embedding."""
    tokens = any(isinstance(m, nn.Embedding) for m in model.modules())
    return torch.zeros(2, *[int(s) for s in input_shape], dtype=torch.long if tokens else torch.float32)


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(model: nn.Module, example: torch.Tensor, *, nonzero: bool = False) -> int:
    """Multiply-accumulates per example of the convolutions and linear layers (BatchNorm, pooling and
    activations are not counted; an embedding is a lookup). ``nonzero``: only the products with a weight that
    is not zero, what an ideal sparse kernel would do."""
    total = 0.0

    def hook(mod, inputs, out):
        nonlocal total
        w = mod.weight
        per_out = w[0].numel()  # in_channels / groups * kernel, or in_features
        density = float(w.count_nonzero()) / w.numel() if nonzero else 1.0
        total += out[0].numel() * per_out * density

    layers = [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear)]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(example[:1].to(next(model.parameters()).device))
        model.train(was)
    finally:
        for h in handles:
            h.remove()
    return int(round(total))
