"""Weight initialisations used by the papers the models come from."""

from __future__ import annotations

from torch import nn

from nas_lth.models.layers import MaskedMixin


def glorot_normal_(model: nn.Module) -> nn.Module:
    """Glorot (Xavier) normal weights and zero biases, as in the LTH paper's LeNet and Conv nets."""
    for m in model.modules():
        if isinstance(m, MaskedMixin | nn.Linear | nn.Conv1d | nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    return model


def kaiming_normal_(model: nn.Module) -> nn.Module:
    """He normal weights (fan-in), BN to identity: the usual choice for VGG/ResNet with BatchNorm."""
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
