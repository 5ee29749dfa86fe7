"""Fashion-MNIST (Xiao et al. 2017): same IDX layout and file names as MNIST, different data.

SHA-256 of the published ``.gz`` files: tensorflow/datasets
``tensorflow_datasets/url_checksums/fashion_mnist.txt``.
"""

from __future__ import annotations

from pathlib import Path

from .idx import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, load_idx_dataset
from .registry import FileSpec, RawData, register

MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

FILES = tuple(
    FileSpec(name, (MIRROR + name,), sha256)
    for name, sha256 in (
        (TRAIN_IMAGES, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        (TRAIN_LABELS, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        (TEST_IMAGES, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        (TEST_LABELS, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    )
)

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@register(
    "fashion-mnist",
    num_classes=10,
    input_shape=(1, 28, 28),
    val_size=5000,  # same protocol as MNIST
    files=FILES,
    description="Fashion-MNIST clothing images, 28x28 grey (IDX .gz files)",
)
def load_fashion_mnist(paths: dict[str, Path]) -> RawData:
    raw = load_idx_dataset(paths, image_shape=(28, 28), num_classes=10)
    raw.meta["classes"] = list(CLASSES)
    return raw
