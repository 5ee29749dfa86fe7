"""Datasets in their published formats, behind one registry.

>>> ds = load_dataset("digits")          # no download
>>> ds.sizes()
{'train': 1150, 'val': 287, 'test': 360}

Adding a dataset = one module that decorates a loader with :func:`register` and is imported below.
"""

from __future__ import annotations

# Importing the source modules registers their datasets.
from . import cifar, digits, fashion_mnist, mnist, reuters  # noqa: F401
from .base import Dataset, Split
from .fetch import resolve_data_dir
from .load import load_dataset
from .registry import DATASETS, DatasetSpec, FileSpec, RawData, dataset_names, register

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetSpec",
    "FileSpec",
    "RawData",
    "Split",
    "dataset_names",
    "load_dataset",
    "register",
    "resolve_data_dir",
]
