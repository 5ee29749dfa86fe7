"""Which stage of an experiment a trial belongs to: the search, or the confirmation that follows it.

A search trial's Tune config is the sample of the space's dimensions. A confirmation trial's config is
``{"confirm": {"sampled": <the search trial's sample>, "seed": s, "of": <search trial id>}}`` - Tune's grid
over those dicts keeps the confirmation plan inside the Tune experiment, so a resumed stage runs the same
plan. Both the trial (its recipe) and the driver (its row) read a config through :func:`unwrap`.
"""

from __future__ import annotations

SEARCH, CONFIRM = "search", "confirm"


def unwrap(config: dict) -> tuple[dict, dict]:
    """``(sampled recipe keys, row columns)`` of a trial's config; the columns are ``stage`` and, for a
    confirmation trial, ``confirm_of`` (the search trial whose recipe it re-runs)."""
    plan = config.get(CONFIRM)
    if isinstance(plan, dict):
        return {**plan["sampled"], "seed": int(plan["seed"])}, {"stage": CONFIRM, "confirm_of": plan["of"]}
    return config, {"stage": SEARCH}


def confirm_config(sampled: dict, seed: int, of: str) -> dict:
    return {"sampled": dict(sampled), "seed": int(seed), "of": of}
