"""How a recipe field declares its roles beside its definition (see :mod:`nas_lth.recipe`): whether
round 0 depends on it (*dense*), whether the rounds of a pruning ladder do (*ladder*: False for a field that
only decides where a ladder ends), how it is stored in the trials table (*column*), and when its value acts
(*applies*)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

COLUMN_TYPES = ("string", "int64", "float64", "bool", "json", "rates", "nested")


def role(default: Any = ..., *, dense: bool = False, ladder: bool = True, column: str, applies: str | None = None,
         **kw) -> Any:
    """A pydantic field with its nas_lth roles."""
    if column not in COLUMN_TYPES:
        raise ValueError(f"column type {column!r} is not one of {COLUMN_TYPES}")  # a bug in the recipe
    extra = {"nas_lth": {"dense": dense, "ladder": ladder, "column": column, "applies": applies}}
    return Field(default, json_schema_extra=extra, **kw)


def roles_of(model: type[BaseModel]) -> dict[str, dict]:
    """field name -> {"dense", "ladder", "column", "applies"} (a field without roles is missing: a test catches it)."""
    out = {}
    for name, f in model.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if "nas_lth" in extra:
            out[name] = dict(extra["nas_lth"])
    return out


def cell(value, column: str):
    """A field's value as stored in its column (mappings and lists as JSON text)."""
    if value is None:
        return None
    if column == "json":
        return json.dumps(value, sort_keys=True)
    if column == "string":
        return str(value)
    return value
