"""The names every room shares, at the bottom of the house: layer kinds and the channel criteria.

They are plain data (no torch, no pydantic), declared once here so that the recipe (which validates them),
the models (which tag their layers with a kind) and the pruning code (which scores channels) all read the
same tuple without importing each other.
"""

from __future__ import annotations

# The prunable layer kinds; prune rates are given per kind (models tag every masked layer with one).
LAYER_KINDS = ("fc", "conv", "output", "embedding")

# Criteria with a channel form (``granularity: channel``): the Zhou et al. names scored on filter norms,
# network slimming's BatchNorm scale and the random control. Their scorers live in nas_lth.pruning.channels,
# which checks at import time that it implements exactly these.
CHANNEL_CRITERIA = ("large_final", "small_final", "large_init", "small_init", "magnitude_increase", "movement",
                    "random", "bn_gamma")
# criteria that exist only for channels (not in the weight-criterion registry)
CHANNEL_ONLY = ("bn_gamma",)

# Validation metrics whose dense network's value every trial records (as ``dense_<metric>``): what a constraint
# relative to the dense network (``min_vs_dense``) can bound.
DENSE_OF = {"val_acc": "dense_val_acc", "val_micro_f1": "dense_val_micro_f1"}
