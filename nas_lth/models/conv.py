"""Conv-2/4/6 of the LTH paper (scaled-down VGG: 3x3 convs, max-pool after each pair, fc 256-256)."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas_lth.models.init import glorot_normal_
from nas_lth.models.layers import MaskedConv2d, MaskedLinear
from nas_lth.models.registry import register

_PLANS = {
    "conv2": [64, 64, "M"],
    "conv4": [64, 64, "M", 128, 128, "M"],
    "conv6": [64, 64, "M", 128, 128, "M", 256, 256, "M"],
}


class ConvNet(nn.Module):
    def __init__(self, input_shape, num_classes, plan, fc=(256, 256)):
        super().__init__()
        channels = input_shape[0]
        feats: list[nn.Module] = []
        for item in plan:
            if item == "M":
                feats.append(nn.MaxPool2d(2))
            else:
                feats += [MaskedConv2d(channels, item, 3, padding=1, kind="conv"), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*feats)
        with torch.no_grad():  # infer the flattened size for any input resolution (MNIST, CIFAR)
            flat = math.prod(self.features(torch.zeros(1, *input_shape)).shape[1:])
        sizes = [flat, *fc]
        head: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            head += [MaskedLinear(a, b, kind="fc"), nn.ReLU()]
        head.append(MaskedLinear(sizes[-1], num_classes, kind="output"))
        self.classifier = nn.Sequential(*head)
        glorot_normal_(self)

    def forward(self, x):
        return self.classifier(self.features(x))


def _make(plan_name):
    def builder(input_shape, num_classes, fc=(256, 256)):
        """The plan's 3x3 convolutions (max-pool after each pair), then fully-connected layers.

        Options:
            fc: widths of the fully-connected layers after the convolutions (a list)
        """
        return ConvNet(input_shape, num_classes, _PLANS[plan_name], tuple(fc))

    builder.__name__ = plan_name
    return builder


for _name in _PLANS:
    register(_name, f"{_name.capitalize()} of the LTH paper: 3x3 convs + fc 256-256 (Glorot normal)")(
        _make(_name)
    )
