"""scikit-learn's bundled 8x8 digits (UCI optdigits test set): no download, for fast smoke runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .registry import RawData, register


@register(
    "digits",
    num_classes=10,
    input_shape=(1, 8, 8),
    val_size=287,  # 20 % of the 1,437 training images
    description="scikit-learn's bundled 8x8 digits, 1,437 train / 360 test (no download)",
)
def load_digits(paths: dict[str, Path]) -> RawData:
    from sklearn.datasets import load_digits as sk_load_digits  # lazy: sklearn import is slow
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # pixel values are 0..16
    y = bunch.target.astype(np.int64)
    # The data has no published split: a fixed stratified 80/20 one, independent of the seed argument
    # (the seed only picks the validation hold-out), so test numbers stay comparable across runs.
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return RawData(
        x_train, y_train, x_test, y_test, {"split": "sklearn train_test_split(0.2, random_state=0)"}
    )
