"""One sample of a search space as a recipe: the fixed keys with the sampled (dotted) keys set, validated.
The driver (space validation) and every trial build recipes with these same functions."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

from nas_lth.errors import UserError
from nas_lth.recipe import Recipe, format_validation_error


def set_path(d: dict, dotted: str, value: Any) -> None:
    """``set_path(d, "prune_rate.fc", 0.3)`` -> d["prune_rate"]["fc"] = 0.3."""
    head, _, rest = dotted.partition(".")
    if not rest:
        d[head] = value
        return
    sub = d.setdefault(head, {})
    if not isinstance(sub, dict):
        raise UserError(f"{head} is not a mapping, cannot set {dotted}")
    set_path(sub, rest, value)


def merge_sampled(fixed: dict, sampled: dict[str, Any]) -> dict:
    """The fixed recipe keys with the sampled (dotted) keys set."""
    d = copy.deepcopy(fixed)
    for key, value in sampled.items():
        set_path(d, key, copy.deepcopy(value))  # a list value (a choice of lists) is the recipe's own
    return d


def build_recipe(fixed: dict, sampled: dict[str, Any], source: str) -> Recipe:
    """The validated recipe of one sample; a validation failure is one line naming ``source`` and the key."""
    try:
        return Recipe.model_validate(merge_sampled(fixed, sampled))
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, source)) from None
