"""Model registry and prunable layers. Importing this package registers every model: each module
here that decorates a builder with :func:`register` (adding a model is one file)."""

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
from nas_lth.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = [
    "LAYER_KINDS", "MODELS", "MaskedConv1d", "MaskedConv2d", "MaskedEmbedding", "MaskedLinear",
    "MaskedMixin", "apply_masks_", "build_model", "get_masks", "layer_kinds", "masked_layers",
    "model_names", "prunable_weights", "register", "set_masks",
]
