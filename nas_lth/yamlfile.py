"""Reading the user's YAML files (recipes, search spaces) with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nas_lth.errors import UserError


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed file; a missing/unreadable file or malformed YAML is a :class:`UserError` naming
    the file (and the line and column of the syntax error)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{p}: malformed YAML{where}") from None
