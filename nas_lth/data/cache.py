"""The on-disk cache shared by downloads (``fetch.py``) and arrays derived from the data (e.g. vectorised text).

``<cache>`` = ``$NAS_LTH_CACHE`` or ``~/.cache/nas_lth``, with one sub-folder per dataset folder.

Every file is written under a temporary name in its final folder and then renamed into place
(:func:`atomic_file`): the rename is atomic within one file system, so a reader - a later run, another
worker - sees no file or the whole file, never a partial one; a failed write leaves nothing behind.

Derived arrays are stored as ``.npz`` together with the key they were computed from
(:func:`save_arrays`, :func:`load_arrays`): a file that cannot be read or was written for another key
is reported on stderr and rebuilt, and a cache that cannot be written only costs speed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np

ENV_CACHE = "NAS_LTH_CACHE"
TEMP_SUFFIX = ".part"  # temporary files end with this until they are renamed
T = TypeVar("T")


def cache_root() -> Path:
    root = os.environ.get(ENV_CACHE, "")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "nas_lth"


def cache_dir(folder: str) -> Path:
    return cache_root() / folder


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: a temporary file next to it, renamed to ``path`` when the
    ``with`` block ends normally and deleted when it raises. The folder must exist."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def cache_key(fields: Mapping[str, Any]) -> tuple[str, str]:
    """(key, digest): ``fields`` as canonical JSON, stored in the file to check a hit, and the first 20 hex
    digits of its SHA-256, for the file name."""
    key = json.dumps(fields, sort_keys=True)
    return key, hashlib.sha256(key.encode()).hexdigest()[:20]


def save_arrays(path: Path, key: str, arrays: Mapping[str, np.ndarray], *, on_failure: str) -> bool:
    """Store ``arrays`` with ``key`` at ``path`` atomically; True if written. An unwritable cache is a
    warning on stderr ending with ``on_failure`` (what that costs), not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as fh:
            np.savez(fh, key=np.array(key), **arrays)
    except OSError as exc:
        print(f"warning: cannot write the cache file {path} ({exc.strerror or exc}); {on_failure}", file=sys.stderr)
        return False
    return True


def load_arrays(path: Path, key: str, check: Callable[[dict[str, np.ndarray]], T]) -> T | None:
    """``check(arrays)`` of the arrays stored at ``path`` for ``key``; None when there is no file, or when
    it cannot be read, was written for another key or fails ``check`` (which raises on inconsistent
    arrays) - those are reported on stderr so that the caller rebuilds and overwrites them."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if str(arrays.pop("key")) != key:
            raise ValueError("written for other inputs")
        return check(arrays)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt, whatever broke it
        print(f"warning: ignoring unreadable cache file {path} ({type(exc).__name__}: {exc}); rebuilding",
              file=sys.stderr)
        return None
