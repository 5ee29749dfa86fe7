"""Model registry and prunable layers. Importing this package registers every model."""

from nas_lth.models import conv, lenet, resnet, text, vgg  # noqa: F401  (registration side effect)
from nas_lth.models.layers import (
    LAYER_KINDS,
    MaskedConv1d,
    MaskedConv2d,
    MaskedEmbedding,
    MaskedLinear,
    MaskedMixin,
    apply_masks_,
    get_masks,
    layer_kinds,
    masked_layers,
    prunable_weights,
    set_masks,
)
from nas_lth.models.registry import MODELS, build_model, model_names, register

__all__ = [
    "LAYER_KINDS", "MODELS", "MaskedConv1d", "MaskedConv2d", "MaskedEmbedding", "MaskedLinear",
    "MaskedMixin", "apply_masks_", "build_model", "get_masks", "layer_kinds", "masked_layers",
    "model_names", "prunable_weights", "register", "set_masks",
]
