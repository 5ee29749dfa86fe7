"""Datasets from arrays: a user's function ``(**options) -> (x_train, y_train, x_test, y_test)`` registered as a
dataset (:func:`nas_lth.register_dataset`). nas_lth then does what it does for MNIST: the seeded validation
hold-out, per-channel (per-feature for flat inputs) standardisation with the training split's statistics, and
device placement. The arrays are checked when they are loaded: matching lengths, finite features, class ids
in ``0..num_classes-1``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from nas_lth.data.registry import RawData, register
from nas_lth.errors import DataError, UserError


def _array(v, what: str, dataset: str) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    try:
        return np.asarray(v)
    except (TypeError, ValueError) as exc:
        raise DataError(f"dataset {dataset!r}: {what} is not an array ({exc})") from None


def raw_from_arrays(name: str, arrays, num_classes: int, input_shape: tuple[int, ...]) -> RawData:
    if not isinstance(arrays, tuple | list) or len(arrays) != 4:
        raise DataError(f"dataset {name!r}: its function must return (x_train, y_train, x_test, y_test), got "
                        f"{type(arrays).__name__}")
    x_tr, y_tr, x_te, y_te = (_array(a, w, name) for a, w in zip(arrays, ("x_train", "y_train", "x_test", "y_test"),
                                                                 strict=True))
    for part, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if x.ndim < 2 or len(x) != len(y) or y.ndim != 1:
            raise DataError(f"dataset {name!r}: {part} split has inputs of shape {x.shape} and labels of shape "
                            f"{y.shape}; give (N, ...) inputs and (N,) class ids")
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise DataError(f"dataset {name!r}: {part} inputs have shape {x.shape[1:]}, registered input_shape "
                            f"{tuple(input_shape)}")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError(f"dataset {name!r}: {part} inputs hold non-finite or non-numeric values")
        if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating)
                                                            and np.all(np.mod(y, 1) == 0)):
            raise DataError(f"dataset {name!r}: {part} labels must be class ids (integers), got {y.dtype}")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"dataset {name!r}: {part} labels range {int(y.min())}..{int(y.max())}; allowed "
                            f"0..{num_classes - 1} (num_classes={num_classes})")
    return RawData(x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64), {"source": "arrays"})


def register_arrays(name: str, *, num_classes: int, input_shape: tuple[int, ...], val_size: int | float = 0.1,
                    standardize: bool = True, description: str = "") -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(**options) -> (x_train, y_train, x_test, y_test)`` as dataset ``name``; its
    keyword parameters (each with a default) are the dataset's options (``dataset_options`` in a recipe)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise UserError(f"register_dataset({name!r}): num_classes must be an integer >= 2, got {num_classes!r}")

    def deco(fn: Callable) -> Callable:
        params = inspect.signature(fn).parameters.values()
        bare = [p.name for p in params if p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if bare:
            raise UserError(f"register_dataset({name!r}): every parameter of {fn.__name__} needs a default (an "
                            f"option's default); {', '.join(bare)} has none")
        options = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

        def loader(paths, context=None):
            return raw_from_arrays(name, fn(**(dict(context.options) if context is not None else {})),
                                   num_classes, tuple(input_shape))

        register(name, num_classes=num_classes, input_shape=tuple(input_shape), val_size=val_size,
                 standardize=standardize, description=description or (fn.__doc__ or "").strip().split("\n")[0],
                 options=options or None)(loader)
        return fn

    return deco
