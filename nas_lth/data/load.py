"""``load_dataset``: registry entry -> files -> raw arrays -> val hold-out -> standardised tensors."""

from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import DataError, UserError
from .base import Dataset, Split
from .fetch import fetch_files, resolve_data_dir
from .registry import DATASETS, DatasetSpec, RawData, dataset_names


def get_spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name)
    if spec is None:
        raise UserError(f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}")
    return spec


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    val_size: int | None = None,
    device: str | torch.device = "cpu",
    verify: bool = True,
) -> Dataset:
    """Load dataset ``name`` with its splits on ``device``.

    * Files: see :mod:`nas_lth.data.fetch` (``data_dir`` > ``$NAS_LTH_DATA`` > cache > download).
      ``verify=False`` skips the SHA-256 check of files found locally (downloads are always checked).
    * Validation: ``val_size`` training examples (default: the registry's, e.g. 5,000 for MNIST as in
      the LTH paper) chosen by a ``seed``-ed permutation; same seed -> same split. Test set untouched.
    * Images become float32 in [0, 1], then are standardised per channel with the mean/std of the
      remaining training split (recorded in ``meta["mean"]``/``meta["std"]``). Labels are int64.
    """
    spec = get_spec(name)
    dev = _device(device)
    val_size = spec.val_size if val_size is None else val_size
    paths = fetch_files(spec, resolve_data_dir(data_dir), verify=verify) if spec.files else {}
    raw = spec.loader(paths)
    _check_shapes(spec, raw)

    n = len(raw.x_train)
    if isinstance(val_size, bool) or not isinstance(val_size, int | np.integer) or not 0 <= val_size < n:
        raise UserError(f"val_size={val_size!r} for {name}: must be an integer in 0..{n - 1} (train has {n})")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise UserError(f"seed={seed!r}: must be an integer")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])  # sorted: keep file order

    x_train, x_val, x_test = raw.x_train[train_idx], raw.x_train[val_idx], raw.x_test
    meta = dict(raw.meta)
    if spec.standardize:
        x_train, x_val, x_test = (_unit_float(x) for x in (x_train, x_val, x_test))
        mean, std = _channel_stats(x_train)
        for x in (x_train, x_val, x_test):
            x -= mean  # in place: the arrays above are fresh copies
            x /= std
        meta.update(mean=mean.ravel().tolist(), std=std.ravel().tolist())
    meta.update(seed=int(seed), val_size=int(val_size), files=[str(p) for p in paths.values()])

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)))

    ds = Dataset(
        name=name,
        train=split(x_train, raw.y_train[train_idx]),
        val=split(x_val, raw.y_train[val_idx]),
        test=split(x_test, raw.y_test),
        num_classes=spec.num_classes,
        input_shape=spec.input_shape,
        multilabel=spec.multilabel,
        meta=meta,
    )
    return ds if dev.type == "cpu" else ds.to(dev)


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
        if spec.standardize and tuple(x.shape[1:]) != spec.input_shape:
            raise DataError(
                f"{spec.name} {part} inputs have shape {x.shape[1:]}, expected {spec.input_shape}"
            )
        if len(x) != len(y):
            raise DataError(f"{spec.name} {part} split has {len(x)} inputs but {len(y)} labels")


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
