"""The memory layout a model computes in. Convolutions run fastest channels-last (NHWC) under oneDNN and
cuDNN (benchmarks/conv_speed.py: 1.04-1.22x per training step on the CI CPU), so ``auto`` picks it for
models with 2-d convolutions. The layout changes float rounding, not what is computed: a ticket is
reloaded in the layout it was trained in, so it predicts exactly as in the trial."""

from __future__ import annotations

import torch
from torch import nn

MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


def resolve_memory_format(model: nn.Module, memory_format: str = "auto") -> str:
    """``contiguous`` or ``channels_last``; ``auto`` is channels_last exactly when the model has a Conv2d."""
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory_format {memory_format!r}; allowed: {', '.join(MEMORY_FORMATS)}")
    if memory_format != "auto":
        return memory_format
    return "channels_last" if any(isinstance(m, nn.Conv2d) for m in model.modules()) else "contiguous"


def set_memory_format(model: nn.Module, memory_format: str = "auto") -> str:
    """Put the model's 4-d parameters and buffers in the layout, in place; returns the resolved layout."""
    fmt = resolve_memory_format(model, memory_format)
    model.to(memory_format=torch.channels_last if fmt == "channels_last" else torch.contiguous_format)
    return fmt
