"""VGG-11/16/19 for 32x32 inputs (CIFAR style, with BatchNorm), as used by LTH and OpenLTH."""

from __future__ import annotations

from torch import nn

from nas_lth.models.init import kaiming_normal_
from nas_lth.models.layers import MaskedConv2d, MaskedLinear
from nas_lth.models.registry import register

_PLANS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512],
}


class VGG(nn.Module):
    def __init__(self, input_shape, num_classes, plan):
        super().__init__()
        channels = input_shape[0]
        layers: list[nn.Module] = []
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [
                    MaskedConv2d(channels, item, 3, padding=1, bias=False, kind="conv"),
                    nn.BatchNorm2d(item),
                    nn.ReLU(),
                ]
                channels = item
        # Adaptive pooling instead of a fixed 2x2 pool so 28x28 inputs (MNIST) work as well.
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = MaskedLinear(channels, num_classes, kind="output")
        kaiming_normal_(self)

    def forward(self, x):
        return self.fc(self.features(x))


def _make(plan_name):
    def builder(input_shape, num_classes):
        """The plan's 3x3 convolutions with BatchNorm, global average pooling, one output layer (no options)."""
        return VGG(input_shape, num_classes, _PLANS[plan_name])

    builder.__name__ = plan_name
    return builder


for _name in _PLANS:
    register(_name, f"{_name.upper()} (CIFAR style, BatchNorm, one output layer)")(_make(_name))
