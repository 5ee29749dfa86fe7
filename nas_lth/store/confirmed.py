"""The confirmation stage's verdict, from the trials table alone.

Each re-run recipe (rows with ``stage == "confirm"``, grouped by ``confirm_of``: the search trial whose
recipe they re-run) gets the mean validation and test metric over its fresh seeds with a 95 % confidence
interval (Student's t: mean +- t(0.975, n-1) * s / sqrt(n)); recipes rank by mean *validation* metric (the
test split stays out of every choice). The dense network, trained with the same fresh seeds, is a row of its
own. The best recipe is compared with the runner-up and with the dense network on the test metric by
Welch's two-sided t-test (unequal variances; ``scipy.stats.ttest_ind(equal_var=False)``) at 0.05, and its
search-time validation value is set against the confirmed one (the winner's curse: the maximum of many
noisy values is biased upwards).

Ladders searched for the sparsest ticket within a bound (``strategy.fidelity: rounds`` with
``sparsest_within``, :func:`confirmed_ladders`) are confirmed round by round instead: each recipe's fresh-seed
ladders are averaged per round, its confirmed ticket is the sparsest round that every seed reached and whose
mean validation metric is within the bound of the dense network's mean over the same seeds (validation
decides, test is reported), and recipes rank by that ticket's weights remaining (ties: the higher mean
validation metric). The best is tested against the dense network on the test metric (Welch); a runner-up at
another sparsity is no like-for-like comparison, so there is none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from nas_lth.store.schema import RECIPE_COLUMNS

ALPHA = 0.05
SHOWN = ["criterion", "stop_at", "rewind_to", "prune_rate_fc", "reinit", "rounds"]


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95 % t interval, n); the half-width is NaN below two values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, 0
    if len(x) < 2:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half), len(x)


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test; NaN when either side has fewer than two values or neither
    varies (no spread to test against)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):  # std() of equal floats can be 1e-17
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


@dataclass
class Comparison:
    against: str  # "runner-up" or "dense network"
    metric: str
    best: float
    other: float
    p: float

    def line(self) -> str:
        if math.isnan(self.p):
            verdict = "not testable (fewer than two seeds a side, or no spread)"
        else:
            higher = "best" if self.best > self.other else self.against
            sig = f"significant ({higher} higher)" if self.p < ALPHA else "not significant"
            verdict = f"Welch's t-test p = {self.p:.3g}: {sig} at {ALPHA}"
        return (f"best vs {self.against} ({self.metric}): {self.best:.4f} vs {self.other:.4f} "
                f"({100 * (self.best - self.other):+.2f} pp), {verdict}")


@dataclass
class Confirmed:
    table: pd.DataFrame  # one row per re-run recipe (ranked) and one for the dense network
    comparisons: list[Comparison]
    val: str
    test: str
    within: float | None = None  # ladders: the bound of the sparsest round (confirmed_ladders)

    @property
    def ranked_by(self) -> str:
        if self.within is None:
            return f"mean {self.val}"
        return (f"the sparsest round whose mean {self.val} over the seeds is within {self.within:g} of the dense "
                f"network's")

    def lines(self) -> list[str]:
        best = self.table[self.table["entry"] == "recipe"].iloc[0]
        out = [c.line() for c in self.comparisons]
        if self.within is not None:
            if pd.notna(best["search_weights_remaining"]):
                conf = ("no round within the bound" if pd.isna(best["round"]) else
                        f"{100 * best['weights_remaining']:.2f} % (round {int(best['round'])})")
                out.append(f"best recipe's search-time answer {100 * best['search_weights_remaining']:.2f} % of the "
                           f"weights -> confirmed {conf}")
            return out
        if pd.notna(best[f"search_{self.val}"]):
            out.append(f"best recipe's search-time {self.val} {best[f'search_{self.val}']:.4f} -> confirmed "
                       f"{best[f'{self.val}_mean']:.4f} (gap {100 * best[f'{self.val}_gap']:+.2f} pp)")
        return out


def _metrics(rows: pd.DataFrame, col: str) -> list[float]:
    return [float(v) for v in rows[col].dropna()] if col in rows else []


def _entry(rows: pd.DataFrame, val: str, test: str) -> dict:
    done = rows[rows["status"] == "completed"]
    v_mean, v_ci, n = mean_ci(_metrics(done, val))
    t_mean, t_ci, _ = mean_ci(_metrics(done, test))
    return {"seeds": n, "not_completed": int(len(rows) - len(done)), f"{val}_mean": v_mean, f"{val}_ci95": v_ci,
            f"{test}_mean": t_mean, f"{test}_ci95": t_ci,
            "weights_remaining": float(done["weights_remaining"].mean()) if len(done) else math.nan}


def _dense(rows: pd.DataFrame, val: str, test: str) -> pd.DataFrame:
    """One value per seed of the dense network trained like the best recipe (same fresh seeds)."""
    cols = [c for c in (f"dense_{val}", f"dense_{test}") if c in rows]
    return rows.dropna(subset=cols[:1]).groupby("seed")[cols].first() if cols else pd.DataFrame()


def confirmed(search: pd.DataFrame, confirm: pd.DataFrame, metric: str = "val_acc") -> Confirmed | None:
    """The verdict, or None when no confirmation row exists yet."""
    if confirm.empty or "confirm_of" not in confirm:
        return None
    val, test = metric, "test_" + metric.removeprefix("val_")
    source = search.set_index("trial_id") if "trial_id" in search else pd.DataFrame()
    entries = []
    for of, rows in confirm.groupby("confirm_of", sort=False):
        e = {"entry": "recipe", "confirm_of": of, **_entry(rows, val, test)}
        src = source.loc[of] if of in source.index else None
        if isinstance(src, pd.DataFrame):
            src = src.iloc[-1]
        e[f"search_{val}"] = float(src[val]) if src is not None and val in src and pd.notna(src[val]) else math.nan
        e[f"{val}_gap"] = e[f"{val}_mean"] - e[f"search_{val}"]
        first = rows.iloc[0]
        e.update({c: first[c] for c in RECIPE_COLUMNS if c in rows and c != "seed"})
        entries.append(e)
    ranked = pd.DataFrame(entries).sort_values([f"{val}_mean", "weights_remaining"], ascending=[False, True],
                                               na_position="last")
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    best_of = ranked.iloc[0]["confirm_of"]
    best_rows = confirm[(confirm["confirm_of"] == best_of) & (confirm["status"] == "completed")]
    dense = _dense(best_rows, val, test)
    table, comps = ranked, []
    if not dense.empty:
        d = {"entry": "dense", "rank": math.nan, "confirm_of": None, "criterion": "dense", "weights_remaining": 1.0,
             "seeds": len(dense), "not_completed": 0}
        for split, col in ((val, f"dense_{val}"), (test, f"dense_{test}")):
            d[f"{split}_mean"], d[f"{split}_ci95"], _ = mean_ci(dense[col].tolist() if col in dense else [])
        table = pd.concat([ranked, pd.DataFrame([d])], ignore_index=True)
    best_test = _metrics(best_rows, test)
    if len(ranked) > 1:
        second = confirm[(confirm["confirm_of"] == ranked.iloc[1]["confirm_of"]) & (confirm["status"] == "completed")]
        other = _metrics(second, test)
        comps.append(Comparison("runner-up", test, float(np.mean(best_test)) if best_test else math.nan,
                                float(np.mean(other)) if other else math.nan, welch_p(best_test, other)))
    if f"dense_{test}" in dense:
        other = dense[f"dense_{test}"].dropna().tolist()
        comps.append(Comparison("dense network", test, float(np.mean(best_test)) if best_test else math.nan,
                                float(np.mean(other)) if other else math.nan, welch_p(best_test, other)))
    return Confirmed(table.reset_index(drop=True), comps, val, test)


def confirmed_ladders(search: pd.DataFrame, confirm: pd.DataFrame, rounds: pd.DataFrame, within: float,
                      metric: str = "val_acc") -> Confirmed | None:
    """The verdict on ladders searched with ``sparsest_within`` (module docstring), None without confirmation
    rows with rounds."""
    if confirm.empty or "confirm_of" not in confirm or rounds.empty:
        return None
    val, test = metric, "test_" + metric.removeprefix("val_")
    source = search.drop_duplicates("trial_id", keep="last").set_index("trial_id") if "trial_id" in search \
        else pd.DataFrame()
    done = rounds[rounds["status"] == "completed"]
    entries, per_seed = [], {}
    for of, rows in confirm.groupby("confirm_of", sort=False):
        mine = done[done["trial_id"].isin(rows["trial_id"])].merge(rows[["trial_id", "seed"]], on="trial_id")
        dense = mine[mine["round"] == 0].set_index("seed")
        seeds = sorted(dense.index)
        pruned = mine[(mine["round"] >= 1) & mine["seed"].isin(seeds)]
        by_round = pruned.groupby("round").agg(n=("seed", "nunique"), weights=("weights_remaining", "mean"),
                                               val=(val, "mean"))
        ok = by_round[(by_round.n == len(seeds)) & (by_round.val >= dense[val].mean() - within)] if seeds \
            else by_round.iloc[:0]
        best_round = int(ok.sort_values(["weights", "val"], ascending=[True, False]).index[0]) if len(ok) else None
        at = pruned[pruned["round"] == best_round].set_index("seed") if best_round is not None else dense
        per_seed[of] = (at, dense)
        v_mean, v_ci, n = mean_ci(at[val].tolist())
        t_mean, t_ci, _ = mean_ci(at[test].tolist()) if test in at else (math.nan, math.nan, 0)
        src = source.loc[of] if of in source.index else None
        e = {"entry": "recipe", "confirm_of": of, "seeds": n,
             "not_completed": int((rows["status"] != "completed").sum()), "round": best_round,
             "weights_remaining": float(at["weights_remaining"].mean()) if len(at) else math.nan,
             f"{val}_mean": v_mean, f"{val}_ci95": v_ci, f"{test}_mean": t_mean, f"{test}_ci95": t_ci,
             f"search_{val}": float(src[val]) if src is not None and pd.notna(src.get(val)) else math.nan,
             "search_weights_remaining": float(src["weights_remaining"]) if src is not None else math.nan}
        e[f"{val}_gap"] = e[f"{val}_mean"] - e[f"search_{val}"]
        first = rows.iloc[0]
        e.update({c: first[c] for c in RECIPE_COLUMNS if c in rows and c not in ("seed", "rounds")})
        entries.append(e)
    # a recipe without a round within the bound answers with its dense network (all the weights): ranked last
    ranked = pd.DataFrame(entries).sort_values(["weights_remaining", f"{val}_mean"], ascending=[True, False],
                                               na_position="last")
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    at, dense = per_seed[ranked.iloc[0]["confirm_of"]]
    table, comps = ranked, []
    if len(dense):
        d = {"entry": "dense", "rank": math.nan, "confirm_of": None, "criterion": "dense", "round": 0,
             "weights_remaining": 1.0, "seeds": len(dense), "not_completed": 0}
        for split in (val, test):
            d[f"{split}_mean"], d[f"{split}_ci95"], _ = mean_ci(dense[split].tolist() if split in dense else [])
        table = pd.concat([ranked, pd.DataFrame([d])], ignore_index=True)
        if pd.notna(ranked.iloc[0]["round"]) and test in at:
            best, other = at[test].tolist(), dense[test].tolist()
            comps.append(Comparison("dense network", test, float(np.mean(best)), float(np.mean(other)),
                                    welch_p(best, other)))
    return Confirmed(table.reset_index(drop=True), comps, val, test, within=within)


def confirmation(search: pd.DataFrame, confirm: pd.DataFrame, rounds: pd.DataFrame, metric: str = "val_acc",
                 within: float | None = None) -> Confirmed | None:
    """The verdict that fits the search: round by round for ladders searched with ``sparsest_within``
    (:func:`confirmed_ladders`), else per recipe (:func:`confirmed`)."""
    if within is not None and not rounds.empty:
        return confirmed_ladders(search, confirm, rounds, within, metric)
    return confirmed(search, confirm, metric)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and v.is_integer():  # an int column that a dense row's gap made float
        return str(int(v))
    return str(v)


def format_table(c: Confirmed) -> pd.DataFrame:
    """The table as strings for a terminal or Markdown: mean +- CI in percent."""
    t = c.table
    shown = [k for k in SHOWN if k in t and t[k].nunique(dropna=False) > 1] or [k for k in SHOWN[:2] if k in t]

    def pm(m, h):
        if pd.isna(m):
            return "-"
        return f"{100 * m:.2f}" + ("" if pd.isna(h) else f" ± {100 * h:.2f}")

    out = pd.DataFrame({"rank": t["rank"].map(lambda r: "-" if pd.isna(r) else str(int(r))),
                        "recipe of": t["confirm_of"].fillna("dense")})
    for k in shown:
        out[k] = t[k].map(_cell)
    if c.within is not None:
        out["round"] = t["round"].map(lambda r: "none within" if pd.isna(r) else str(int(r)))
    out["weights %"] = t["weights_remaining"].map(lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}")
    out["seeds"] = t["seeds"].astype(int).astype(str)
    out[f"{c.val} % (95% CI)"] = [pm(m, h) for m, h in zip(t[f"{c.val}_mean"], t[f"{c.val}_ci95"], strict=True)]
    out[f"{c.test} % (95% CI)"] = [pm(m, h) for m, h in zip(t[f"{c.test}_mean"], t[f"{c.test}_ci95"], strict=True)]
    search = t.get(f"search_{c.val}")
    out[f"search-time {c.val} %"] = ["-" if pd.isna(v) else f"{100 * v:.2f}" for v in
                                     (search if search is not None else [math.nan] * len(t))]
    if c.within is not None:
        out["search-time weights %"] = t["search_weights_remaining"].map(lambda v: "-" if pd.isna(v) else
                                                                         f"{100 * v:.2f}")
    return out
