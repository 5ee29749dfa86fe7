"""MNIST (LeCun et al.) in its published IDX ``.gz`` files.

Hashes: ``sha256`` is of the published ``.gz`` files, from tensorflow/datasets
``tensorflow_datasets/url_checksums/mnist.txt`` (same files as the torchvision mirror). The
``gunzipped_sha256`` values were computed here from the decompressed files in /work/shared/data/mnist
(a re-compressed copy); their MD5s equal the widely published MD5s of the uncompressed MNIST files
(6bbc9ace..., a25bea73..., 2646ac64..., 27ae3e4e...), and the same SHA-256 values appear as
"uncompressed" digests in several public repositories.
"""

from __future__ import annotations

from pathlib import Path

from .idx import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, load_idx_dataset
from .registry import FileSpec, RawData, register

# torchvision's mirror first: yann.lecun.com is often down or asks for a login
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def _file(name: str, sha256: str, gunzipped_sha256: str) -> FileSpec:
    return FileSpec(name, tuple(m + name for m in MIRRORS), sha256, gunzipped_sha256)


FILES = (
    _file(
        TRAIN_IMAGES,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    _file(
        TRAIN_LABELS,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    _file(
        TEST_IMAGES,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    _file(
        TEST_LABELS,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
)


@register(
    "mnist",
    num_classes=10,
    input_shape=(1, 28, 28),
    val_size=5000,  # as in the lottery-ticket paper (Frankle & Carbin 2019): 55k train / 5k val
    files=FILES,
    description="MNIST handwritten digits, 28x28 grey (IDX .gz files)",
)
def load_mnist(paths: dict[str, Path]) -> RawData:
    return load_idx_dataset(paths, image_shape=(28, 28), num_classes=10)
