"""Dataset ``arrays``: your data as one ``.npz`` file, no plugin needed.

    numpy.savez("blobs.npz", x_train=..., y_train=..., x_test=..., y_test=...)  # optional: num_classes=...
    fixed: {dataset: arrays, dataset_options: {file: /data/blobs.npz}}

The file holds four arrays (inputs ``(N, ...)`` and class ids ``(N,)`` per split) and may hold a scalar
``num_classes`` (default: the largest label + 1). It is read with ``allow_pickle=False`` (a data file never
runs code) and checked like a registered dataset function's arrays (:mod:`nas_lth.data.arrays`): matching
lengths, finite features, class ids in ``0..num_classes-1``; then held out, standardised and placed as MNIST
is. ``file`` is a local path or a URI that pyarrow reads (``s3://``, ``gs://``); a relative path is taken
under ``--data-dir`` / ``$NAS_LTH_DATA`` (Ray workers run in their trial's folder, not the driver's).
``nas_lth.search(space, data=...)`` writes the caller's in-memory arrays as such a file into the
experiment (``<experiment>/data/arrays.npz``) and searches it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from nas_lth.data.arrays import raw_from_arrays
from nas_lth.data.registry import RawData, register
from nas_lth.errors import DataError, UserError

NAME = "arrays"
KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_bytes(file: str, data_dir: Path | None) -> bytes:
    if "://" in file:
        from pyarrow import fs as pafs

        try:
            filesystem, path = pafs.FileSystem.from_uri(file)
            with filesystem.open_input_file(path) as f:
                return f.read()
        except (OSError, ValueError) as exc:
            raise DataError(f"dataset {NAME}: file {file}: cannot be read ({exc})") from None
    path = Path(file).expanduser()
    if not path.is_absolute():
        if data_dir is None:
            raise UserError(f"dataset {NAME}: option file={file!r} is relative: give an absolute path or a URI, "
                            "or a path under --data-dir / $NAS_LTH_DATA (Ray workers do not run in your folder)")
        path = data_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"dataset {NAME}: file {path}: {exc.strerror or exc}") from None


def arrays_of(data: bytes, source: str) -> dict[str, np.ndarray]:
    """The file's arrays (no pickled objects: an object array is an error, not code run)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"dataset {NAME}: {source}: not a readable .npz file of plain arrays ({exc})") from None
    missing = [k for k in KEYS if k not in out]
    if missing:
        raise DataError(f"dataset {NAME}: {source}: no array {missing[0]!r}; a file holds {', '.join(KEYS)} "
                        f"(and optionally num_classes), it holds {', '.join(sorted(out)) or 'nothing'}")
    return out


def class_count(arrays: dict[str, np.ndarray], source: str) -> int:
    if "num_classes" in arrays:
        n = arrays["num_classes"]
        if n.shape != () or not np.issubdtype(n.dtype, np.integer) or int(n) < 2:
            raise DataError(f"dataset {NAME}: {source}: num_classes must be one integer >= 2, got {n!r}")
        return int(n)
    top = max((int(arrays[k].max()) for k in ("y_train", "y_test") if arrays[k].size
               and np.issubdtype(arrays[k].dtype, np.number)), default=0)
    return max(top + 1, 2)


@register(NAME, num_classes=0, input_shape=(), val_size=0.1, options={"file": ""},
          description="your arrays from one .npz file (x_train, y_train, x_test, y_test; optional num_classes)")
def load_arrays(paths, context) -> RawData:
    """The arrays of ``dataset_options.file``, checked; classes and input shape come from the data.

    Options:
        file: the .npz file: an absolute path, a URI (s3://, gs://), or a path under --data-dir / $NAS_LTH_DATA
    """
    file = context.options["file"]
    if not file:
        raise UserError(f"dataset {NAME}: give the .npz file as dataset_options.file")
    arrays = arrays_of(read_bytes(file, context.data_dir), file)
    num_classes = class_count(arrays, file)
    shape = tuple(int(s) for s in np.shape(arrays["x_train"])[1:])
    raw = raw_from_arrays(f"{NAME} ({file})", tuple(arrays[k] for k in KEYS), num_classes, shape)
    raw.input_shape, raw.num_classes = shape, num_classes
    return raw
