"""Prunable layers.

A masked layer owns a ``mask`` buffer (same shape as its weight) and a ``kind`` tag (fc, conv,
output, embedding) so that prune rates apply per kind. The forward pass is the parent's: pruned
weights are kept *exactly zero in place* (``apply_masks_`` after every optimizer step), so there is
no ``weight * mask`` product per forward and no second copy of the weights, unlike
``torch.nn.utils.prune``'s ``weight_orig`` reparametrisation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from nas_lth.terms import LAYER_KINDS  # declared once, at the bottom


class MaskedMixin:
    kind: str
    weight: nn.Parameter
    mask: torch.Tensor

    def _init_mask(self, kind: str) -> None:
        if kind not in LAYER_KINDS:
            raise ValueError(f"layer kind {kind!r} is not one of {LAYER_KINDS}")
        self.kind = kind
        # Same dtype as the weight: an in-place multiply then needs no type conversion.
        self.register_buffer("mask", torch.ones_like(self.weight, requires_grad=False))

    @torch.no_grad()
    def set_mask(self, mask: torch.Tensor) -> None:
        if mask.shape != self.weight.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.mask.copy_(mask.to(self.mask.dtype))
        self.weight.mul_(self.mask)

    def extra_repr(self) -> str:  # shown by print(model)
        return super().extra_repr() + f", kind={self.kind}"  # type: ignore[misc]


class MaskedLinear(MaskedMixin, nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, kind: str = "fc"):
        super().__init__(in_features, out_features, bias=bias)
        self._init_mask(kind)


class MaskedConv2d(MaskedMixin, nn.Conv2d):
    def __init__(self, *args, kind: str = "conv", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_mask(kind)


class MaskedConv1d(MaskedMixin, nn.Conv1d):
    def __init__(self, *args, kind: str = "conv", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_mask(kind)


class MaskedEmbedding(MaskedMixin, nn.Embedding):
    def __init__(self, *args, kind: str = "embedding", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_mask(kind)


def masked_layers(model: nn.Module) -> Iterator[tuple[str, MaskedMixin]]:
    """The prunable layers of ``model`` in registration order, with their qualified names."""
    for name, module in model.named_modules():
        if isinstance(module, MaskedMixin):
            yield name, module


# plain PyTorch layers and the masked layer each becomes (exact types: a subclass may compute differently)
_PLAIN = {nn.Linear: MaskedLinear, nn.Conv2d: MaskedConv2d, nn.Conv1d: MaskedConv1d, nn.Embedding: MaskedEmbedding}
KIND_ATTRIBUTE = "nas_lth_kind"  # on a layer: its kind, or None to leave it unpruned


def make_prunable(model: nn.Module) -> nn.Module:
    """Make a model of plain ``nn.Linear``/``nn.Conv2d``/``nn.Conv1d``/``nn.Embedding`` layers prunable, in
    place: each becomes the masked layer of its type (its class is swapped, so its parameters, hooks and the
    model's own ``forward`` stay as they are). Kinds by rule: the last pruned ``nn.Linear`` (in registration
    order) is ``output``, every other linear layer ``fc``, convolutions ``conv``, embeddings ``embedding``. A layer with
    an attribute ``nas_lth_kind`` takes that kind instead, or stays dense when it is None. Layers that are
    already masked are left alone. Returns the model."""
    plain = [(name, m) for name, m in model.named_modules() if type(m) in _PLAIN]
    last_linear = next((name for name, m in reversed(plain)  # the last one that is pruned
                        if type(m) is nn.Linear and getattr(m, KIND_ATTRIBUTE, "") is not None), None)
    for name, module in plain:
        default = {nn.Linear: "output" if name == last_linear else "fc", nn.Conv2d: "conv", nn.Conv1d: "conv",
                   nn.Embedding: "embedding"}[type(module)]
        kind = getattr(module, KIND_ATTRIBUTE, default)
        if kind is None:
            continue
        module.__class__ = _PLAIN[type(module)]
        module._init_mask(kind)
    return model


@torch.no_grad()
def apply_masks_(model: nn.Module) -> None:
    """Zero every pruned weight in place: one fused multi-tensor call for all layers."""
    layers = [m for _, m in masked_layers(model)]
    if layers:
        torch._foreach_mul_([m.weight for m in layers], [m.mask for m in layers])


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: m.mask.detach().clone() for name, m in masked_layers(model)}


@torch.no_grad()
def set_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    layers = dict(masked_layers(model))
    if set(layers) != set(masks):
        raise ValueError(f"mask layers {sorted(masks)} do not match model layers {sorted(layers)}")
    for name, mask in masks.items():
        layers[name].set_mask(mask)


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: m.weight for name, m in masked_layers(model)}


def layer_kinds(model: nn.Module) -> dict[str, str]:
    return {name: m.kind for name, m in masked_layers(model)}
