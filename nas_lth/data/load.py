"""``load_dataset``: registry entry -> files -> raw arrays -> val hold-out -> standardised tensors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import DataError, UserError
from .base import Dataset, Split
from .fetch import fetch_files, resolve_data_dir
from .registry import DATASETS, DatasetSpec, LoadContext, RawData


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; an unknown name is a UserError listing the registered ones."""
    return DATASETS.get(name)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    val_size: int | None = None,
    device: str | torch.device = "cpu",
    verify: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Dataset:
    """Load dataset ``name`` with its splits on ``device``.

    * Files: see :mod:`nas_lth.data.fetch` (``data_dir`` > ``$NAS_LTH_DATA`` > cache > download).
      ``verify=False`` skips the SHA-256 check of files found locally (downloads are always checked).
    * Validation: ``val_size`` training examples (default: the registry's, e.g. 5,000 for MNIST as in
      the LTH paper, or a fraction such as 10 % of the training set for Reuters) chosen by a
      ``seed``-ed permutation; same seed -> same split. Test set untouched.
    * ``options``: dataset-specific settings (e.g. ``{"representation": "tokens"}`` for the Reuters
      datasets); an unknown name is a :class:`UserError` listing the allowed ones. Datasets without
      options accept only ``None`` or ``{}``.
    * Images become float32 in [0, 1], then are standardised per channel with the mean/std of the
      remaining training split (recorded in ``meta["mean"]``/``meta["std"]``). Labels are int64 class
      ids, or float32 multi-hot rows for multi-label datasets.
    """
    spec = get_spec(name)
    dev = _device(device)
    opts = resolve_options(spec, options)
    raw, paths = _load_raw(spec, opts, data_dir, seed, val_size, verify)
    val_idx, train_idx = _holdout(spec, raw.x_train.shape[0], val_size, seed)
    x_train, x_val, x_test = (_dense(x) for x in (raw.x_train[train_idx], raw.x_train[val_idx], raw.x_test))
    meta = dict(raw.meta)
    if spec.standardize:
        x_train, x_val, x_test = _standardize(x_train, x_val, x_test, meta)
    meta.update(seed=int(seed), val_size=len(val_idx), files=[str(p) for p in paths.values()])
    if spec.options:
        meta.setdefault("options", dict(opts))  # a loader may narrow it to the options that took effect

    ds = Dataset(
        name=name,
        train=_split(x_train, raw.y_train[train_idx]),
        val=_split(x_val, raw.y_train[val_idx]),
        test=_split(x_test, raw.y_test),
        num_classes=raw.num_classes or spec.num_classes,
        input_shape=tuple(raw.input_shape) if raw.input_shape is not None else spec.input_shape,
        multilabel=spec.multilabel,
        meta=meta,
    )
    return ds if dev.type == "cpu" else ds.to(dev)


def load_raw(name: str, data_dir: str | os.PathLike[str] | None = None, *, seed: int = 0,
             val_size: int | None = None, verify: bool = True, options: Mapping[str, Any] | None = None) -> RawData:
    """Dataset ``name``'s arrays as its loader returns them: before the validation hold-out, the scaling to
    [0, 1] and the standardisation; what a ticket loaded by ``nas_lth.export.load`` takes. ``seed`` and
    ``val_size`` matter only to loaders that learn from the training part (a text vocabulary)."""
    spec = get_spec(name)
    return _load_raw(spec, resolve_options(spec, options), data_dir, seed, val_size, verify)[0]


def _load_raw(spec: DatasetSpec, opts: dict, data_dir, seed, val_size, verify: bool):
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise UserError(f"seed={seed!r}: must be an integer")
    folder = resolve_data_dir(data_dir)
    paths = fetch_files(spec, folder, verify=verify) if spec.files else {}

    def holdout(n: int) -> tuple[np.ndarray, np.ndarray]:
        return _holdout(spec, n, val_size, seed)

    if spec.options:
        ctx = LoadContext(name=spec.name, options=opts, seed=int(seed), val_size=val_size, holdout=holdout,
                          data_dir=folder)
        raw = spec.loader(paths, ctx)
    else:
        raw = spec.loader(paths)
    _check_shapes(spec, raw)
    return raw, paths


def resolve_options(spec: DatasetSpec, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` checked against the names and value types the dataset declares, defaults filled in."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise UserError(f"options for {spec.name} must be a mapping of option name to value, got {options!r}")
    if not spec.options:
        if options:
            raise UserError(f"dataset {spec.name} takes no options (got {', '.join(map(repr, options))})")
        return {}
    allowed = ", ".join(spec.options)
    out = dict(spec.options)
    for key, value in options.items():
        if key not in spec.options:
            raise UserError(f"unknown option {key!r} for dataset {spec.name}; allowed: {allowed}")
        default = spec.options[key]
        if not _same_kind(value, default):
            raise UserError(
                f"option {key}={value!r} for dataset {spec.name}: must be of type {type(default).__name__} "
                f"(default {default!r})"
            )
        out[key] = int(value) if isinstance(value, np.integer) else value
    return out


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int | np.integer)
    if isinstance(default, float):
        return isinstance(value, int | float | np.integer | np.floating)
    return isinstance(value, type(default))


def _holdout(spec: DatasetSpec, n: int, val_size: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation, training) row indices, each sorted (file order kept), from a seeded permutation."""
    if val_size is None:
        default = spec.val_size
        val_size = int(default * n) if isinstance(default, float) else default
    if isinstance(val_size, bool) or not isinstance(val_size, int | np.integer) or not 0 <= val_size < n:
        raise UserError(f"val_size={val_size!r} for {spec.name}: must be an integer in 0..{n - 1} (train has {n})")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:val_size]), np.sort(perm[val_size:])


def _standardize(x_train: np.ndarray, x_val: np.ndarray, x_test: np.ndarray, meta: dict):
    """Images in [0, 1], then standardised per channel with the training split's mean/std (into ``meta``)."""
    x_train, x_val, x_test = (_unit_float(x) for x in (x_train, x_val, x_test))
    mean, std = _channel_stats(x_train)
    for x in (x_train, x_val, x_test):
        x -= mean  # in place: the arrays above are fresh copies
        x /= std
    meta.update(mean=mean.ravel().tolist(), std=std.ravel().tolist())
    return x_train, x_val, x_test


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)))


def _dense(x):
    """Sparse features (e.g. TF-IDF from a text loader) become a dense array, split by split."""
    return x.toarray() if hasattr(x, "toarray") else x


def _device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserError(
            f"device={device!r} is not a torch device ({exc}); use e.g. cpu, cuda, cuda:0"
        ) from None


def _check_shapes(spec: DatasetSpec, raw: RawData) -> None:
    # A loader bug or an odd file should fail here, not as a shape error deep inside a model.
    for part, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        shape = tuple(raw.input_shape) if raw.input_shape is not None else spec.input_shape
        if spec.standardize and tuple(x.shape[1:]) != shape:
            raise DataError(f"{spec.name} {part} inputs have shape {x.shape[1:]}, expected {shape}")
        if x.shape[0] != len(y):
            raise DataError(f"{spec.name} {part} split has {x.shape[0]} inputs but {len(y)} labels")
        if spec.multilabel and tuple(y.shape[1:]) != (spec.num_classes,):
            raise DataError(
                f"{spec.name} {part} labels have shape {y.shape[1:]}, expected multi-hot ({spec.num_classes},)"
            )


def _unit_float(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return np.multiply(x, np.float32(1 / 255), dtype=np.float32)
    return x.astype(np.float32, copy=True)


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std over all axes but 1, shaped to broadcast against (N, C, ...)."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    mean = x.mean(axis=axes, dtype=np.float64, keepdims=True)
    std = x.std(axis=axes, dtype=np.float64, keepdims=True)
    std[std < 1e-8] = 1.0  # a constant channel: centre it, don't divide by ~0
    return mean.astype(np.float32)[0], std.astype(np.float32)[0]
