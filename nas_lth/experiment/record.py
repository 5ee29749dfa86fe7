"""``space.json``: the space an experiment was started with, in its canonical form.

Written when the experiment is created. ``--resume`` with a different file would mix trials of two spaces
under one name (rows saying one budget, trials training another), so it is refused with the first difference.
"""

from __future__ import annotations

import json

from nas_lth.errors import UserError
from nas_lth.store.fs import Location
from nas_lth.store.reader import SPACE_FILE  # declared where its readers find it


def canonical(space) -> dict:
    return json.loads(json.dumps(space.to_dict(), sort_keys=True, default=str))


def record_space(exp: Location, space) -> None:
    exp.join(SPACE_FILE).write_bytes(json.dumps(canonical(space), sort_keys=True, indent=1).encode())


def first_difference(old, new, path: str = "") -> str | None:
    """``key: old -> new`` for the first differing key (depth first, sorted), None when equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            where = f"{path}.{key}" if path else key
            if key not in old:
                return f"{where}: added ({new[key]!r})"
            if key not in new:
                return f"{where}: removed (was {old[key]!r})"
            diff = first_difference(old[key], new[key], where)
            if diff:
                return diff
        return None
    return None if old == new else f"{path}: {old!r} -> {new!r}"


def check_space(exp: Location, space, name: str) -> None:
    """On ``--resume``: the space must be the one the experiment started with (older experiments kept none)."""
    f = exp.join(SPACE_FILE)
    if not f.exists():
        return
    try:
        old = json.loads(f.read_bytes())
    except (OSError, ValueError):
        raise UserError(f"{f.uri}: unreadable; it records the space experiment {name!r} was started with") from None
    diff = first_difference(old, canonical(space))
    if diff:
        raise UserError(f"--resume: {space.source} is not the space experiment {name!r} was started with "
                        f"({diff}); resume with the original file, or start a new experiment with --name")
