"""Constraints of a multi-objective search (``strategy.constraints``), evaluated on a result or a trials row.

Each constraint bounds one metric: ``min``, ``max``, or ``min_vs_dense`` (at least the dense network's value of
the metric plus this, e.g. -0.02: at most 2 pp below it). Its *violation* follows Optuna's convention: <= 0 is
feasible, a positive value is how far outside the bound the result lies. The searcher tells Optuna the
violations (constrained MOTPE / NSGA-II), multi-objective ASHA ranks every feasible ticket of a rung above every
infeasible one (Deb's constrained domination), and fronts and hypervolumes leave infeasible tickets out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from nas_lth.terms import DENSE_OF


def violations(constraints: list[Mapping], values: Mapping) -> list[float] | None:
    """One violation per constraint for a result's ``values`` (a result dict or a trials row); None when a value a
    constraint needs is missing (an early report before the dense network's value is known)."""
    out = []
    for c in constraints:
        v = _number(values.get(c["metric"]))
        if v is None:
            return None
        if c.get("min") is not None:
            out.append(float(c["min"]) - v)
        elif c.get("max") is not None:
            out.append(v - float(c["max"]))
        else:
            dense = _number(values.get(DENSE_OF[c["metric"]]))
            if dense is None:
                return None
            out.append(dense + float(c["min_vs_dense"]) - v)
    return out


def total_violation(constraints: list[Mapping], values: Mapping) -> float | None:
    """The sum of the positive violations (0: feasible), None when unknown."""
    v = violations(constraints, values)
    return None if v is None else float(sum(max(0.0, x) for x in v))


def feasible_rows(df, constraints: list[Mapping]):
    """The rows of ``df`` that meet every constraint (a row whose feasibility is unknown is left out too)."""
    if not constraints or df.empty:
        return df
    keep = [total_violation(constraints, row) == 0.0 for row in df.to_dict("records")]
    return df[keep]


def describe(c: Mapping) -> str:
    if c.get("min") is not None:
        return f"{c['metric']} >= {c['min']:g}"
    if c.get("max") is not None:
        return f"{c['metric']} <= {c['max']:g}"
    return f"{c['metric']} >= dense {c['min_vs_dense']:+g}"


def _number(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
