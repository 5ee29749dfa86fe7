"""LeNet-300-100 (LeCun et al. 1998), the LTH paper's fully-connected network."""

from __future__ import annotations

import math

from torch import nn

from nas_lth.models.init import glorot_normal_
from nas_lth.models.layers import MaskedLinear
from nas_lth.models.registry import register


class FCNet(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...]):
        super().__init__()
        sizes = [math.prod(input_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [MaskedLinear(a, b, kind="fc"), nn.ReLU()]
        layers.append(MaskedLinear(sizes[-1], num_classes, kind="output"))
        self.net = nn.Sequential(*layers)
        glorot_normal_(self)

    def forward(self, x):
        return self.net(x)


@register("lenet300_100", "LeNet-300-100: fc 300, fc 100, output (Glorot normal)")
def lenet300_100(input_shape, num_classes, hidden=(300, 100)):
    """Fully-connected ReLU layers on the flattened input, then the output layer.

    Options:
        hidden: widths of the hidden layers, input side first (a list; [] leaves only the output layer)
    """
    return FCNet(input_shape, num_classes, tuple(hidden))
