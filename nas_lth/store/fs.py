"""Storage locations: a local path or a URI (s3://, gs://, file://) through pyarrow's filesystems,
the same layer Ray Tune uses for its own state, so one ``--storage`` serves both."""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Location:
    fs: pafs.FileSystem
    path: str  # path inside ``fs`` (no scheme)
    uri: str  # what the user would pass again (absolute local path or URI)

    def join(self, *parts: str) -> Location:
        path = posixpath.join(self.path, *parts)
        uri = self.uri.rstrip("/") + "/" + "/".join(parts)
        return Location(self.fs, path, uri)

    @property
    def name(self) -> str:
        """The last part of the path (a file's or a folder's name)."""
        return posixpath.basename(self.path.rstrip("/"))

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.Directory

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def list(self, suffix: str = "") -> list[Location]:
        """Visible files directly inside (names starting with '.' or '_' are in-progress writes)."""
        if not self.is_dir():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        out = []
        for info in sorted(infos, key=lambda i: i.base_name):
            if info.type == pafs.FileType.File and not info.base_name.startswith((".", "_")) \
                    and info.base_name.endswith(suffix):
                out.append(self.join(info.base_name))
        return out

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def write_bytes(self, data: bytes) -> None:
        """Whole-file write: to a hidden temporary name next to it, then renamed (atomic on a local
        disk; a single object copy on object stores, so readers never see a partial file)."""
        self._atomic(lambda tmp: _write(self.fs, tmp, data))

    def write_parquet(self, table: pa.Table) -> None:
        self._atomic(lambda tmp: pq.write_table(table, tmp, filesystem=self.fs))

    def _atomic(self, write) -> None:
        parent, name = posixpath.split(self.path)
        self.fs.create_dir(parent, recursive=True)
        tmp = posixpath.join(parent, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            write(tmp)
            self.fs.move(tmp, self.path)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except (OSError, FileNotFoundError):
                pass
            raise


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as f:
        f.write(data)


# Storage that every node reaches. pyarrow knows more schemes, "mock://" among them: a filesystem in
# one process's memory, which the Ray workers never see (and which is gone when the driver exits).
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def locate(storage: str) -> Location:
    """A :class:`Location` for a local path (made absolute) or a URI."""
    if "://" in storage and not storage.startswith("file://"):
        scheme = storage.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise ValueError(f"unknown storage scheme {scheme!r}; allowed: a local path, file://, "
                             + ", ".join(f"{s}://" for s in SCHEMES))
        fs, path = pafs.FileSystem.from_uri(storage)
        return Location(fs, path, storage.rstrip("/"))
    local = storage.removeprefix("file://")
    path = os.path.abspath(os.path.expanduser(local))
    return Location(pafs.LocalFileSystem(), path, path)
