"""Locating dataset files, verifying them, and downloading them when they are not there.

Lookup order for each file of a dataset (``folder`` is e.g. ``mnist``, ``fashion-mnist``, ``cifar10``):

1. ``<data_dir>/<folder>/<file>``, then ``<data_dir>/<file>`` where ``data_dir`` is the argument, else
   ``$NAS_LTH_DATA`` (the shared layout ``/work/shared/data/mnist/*.gz`` is case 1);
2. ``<cache>/<folder>/<file>`` with ``<cache>`` = ``$NAS_LTH_CACHE`` or ``~/.cache/nas_lth`` (see
   ``cache.py``; the folder level matters: MNIST and Fashion-MNIST use the same file names);
3. otherwise download from the published URLs (tried in order) into the cache.

Checksums: a download is always checked against the published SHA-256 (streamed to a temp file in the
cache dir, checked, then atomically renamed; a mismatch deletes the temp file). Files found locally are
checked too when ``verify=True`` (the default): they must match the published SHA-256, or for ``.gz``
files the SHA-256 of the decompressed payload, which accepts a re-compressed copy of the same data (the
shared MNIST copy is one). ``verify=False`` skips only the local check; it exists for files built or
modified on purpose (tests build tiny files in the real format). We do not guess from file sizes: a
size heuristic would silently skip the check on exactly the files most likely to be wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import zlib
from pathlib import Path
from typing import BinaryIO
from urllib.request import urlopen  # module-level name so tests can monkeypatch it (no network)

from ..errors import DataError
from . import cache
from .cache import ENV_CACHE, atomic_file
from .registry import DatasetSpec, FileSpec

ENV_DATA = "NAS_LTH_DATA"
TIMEOUT_S = 60
_CHUNK = 1 << 20

# (path, size, mtime_ns, expected hash) of local files already verified in this process, so repeated
# loads (e.g. many trials in one worker) hash each file once.
_verified: set[tuple[str, int, int, str]] = set()


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The directory to look for dataset files in: ``data_dir``, else ``$NAS_LTH_DATA``, else None
    (cache/download only). A directory that was named but does not exist is an error, not a silent
    fall-through to a download."""
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data directory {path} does not exist; pass an existing directory that holds the "
                "dataset folders (e.g. <dir>/mnist/train-images-idx3-ubyte.gz)"
            )
        return path
    env = os.environ.get(ENV_DATA, "")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(
                f"{ENV_DATA}={env} does not exist; set it to an existing directory that holds the "
                "dataset folders, or unset it to use the download cache"
            )
        return path
    return None


def cache_dir(spec: DatasetSpec) -> Path:
    return cache.cache_dir(spec.folder)


def candidates(spec: DatasetSpec, file: FileSpec, data_dir: Path | None) -> list[Path]:
    out = [data_dir / spec.folder / file.name, data_dir / file.name] if data_dir else []
    return [*out, cache_dir(spec) / file.name]


def fetch_files(spec: DatasetSpec, data_dir: Path | None, *, verify: bool = True) -> dict[str, Path]:
    """Local path of every file ``spec`` needs, downloading missing ones (see module docstring)."""
    paths: dict[str, Path] = {}
    for file in spec.files:
        path = next((p for p in candidates(spec, file, data_dir) if p.is_file()), None)
        if path is None:
            path = download(file, cache_dir(spec), dataset=spec.name)
        elif verify:
            verify_file(path, file, dataset=spec.name)
        paths[file.name] = path
    return paths


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_gunzipped(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):  # not gzip / truncated: simply not a match
        return None
    return digest.hexdigest()


def verify_file(path: Path, file: FileSpec, *, dataset: str) -> None:
    """Raise :class:`DataError` unless ``path`` holds the published content of ``file``."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, file.sha256)
    if key in _verified:
        return
    actual = sha256_file(path)
    ok = file.accepts(actual)
    if not ok and file.gunzipped_sha256:
        ok = _sha256_gunzipped(path) == file.gunzipped_sha256
    if not ok:
        also = f" (or {file.gunzipped_sha256} decompressed)" if file.gunzipped_sha256 else ""
        raise DataError(
            f"{path}: SHA-256 {actual} does not match the published {dataset} file {file.name}, "
            f"expected {file.sha256}{also}; the file is corrupt or a different file - delete it to "
            "re-download, or pass verify=False if you built or changed it on purpose"
        )
    _verified.add(key)


def download(file: FileSpec, dest_dir: Path, *, dataset: str) -> Path:
    """Download ``file`` into ``dest_dir``, trying its URLs in order; return the final path.

    Network errors move on to the next URL. A checksum mismatch is an error right away: a server that
    answers with the wrong bytes is something to report, not to paper over."""
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the download cache {dest_dir} ({exc.strerror or exc}); set {ENV_CACHE} to a "
            f"writable directory or put {file.name} in <data_dir>/{dest_dir.name}/"
        ) from None
    target = dest_dir / file.name
    errors: list[str] = []
    for url in file.urls:
        print(f"downloading {url} -> {target}", file=sys.stderr)
        try:
            with atomic_file(target) as out:  # readers never see a partial file under the real name
                _receive(url, out, file, dest_dir)
        except _Unreachable as exc:
            errors.append(str(exc))
            continue
        return target
    raise DataError(
        f"could not download {file.name} for {dataset} ({'; '.join(errors)}); put the file in "
        f"<data_dir>/{dest_dir.name}/ and pass data_dir or set {ENV_DATA}"
    )


class _Unreachable(Exception):
    """A URL that could not be read (the next one is tried)."""


def _receive(url: str, out: BinaryIO, file: FileSpec, dest_dir: Path) -> None:
    """Stream ``url`` into ``out``; a wrong SHA-256 is a :class:`DataError` (the temp file is dropped)."""
    digest = hashlib.sha256()
    try:
        with urlopen(url, timeout=TIMEOUT_S) as resp:
            while chunk := resp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        raise _Unreachable(f"{url}: {exc}") from None
    actual = digest.hexdigest()
    if not file.accepts(actual):
        raise DataError(
            f"download of {file.name} from {url} failed its checksum: expected SHA-256 "
            f"{file.sha256}, got {actual}; nothing was stored in {dest_dir}"
        )
