"""The report's text parts, shared by the HTML page and the Markdown summary: the experiment's settings
(fixed and searched recipe parameters), headline numbers and the top-tickets table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from nas_lth.report.data import RECIPE_ORDER, ReportData, dense_column
from nas_lth.store import STATUSES
from nas_lth.store.analysis import unique_recipes
from nas_lth.store.confirmed import confirmation, format_table
from nas_lth.store.constraints import describe, feasible_rows
from nas_lth.store.pareto import curve_marks, front, hypervolume_curve, hypervolume_of, reference_point
from nas_lth.store.reader import recorded_constraints, recorded_references, recorded_within

# columns always shown in the top-tickets table (the rest of the recipe only when it varies)
_ALWAYS = ["criterion", "stop_at", "reinit", "rounds"]
_CONTEXT = ["model", "dataset", "device"]
CONFIRMED_TEXT = ("The search's top recipes retrained from scratch with fresh seeds (the confirmation stage), ranked "
                  "by {ranked_by}: mean ± half-width of the 95 % t interval over the seeds; the dense "
                  "network trained with the same seeds; search-time = what the search measured for the recipe.")


@dataclass
class Summary:
    settings: list[tuple[str, str]]  # experiment-level facts
    fixed: list[tuple[str, str]]  # recipe parameters constant across the trials
    searched: list[tuple[str, str]]  # recipe parameters that vary, with their values
    headline: list[str]
    top: pd.DataFrame  # formatted strings, one row per ticket
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)  # failed/diverged trials and their messages
    missing: list[str] = field(default_factory=list)
    confirmed: pd.DataFrame = field(default_factory=pd.DataFrame)  # the confirmation stage's ranking (strings)
    verdict: list[str] = field(default_factory=list)  # its significance and winner's-curse lines
    confirmed_text: str = ""  # what the confirmed table is and how it is ranked
    top_text: str = ""  # what the top-tickets table is and how it is ranked


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
    return str(v)


def _pct(v, digits: int = 2) -> str:
    return "–" if v is None or pd.isna(v) else f"{100 * v:.{digits}f}"


def _distinct(s: pd.Series) -> list:
    vals = [v for v in s.tolist() if v is not None and not (isinstance(v, float) and math.isnan(v)) and v != ""]
    out = []
    for v in vals:
        if v not in out:
            out.append(v)
    try:
        return sorted(out)
    except TypeError:
        return out


def _values(vals: list) -> str:
    if len(vals) > 8 and all(isinstance(v, int | float) for v in vals):
        return f"{fmt(min(vals))} – {fmt(max(vals))} ({len(vals)} values)"
    shown = ", ".join(fmt(v) for v in vals[:12])
    return shown + (f", … ({len(vals)} values)" if len(vals) > 12 else "")


def statuses(trials: pd.DataFrame) -> list[str]:
    """The known statuses in their order, then any other found in the rows."""
    return [*STATUSES, *sorted(set(trials.status) - set(STATUSES))]


def recipe_split(trials: pd.DataFrame) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(fixed, searched) recipe parameters: constant across trials vs varying (values listed)."""
    fixed, searched = [], []
    for col in [*_CONTEXT, *RECIPE_ORDER]:
        if col not in trials:
            continue
        vals = _distinct(trials[col])
        if len(vals) == 1:
            fixed.append((col, fmt(vals[0])))
        elif len(vals) > 1:
            searched.append((col, _values(vals)))
    return fixed, searched


TOP_TEXT = ("Completed (full-budget) trials ranked by the validation metric, one row per distinct recipe "
            "(trials = how many trials ran it; pp = percentage points).")
TOP_WITHIN_TEXT = ("The search's objective: each ladder's sparsest ticket whose validation metric is within {within:g} "
                   "of the dense network's, sparsest first (ties: the better validation metric), one row per "
                   "distinct recipe (trials = how many trials ran it; rounds = the ticket's round; pp = percentage "
                   "points). Ladders with no ticket within the bound are not listed.")


def sparsest_within(data: ReportData, within: float) -> pd.DataFrame:
    """Each ladder's sparsest completed ticket whose validation metric is within ``within`` of its dense network's
    (the ``sparsest_within`` objective's answer), sparsest first, ties by the better validation metric."""
    val = data.metric.col("val")
    dense_val = dense_column(data.trials, data.metric, "val")
    comp = data.completed
    if val not in comp or dense_val is None or dense_val not in comp or comp.empty:
        return comp.iloc[0:0]
    ok = comp.dropna(subset=[val, dense_val])
    ok = ok[ok[val] >= ok[dense_val] - within - 1e-12]
    ok = ok.sort_values(["weights_remaining", val], ascending=[True, False])
    return ok.drop_duplicates("trial_id")


def top_tickets(data: ReportData, n: int = 10, within: float | None = None) -> pd.DataFrame:
    """The top-tickets table: by validation metric, or with ``within`` (a ``sparsest_within`` search) by the
    search's objective (:func:`sparsest_within`)."""
    m = data.metric
    val = m.col("val")
    comp = data.completed
    if val not in comp or comp.empty:
        return pd.DataFrame()
    if within is not None:
        # one row per distinct recipe: a searcher may run the same ladder many times (same numbers)
        best = unique_recipes(sparsest_within(data, within)).head(n)  # in the objective's order
    else:
        # one row per distinct recipe: a searcher may run the same one many times (same numbers)
        best = unique_recipes(comp.dropna(subset=[val]))
        best = best.sort_values([val, "weights_remaining"], ascending=[False, True]).head(n)
    if best.empty:
        return pd.DataFrame()
    _, searched = recipe_split(data.trials)
    varying = [c for c, _ in searched if c in RECIPE_ORDER]
    recipe = [c for c in RECIPE_ORDER if c in _ALWAYS or c in varying]
    test = m.col("test")
    dense_test = dense_column(data.trials, m, "test")
    rows = []
    for i, r in enumerate(best.to_dict("records"), start=1):
        row = {"#": str(i), "trial": r["trial_id"]}
        row.update({c: fmt(r.get(c)) for c in recipe})
        row["weights %"] = _pct(r["weights_remaining"])
        row[f"val {m.label} %"] = _pct(r[val])
        if test in r:
            row[f"test {m.label} %"] = _pct(r[test])
        es_col = f"{test}_at_early_stop"
        if es_col in r and pd.notna(r[es_col]):
            row["test @early stop %"] = _pct(r[es_col])
        if dense_test and test in r and pd.notna(r.get(dense_test)) and pd.notna(r[test]):
            row["Δ test vs dense (pp)"] = f"{100 * (r[test] - r[dense_test]):+.2f}"
        row["early-stop it"] = fmt(r.get("early_stop_iter"))
        row["mask it"] = fmt(r.get("mask_iter"))
        row["trials"] = fmt(r.get("trials"))
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def headline(data: ReportData, within: float | None = None) -> list[str]:
    """The summary's opening lines; ``within``: the bound of a ``sparsest_within`` search, whose answer heads them."""
    m, t, comp = data.metric, data.trials, data.completed
    counts = ", ".join(f"{int((t.status == s).sum())} {s}" for s in statuses(t) if (t.status == s).any())
    lines = [f"{len(t)} trials ({counts})."]
    if not data.rounds.empty:
        # a recipe run again (a replay) repeats its ladder's rounds: counted once
        distinct = len(unique_recipes(comp))
        lines.append(f"Ladder trials: each of the {distinct} completed pruned rounds of the ladders (distinct "
                     "recipes) is a ticket in what follows (its `rounds` is the round it stops at).")
    split = "test" if data.value_column("test") else "val"
    col = m.col(split)
    dense = data.dense(split)
    if not dense.empty:
        spread = f" ± {100 * dense.std():.2f}" if len(dense) > 1 else ""
        lines.append(f"Dense network: {split} {m.label} {100 * dense.mean():.2f}{spread} % "
                     f"({len(dense)} seed{'s' if len(dense) > 1 else ''}).")
    val = m.col("val")
    if within is not None:  # the search's own objective is the headline
        ok = sparsest_within(data, within)
        if ok.empty:
            lines.append(f"No completed ticket is within {within:g} of the dense network's validation {m.label} "
                         "(the search's objective).")
        else:
            best = ok.iloc[0]
            test_part = f", test {m.label} {_pct(best[m.col('test')])} %" if m.col("test") in best else ""
            lines.append(f"Best ticket (the search's objective: the sparsest within {within:g} of the dense "
                         f"network's validation {m.label}): {best.criterion}, stop_at={best.stop_at}, round "
                         f"{fmt(best.rounds)}, {_pct(best.weights_remaining)} % of the weights: validation "
                         f"{_pct(best[val])} %{test_part} (trial {best.trial_id}).")
    elif val in comp and comp[val].notna().any():
        best = comp.dropna(subset=[val]).sort_values([val, "weights_remaining"], ascending=[False, True]).iloc[0]
        test_part = f", test {m.label} {_pct(best[m.col('test')])} %" if m.col("test") in best else ""
        lines.append(f"Best ticket (validation {m.label}): {best.criterion}, stop_at={best.stop_at}, "
                     f"{_pct(best.weights_remaining)} % of the weights: validation {_pct(best[val])} %{test_part} "
                     f"(trial {best.trial_id}).")
    dcol = dense_column(t, m, split)
    if col in comp and dcol is not None:
        ok = comp.dropna(subset=[col, dcol, "weights_remaining"])
        ok = ok[ok[col] >= ok[dcol]]
        if ok.empty:
            lines.append(f"No completed ticket matches the dense network's {split} {m.label}.")
        else:
            r = ok.sort_values("weights_remaining").iloc[0]
            lines.append(f"Smallest ticket at least as good as the dense network ({split} {m.label}): "
                         f"{_pct(r.weights_remaining)} % of the weights ({r.criterion}, stop_at={r.stop_at}, "
                         f"{_pct(r[col])} % vs {_pct(r[dcol])} %).")
    if not comp.empty and comp.weights_remaining.notna().any():
        lines.append(f"Completed tickets span {_pct(comp.weights_remaining.max())} % to "
                     f"{_pct(comp.weights_remaining.min())} % of the weights.")
        objectives = [(val, "max"), ("weights_remaining", "min")]
        every = comp  # the curve counts a ticket from its first trial to finish (a replay repeats it later)
        comp = unique_recipes(comp)  # a replayed recipe is one ticket (and the same point) however often it ran
        constraints = recorded_constraints(data.location)
        references = recorded_references(data.location)
        ref = reference_point(comp, objectives, references)  # from every ticket: a constraint does not move it
        if constraints:  # tickets that miss the space's constraints are on no front
            feasible = feasible_rows(comp, constraints)
            lines.append(f"Constraints {'; '.join(describe(c) for c in constraints)}: {len(comp) - len(feasible)} "
                         f"of {len(comp)} completed tickets miss them and are left out of the front.")
            comp = feasible
        if val in comp and comp[val].notna().any():
            n = len(front(comp, objectives))
            lines.append(f"Front of validation {m.label} vs weights remaining: {n} ticket(s), hypervolume "
                         f"{hypervolume_of(comp, objectives, references=ref):.4f} (points: -{val}, log10 "
                         f"weights remaining; reference point: {val} {ref[val]:.4f}, weights remaining "
                         f"{ref['weights_remaining']:.4g}; a ticket counts where it beats both).")
            # ladders: every round is a ticket once its ladder has finished
            curve = hypervolume_curve(t, objectives, references, constraints,
                                      every if not data.rounds.empty else None)
            if len(curve) > 1:
                marks = curve_marks(curve)
                lines.append("Hypervolume vs training epochs spent by the search: " + ", ".join(
                    f"{r.epochs:.0f} epochs -> {r.hypervolume:.4f}" for r in marks) + ".")
    return lines


def problem_trials(data: ReportData, n: int = 20) -> pd.DataFrame:
    """Failed and diverged trials with their message (the last line of the error), most recent last."""
    t = data.trials[data.trials.status.isin(["failed", "diverged"])].tail(n)
    if t.empty:
        return pd.DataFrame()
    return pd.DataFrame({"trial": t.trial_id, "status": t.status, "criterion": t.criterion, "stop_at": t.stop_at,
                         "rounds": t.rounds.map(fmt), "message": t.message.map(lambda m: m[:300] or "–")})


def summarise(data: ReportData) -> Summary:
    t = data.trials
    fixed, searched = recipe_split(t)
    status = ", ".join(f"{s}: {int((t.status == s).sum())}" for s in statuses(t))
    settings = [
        ("experiment", data.name),
        ("location", data.location),
        ("model", ", ".join(_distinct(t.model)) or "–"),
        ("dataset", ", ".join(_distinct(t.dataset)) or "–"),
        ("trials", str(len(t))),
        ("status", status),
        ("metric", f"{data.metric.label}" + (" (multi-label data)" if data.metric.multilabel else "")),
        ("curve rows", str(len(data.curves))),
    ]
    if data.ipe:
        settings.append(("iterations per epoch", fmt(round(data.ipe, 2))))
    within = recorded_within(data.location)
    top = top_tickets(data, within=within)
    missing = []
    if top.empty:
        missing.append("no completed tickets yet: the top-tickets table is empty")
    verdict = confirmation(data.trials, data.confirm, data.rounds, data.metric.col("val"), within)
    conf, lines = (format_table(verdict), verdict.lines()) if verdict is not None else (pd.DataFrame(), [])
    text = CONFIRMED_TEXT.format(ranked_by=verdict.ranked_by if verdict is not None else "")
    if len(data.confirm):
        settings.append(("confirmation trials", str(len(data.confirm))))
    top_text = TOP_TEXT if within is None else TOP_WITHIN_TEXT.format(within=within)
    return Summary(settings, fixed, searched, headline(data, within), top, problem_trials(data), missing, conf, lines,
                   text, top_text)
