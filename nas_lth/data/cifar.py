"""CIFAR-10 from the python-pickle tarball of https://www.cs.toronto.edu/~kriz/cifar.html.

Pickles can run code when loaded, so we (1) read only members with the expected names, straight from
the tarball (nothing is extracted to disk), and (2) unpickle with an allow-list that admits only what
numpy needs to rebuild an array, then validate types and shapes.

SHA-256 of cifar-10-python.tar.gz: tensorflow/datasets ``tensorflow_datasets/url_checksums/cifar10.csv``
(the same value is used by torchvision's prototype CIFAR dataset).
"""

from __future__ import annotations

import importlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .registry import FileSpec, RawData, register

TARBALL = "cifar-10-python.tar.gz"
FILES = (
    FileSpec(
        TARBALL,
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    ),
)
PREFIX = "cifar-10-batches-py/"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META = "batches.meta"  # optional: class names


def _numpy_global(module: str, name: str):
    # numpy 2 moved numpy.core to numpy._core; old pickles name the former
    for base in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{base}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


_ALLOWED = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global("multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_global("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_global("numeric", "_frombuffer"),
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # how protocol-2 pickles store bytes
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return make()


def _unpickle(data: bytes) -> dict:
    obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"expected a dict, found {type(obj).__name__}")
    return obj


def _batch(obj: dict, source: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = obj.get(b"data"), obj.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{source}: b'data' must be a uint8 array of shape (N, 3072), found {found}")
    y = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if y.shape != (data.shape[0],) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{source}: b'labels' must be {data.shape[0]} integers in 0..9")
    return data.reshape(-1, 3, 32, 32), y


def _read_members(path: Path, wanted: set[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile() and name not in found:
                fh = tar.extractfile(member)
                if fh is not None:
                    found[name] = fh.read()
    return found


@register(
    "cifar10",
    num_classes=10,
    input_shape=(3, 32, 32),
    val_size=5000,
    files=FILES,
    description="CIFAR-10 colour images, 32x32 RGB (python pickle tarball)",
)
def load_cifar10(paths: dict[str, Path]) -> RawData:
    path = paths[TARBALL]
    names = [*TRAIN_BATCHES, TEST_BATCH]
    try:
        members = _read_members(path, {PREFIX + n for n in [*names, META]})
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or not a gzip tarball ({exc}); delete it to re-download") from None
    missing = [n for n in names if PREFIX + n not in members]
    if missing:
        raise DataError(
            f"{path}: tarball lacks {', '.join(PREFIX + n for n in missing)}; "
            "not the CIFAR-10 python tarball?"
        )
    batches = {}
    for name in [*names, META]:
        if PREFIX + name not in members:
            continue
        source = f"{path}:{PREFIX}{name}"
        try:
            obj = _unpickle(members[PREFIX + name])
        except Exception as exc:  # any unpickling failure on untrusted bytes is a data error
            raise DataError(f"{source}: cannot unpickle ({type(exc).__name__}: {exc})") from None
        batches[name] = obj if name == META else _batch(obj, source)
    x_train = np.concatenate([batches[n][0] for n in TRAIN_BATCHES])
    y_train = np.concatenate([batches[n][1] for n in TRAIN_BATCHES])
    meta = {}
    label_names = batches.get(META, {}).get(b"label_names")
    if isinstance(label_names, list) and len(label_names) == 10:
        meta["classes"] = [n.decode() if isinstance(n, bytes) else str(n) for n in label_names]
    return RawData(x_train, y_train, *batches[TEST_BATCH], meta)
