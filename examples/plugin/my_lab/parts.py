"""A plain PyTorch CNN and a dataset from arrays, registered for nas_lth.

Nothing here knows about masks: nas_lth makes the convolutions and linear layers prunable as they are (the
last linear layer is the output). The space names this module under ``plugins:``, so the search imports it on
the driver and in every Ray worker.
"""

import numpy as np
import torch
from torch import nn

import nas_lth


class SmallCNN(nn.Module):
    def __init__(self, channels: int, classes: int, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.LazyLinear(64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@nas_lth.register_model("small_cnn", "two 3x3 convolutions, a max-pool and two linear layers")
def small_cnn(input_shape, num_classes, width=16):
    """Options: width: filters of the first convolution (the second has twice as many)."""
    model = SmallCNN(input_shape[0], num_classes, width)
    model(torch.zeros(1, *input_shape))  # materialise the lazy layer: its shape follows the input's
    return model


@nas_lth.register_dataset("digits_arrays", num_classes=10, input_shape=(1, 8, 8), val_size=200)
def digits_arrays(test_fraction=0.2):
    """scikit-learn's 8x8 digits, as arrays a lab might have in memory."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    return tuple(train_test_split(x, digits.target, test_size=test_fraction, random_state=0,
                                  stratify=digits.target)[i] for i in (0, 2, 1, 3))
