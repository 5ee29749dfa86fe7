"""Datasets in their published formats, behind one registry.

>>> ds = load_dataset("digits")          # no download
>>> ds.sizes()
{'train': 1150, 'val': 287, 'test': 360}

Adding a dataset = one module in this package that decorates a loader with :func:`register` (every
module here is imported, which registers its datasets).
"""

from __future__ import annotations

from nas_lth.registry import import_submodules

from .base import Dataset, Split
from .fetch import resolve_data_dir
from .load import load_dataset, load_raw
from .registry import DATASETS, DatasetSpec, FileSpec, RawData, dataset_names, register

import_submodules(__name__, __path__, skip=("__main__",))  # registers every dataset module's datasets

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetSpec",
    "FileSpec",
    "RawData",
    "Split",
    "dataset_names",
    "load_dataset",
    "load_raw",
    "register",
    "resolve_data_dir",
]
