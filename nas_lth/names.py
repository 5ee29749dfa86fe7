"""Plain names: what may become one component of a path (experiment names, trial ids, report folders).

Names often come from data (a trials table, a ticket's provenance); a path is built from one only if it
is a plain name: letters, digits, ``_``, ``-``, ``.``, and not ``.`` or ``..``.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


def valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None and name not in (".", "..")
