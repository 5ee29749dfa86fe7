"""The dataset registry: each source module registers one loader per dataset with :func:`register`.

A loader only turns files into raw numpy arrays; splitting, normalisation and moving to a device are
shared (see ``load.py``), so a new source is one small module that knows its file format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FileSpec:
    """One published file a dataset needs.

    ``sha256`` is the digest of the file exactly as served at ``urls``; downloads must match it.
    ``gunzipped_sha256`` (optional, ``.gz`` files only) is the digest of the decompressed payload, so a
    local copy that was re-compressed (same data, different gzip bytes) is still recognised.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str
    gunzipped_sha256: str | None = None


@dataclass
class RawData:
    """What a loader returns. Images may be uint8 (scaled by 1/255) or float already in [0, 1];
    token ids (future text datasets) are integer arrays with ``standardize=False`` in the spec."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict = field(default_factory=dict)  # merged into Dataset.meta (e.g. class names, vocab)


Loader = Callable[[dict[str, Path]], RawData]  # {file name: local path} -> arrays


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Loader
    num_classes: int
    input_shape: tuple[int, ...]
    val_size: int  # default validation hold-out taken from the training set
    files: tuple[FileSpec, ...] = ()
    folder: str = ""  # sub-folder of the data dir / cache holding the files; defaults to name
    multilabel: bool = False
    standardize: bool = True  # per-channel mean/std standardisation (images); off for token ids
    description: str = ""


DATASETS: dict[str, DatasetSpec] = {}


def register(
    name: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    val_size: int,
    files: tuple[FileSpec, ...] = (),
    folder: str | None = None,
    multilabel: bool = False,
    standardize: bool = True,
    description: str = "",
) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader`` under ``name``. Registering a name twice is a bug."""

    def decorator(loader: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = DatasetSpec(
            name=name,
            loader=loader,
            num_classes=num_classes,
            input_shape=tuple(input_shape),
            val_size=val_size,
            files=tuple(files),
            folder=folder or name,
            multilabel=multilabel,
            standardize=standardize,
            description=description,
        )
        return loader

    return decorator


def dataset_names() -> list[str]:
    return sorted(DATASETS)
