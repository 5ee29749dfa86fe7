"""Sparse execution of a ticket: prunable linear and convolution layers as CSR matrix products.

PyTorch has no sparse convolution, so a convolution runs as im2col (``F.unfold``) followed by a
CSR x dense product (``torch.sparse.mm``) - the same lowering
dense convolution libraries use, with the weight matrix in CSR. Embeddings stay dense: a lookup
reads one row per token, so sparsity saves memory there but no time. Whether this beats dense
kernels depends on the density and the batch size; ``benchmarks/inference.py`` measures it.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from nas_lth.models.layers import MaskedConv1d, MaskedConv2d, MaskedLinear, masked_layers


def _csr(weight: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "CSR support is in beta": said once here, not at every layer
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return weight.detach().to_sparse_csr()


class CSRLinear(nn.Module):
    def __init__(self, layer: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.register_buffer("weight", _csr(layer.weight))
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch.sparse.mm(self.weight, flat.t()).t()  # (out, in) @ (in, N) in CSR, back to (N, out)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, nnz={self.weight._nnz()}, layout=csr"


class CSRConv(nn.Module):
    """A 1-D or 2-D convolution (groups 1, zero padding) as unfold + CSR product."""

    def __init__(self, layer: nn.Conv1d | nn.Conv2d):
        super().__init__()
        self.dims = 1 if isinstance(layer, nn.Conv1d) else 2
        pair = (lambda v: (1, *v)) if self.dims == 1 else (lambda v: tuple(v))
        self.kernel, self.stride = pair(layer.kernel_size), pair(layer.stride)
        self.padding = (0, *layer.padding) if self.dims == 1 else tuple(layer.padding)
        self.dilation = pair(layer.dilation)
        self.out_channels = layer.out_channels
        self.register_buffer("weight", _csr(layer.weight.reshape(layer.out_channels, -1)))
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 1:
            x = x.unsqueeze(2)  # (N, C, L) -> (N, C, 1, L)
        n, _, h, w = x.shape
        cols = F.unfold(x, self.kernel, dilation=self.dilation, padding=self.padding, stride=self.stride)
        k, positions = cols.shape[1], cols.shape[2]
        out = torch.sparse.mm(self.weight, cols.transpose(0, 1).reshape(k, n * positions))  # (O, N*P)
        out = out.reshape(self.out_channels, n, positions).transpose(0, 1)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        oh = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel[0] - 1) - 1) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - self.dilation[1] * (self.kernel[1] - 1) - 1) // self.stride[1] + 1
        out = out.reshape(n, self.out_channels, oh, ow)
        return out.squeeze(2) if self.dims == 1 else out

    def extra_repr(self) -> str:
        return f"conv{self.dims}d kernel={self.kernel}, nnz={self.weight._nnz()}, layout=csr"


def _convertible(layer: nn.Module) -> bool:
    if isinstance(layer, MaskedLinear):
        return True
    if isinstance(layer, MaskedConv1d | MaskedConv2d):
        return layer.groups == 1 and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
    return False


LAYER_TYPES = ("linear", "conv")


def to_sparse(model: nn.Module, max_density: float = 1.0, layers: tuple[str, ...] = LAYER_TYPES) -> nn.Module:
    """A copy of ``model`` whose prunable layers of the given types ("linear", "conv") with at most
    ``max_density`` of their weights kept compute with CSR weights; the others stay dense (a batched
    convolution pays for its unfold, so linear-only is often the faster mix). For inference: the copy
    has no gradients or masks."""
    unknown = set(layers) - set(LAYER_TYPES)
    if unknown:
        raise ValueError(f"layer types {sorted(unknown)}; allowed: {LAYER_TYPES}")
    out = copy.deepcopy(model).eval()
    for name, layer in list(masked_layers(out)):
        kind = "linear" if isinstance(layer, nn.Linear) else "conv"
        if kind not in layers or not _convertible(layer) or float(layer.mask.mean()) > max_density:
            continue
        sparse = CSRLinear(layer) if isinstance(layer, nn.Linear) else CSRConv(layer)
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, child, sparse)
    return out
