"""A strict reader for the IDX format of MNIST-style datasets (http://yann.lecun.com/exdb/mnist/).

Header: two zero bytes, a dtype code, the number of dims, then one big-endian uint32 per dim; the data
follows in big-endian order. Anything that does not add up is a one-line :class:`DataError` naming the
file, so a truncated download never turns into a silently short dataset.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .registry import RawData

# IDX dtype codes -> big-endian numpy dtypes
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"


def parse_idx(buf: bytes, source: str, *, ndim: int | None = None) -> np.ndarray:
    """Decode IDX bytes (already decompressed). ``source`` names the file in error messages;
    ``ndim`` is the number of dimensions the caller expects (3 for images, 1 for labels)."""
    if len(buf) < 4:
        raise DataError(f"{source}: truncated IDX file ({len(buf)} bytes, the header alone needs 4)")
    code, dims_n = buf[2], buf[3]
    magic = int.from_bytes(buf[:4], "big")
    if buf[0] or buf[1] or code not in IDX_DTYPES or dims_n == 0 or (ndim is not None and dims_n != ndim):
        want = f"0x0000TT{ndim:02x}" if ndim else "0x0000TTNN"
        codes = ", ".join(f"{c:02x}" for c in IDX_DTYPES)
        raise DataError(
            f"{source}: bad IDX magic number 0x{magic:08x}, expected {want} (two zero bytes, a dtype "
            f"code TT in {codes}, then the number of dims); not an IDX file?"
        )
    header = 4 + 4 * dims_n
    if len(buf) < header:
        raise DataError(f"{source}: truncated IDX file ({len(buf)} bytes, the header needs {header})")
    dims = [int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims_n)]
    dtype = np.dtype(IDX_DTYPES[code])
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(buf) - header
    if have != need:
        what = "truncated IDX file" if have < need else "IDX file has trailing bytes"
        raise DataError(f"{source}: {what}: the header says {dims} ({need} data bytes), found {have}")
    arr = np.frombuffer(buf, dtype=dtype, count=need // dtype.itemsize, offset=header)
    return arr.reshape(dims).astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx_gz(path: Path, *, ndim: int | None = None) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            buf = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; EOFError = cut short
        raise DataError(f"{path}: not a valid gzip file ({exc}); delete it to re-download") from None
    return parse_idx(buf, str(path), ndim=ndim)


def load_idx_dataset(paths: dict[str, Path], *, image_shape: tuple[int, int], num_classes: int) -> RawData:
    """The four standard MNIST-layout files -> uint8 images (N, 1, H, W) and int64 labels."""
    parts = []
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images = read_idx_gz(paths[images_name], ndim=3)
        labels = read_idx_gz(paths[labels_name], ndim=1)
        if images.dtype != np.uint8 or images.shape[1:] != image_shape:
            raise DataError(
                f"{paths[images_name]}: expected uint8 images of shape (N, {image_shape[0]}, "
                f"{image_shape[1]}), found {images.dtype} {images.shape}"
            )
        if labels.shape[0] != images.shape[0]:
            raise DataError(
                f"{paths[labels_name]}: {labels.shape[0]} labels for {images.shape[0]} images "
                f"in {paths[images_name].name}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(
                f"{paths[labels_name]}: labels must be in 0..{num_classes - 1}, "
                f"found {labels.min()}..{labels.max()}"
            )
        parts += [images[:, None], labels.astype(np.int64)]
    return RawData(*parts)
