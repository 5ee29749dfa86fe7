"""ResNet-20 for CIFAR (He et al. 2016): three stages of three basic blocks, 16/32/64 filters."""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from nas_lth.models.init import kaiming_normal_
from nas_lth.models.layers import MaskedConv2d, MaskedLinear
from nas_lth.models.registry import register


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = MaskedConv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = MaskedConv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:  # projection shortcut (option B), prunable like any conv
            self.shortcut = nn.Sequential(
                MaskedConv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, input_shape, num_classes, depth: int = 20, width: int = 16):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv = MaskedConv2d(input_shape[0], width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(Block(cin, cout, stride=2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = MaskedLinear(cin, num_classes, kind="output")
        kaiming_normal_(self)

    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


@register("resnet20", "ResNet-20 for CIFAR (16/32/64 filters, projection shortcuts)")
def resnet20(input_shape, num_classes, width=16):
    """ResNet-20: three stages of three basic blocks.

    Options:
        width: filters of the first stage (the others have 2x and 4x as many)
    """
    return ResNet(input_shape, num_classes, depth=20, width=width)
