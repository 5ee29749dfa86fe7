"""Reading the user's YAML files (recipes, search spaces) with one-line errors.

The files are small, hand-written configuration: a regular file of at most ``MAX_BYTES``, no YAML
aliases (``&a`` / ``*a``: a 1 KB file of nested aliases expands to gigabytes - the "billion laughs"),
and no key given twice in a mapping (PyYAML lets the last one win silently, even a whole second
``search:`` block).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from nas_lth.errors import UserError

MAX_BYTES = 1 << 20  # 1 MiB: far more than any space or recipe needs
MAX_DEPTH = 50  # nesting; deeper input ends in a RecursionError inside PyYAML


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UserError(f"{self.name}: YAML aliases (*name) are not allowed (line {mark.line + 1})")
        depth = getattr(self, "_depth", 0) + 1
        if depth > MAX_DEPTH:
            raise UserError(f"{self.name}: YAML nested more than {MAX_DEPTH} levels deep")
        self._depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable: PyYAML reports it
            if key in seen:
                raise UserError(f"{self.name}: duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_name(p: Path) -> None:
    """The path goes into messages, logs and stored tables, all UTF-8: a name with other bytes (an old
    archive's Latin-1 name) is refused, shown with the odd bytes escaped."""
    try:
        str(p).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(p).decode("utf-8", "backslashreplace")
        raise UserError(f"{shown}: the file name is not valid UTF-8; rename the file") from None


def _read_text(p: Path, what: str) -> str:
    _check_name(p)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, /dev/zero never ends
            raise UserError(f"{p}: not a regular file; a {what} is a YAML file")
        with p.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"{p}: larger than {MAX_BYTES // 1024} KiB; a {what} is a small YAML file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start})") from None


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed file; a missing/unreadable file or malformed YAML is a :class:`UserError` naming
    the file (and the line and column of the syntax error)."""
    p = Path(path)
    text = _read_text(p, what)
    loader = None
    try:  # building the loader already reads the text: a NUL or BEL byte is refused there
        loader = _StrictLoader(text)
        loader.name = str(p)
        return loader.get_single_data()
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise UserError(f"{p}: character U+{code:04X} at position {exc.position} is not allowed in YAML "
                        "(a control character; tab and newlines are)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{p}: malformed YAML{where}") from None
    finally:
        if loader is not None:
            loader.dispose()
