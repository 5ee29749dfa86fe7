"""The dataset registry: each source module registers one loader per dataset with :func:`register`.

``DATASETS`` is a :class:`nas_lth.registry.Registry` of :class:`DatasetSpec`: a read-only mapping whose
``get(name)`` turns an unknown name into a one-line :class:`~nas_lth.errors.UserError` listing the
allowed ones; registering a name twice is a ``ValueError``.

A loader only turns files into raw numpy arrays; splitting, normalisation and moving to a device are
shared (see ``load.py``), so a new source is one small module that knows its file format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import Registry


@dataclass(frozen=True)
class FileSpec:
    """One published file a dataset needs.

    ``sha256`` is the digest of the file exactly as served at ``urls``; downloads must match it.
    ``gunzipped_sha256`` (optional, ``.gz`` files only) is the digest of the decompressed payload, so a
    local copy that was re-compressed (same data, different gzip bytes) is still recognised.
    ``alt_sha256`` lists other published packings of the same distribution (mirrors that serve
    different bytes), each with the source of the digest in a comment where it is declared.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str
    gunzipped_sha256: str | None = None
    alt_sha256: tuple[str, ...] = ()

    def accepts(self, digest: str) -> bool:
        return digest == self.sha256 or digest in self.alt_sha256


@dataclass
class RawData:
    """What a loader returns. Images may be uint8 (scaled by 1/255) or float already in [0, 1];
    text datasets (``standardize=False`` in the spec) return token ids or TF-IDF features, the latter
    possibly as a scipy sparse matrix (densified after the validation split). Labels are class ids
    (N,) or, for multi-label data, multi-hot float32 (N, C)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict = field(default_factory=dict)  # merged into Dataset.meta (e.g. class names, vocab)
    # the inputs' shape when it depends on the options (e.g. the vocabulary size); else the spec's
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None  # when the data says it (a file of arrays); else the spec's


@dataclass(frozen=True)
class LoadContext:
    """What ``load_dataset`` hands to the loader of a dataset that declares options.

    ``holdout(n)`` returns the (validation, training) row indices of a training set of ``n`` examples
    exactly as ``load_dataset`` will split it afterwards, so a loader can fit what it learns from the
    data (a vocabulary, IDF weights) on the training part only."""

    name: str
    options: Mapping[str, Any]  # validated names, defaults filled in
    seed: int
    val_size: int | None  # as requested; None = the spec's default (e.g. for a cache key)
    holdout: Callable[[int], tuple[np.ndarray, np.ndarray]]
    data_dir: Path | None = None  # --data-dir / $NAS_LTH_DATA, where relative file options resolve


# {file name: local path} -> arrays; loaders of datasets with options also get a LoadContext
Loader = Callable[..., RawData]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Loader
    num_classes: int
    input_shape: tuple[int, ...]  # with default options (RawData.input_shape can override it)
    # default validation hold-out taken from the training set: a count, or a fraction in (0, 1) of it
    val_size: int | float
    files: tuple[FileSpec, ...] = ()
    folder: str = ""  # sub-folder of the data dir / cache holding the files; defaults to name
    multilabel: bool = False
    standardize: bool = True  # per-channel mean/std standardisation (images); off for token ids
    description: str = ""
    # options the loader accepts, with their defaults; values must have the default's type
    options: Mapping[str, Any] = field(default_factory=dict)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(
    name: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    val_size: int | float,
    files: tuple[FileSpec, ...] = (),
    folder: str | None = None,
    multilabel: bool = False,
    standardize: bool = True,
    description: str = "",
    options: Mapping[str, Any] | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader`` under ``name``. Registering a name twice is a bug.

    Without ``options`` the loader is called as ``loader(paths)``; with them (a mapping of option name
    to default) as ``loader(paths, context)`` with a :class:`LoadContext`."""

    def spec(loader: Loader) -> DatasetSpec:
        return DatasetSpec(
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
            options=dict(options or {}),
        )

    return DATASETS.register(name, make=spec)


def dataset_names() -> list[str]:
    """Sorted (the registry itself keeps registration order)."""
    return sorted(DATASETS)
