"""The multi-objective variant of benchmarks/ladder_search.py (issue 26 item 6): hypervolume of validation accuracy
against weights remaining, over the epochs spent, for the same methods on the same LeNet-300-100 / MNIST space.

The searches optimise both objectives (``val_acc`` max, ``weights_remaining`` min; TPE becomes Optuna's
multi-objective TPE, ASHA the multi-objective scheduler over rounds) under the constraint that a ticket stays
within 5 pp of the dense network's validation accuracy, and end at ``--fraction`` of the grid's epochs. The grid
is ladder_search's (``runs/grid-s0.parquet``: the same ladders whatever the objective). Every evaluated pruned
round of every ladder is a point; the hypervolume uses nas_lth's default reference point (item 4c): the dense
network's validation accuracy minus 5 pp and 50 % of the weights, weights on a log10 scale
(``nas_lth.store.pareto``), so a point counts once it halves the network within 5 pp of dense.

Reported per method and searcher seed: the hypervolume after B epochs (1/9, 1/6 and 1/3 of the grid's), and the
epochs after which it first reaches the grid's final hypervolume (the goal: <= 1/3 of the grid's epochs); a paired
one-sided Wilcoxon signed-rank test over searcher seeds. Search-time validation accuracy: this variant measures
how fast a front is found, not its test accuracy.

Resumable: one file per (method, searcher seed), ``benchmarks/results/ladder_search/runs_mo/<method>-s<seed>
.parquet``, written whole when the search ends; a rerun skips what exists.

    python -m benchmarks.ladder_pareto [--seeds 0 ... 4] [--methods ...]
    python -m benchmarks.ladder_pareto --summary-only
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from benchmarks import ladder_search as ls
from benchmarks.common import RESULTS, default_data_dir, emit, environment
from nas_lth.space import load_space
from nas_lth.space.schema import SearchSpace
from nas_lth.store.pareto import DEFAULT_BELOW_DENSE, DEFAULT_WEIGHTS_REFERENCE, hypervolume_of

OUT = RESULTS / "ladder_search"
REPORT = ls.REPORT
OBJECTIVES = [("val_acc", "max"), ("weights_remaining", "min")]


def mo_space(space: SearchSpace, method: str, seed: int, epoch_budget: float) -> SearchSpace:
    """ladder_search's space for ``method`` with the two objectives instead of ``sparsest_within``, and the
    constraint that matches the reference point."""
    d = ls.method_space(space, method, seed, epoch_budget).to_dict()
    strat = d["strategy"]
    strat.pop("sparsest_within", None)
    strat["objectives"] = [{"metric": m, "mode": mode} for m, mode in OBJECTIVES]
    strat["constraints"] = [{"metric": "val_acc", "min_vs_dense": -DEFAULT_BELOW_DENSE}]
    if strat["searcher"] == "tpe":
        strat["searcher"] = "motpe"
    return SearchSpace.from_dict(d, space.source)


def runs(args, space: SearchSpace) -> None:
    folder = args.results / "runs_mo"
    folder.mkdir(parents=True, exist_ok=True)
    budget = args.fraction * grid_epochs(args.results)
    for seed in args.seeds:
        for method in args.methods:
            path = folder / f"{method}-s{seed}.parquet"
            if path.exists():
                continue
            print(f"{method} (multi-objective), searcher seed {seed}, {budget:.1f} epochs ...", flush=True)
            ls.store_run(path, mo_space(space, method, seed, budget), args.data_dir, method, seed)


def grid_rows(results: Path) -> pd.DataFrame:
    return pd.read_parquet(results / "runs" / "grid-s0.parquet")


def grid_epochs(results: Path) -> float:
    return float(grid_rows(results).cum_epochs.max())


# ------------------------------------------------------------------ analysis


def reference(dense_val_acc: float) -> dict[str, float]:
    """nas_lth's default reference point (``store.pareto.reference_point``), from the dense network's value."""
    return {"val_acc": max(0.0, dense_val_acc - DEFAULT_BELOW_DENSE), "weights_remaining": DEFAULT_WEIGHTS_REFERENCE}


def hv_curve(df: pd.DataFrame, refs: dict[str, float]) -> pd.DataFrame:
    """(cum_epochs, hypervolume) after each evaluated pruned round, in the order the rounds were trained."""
    pts = df[(df["round"] >= 1)].dropna(subset=["val_acc", "weights_remaining"]).sort_values("cum_epochs",
                                                                                              kind="stable")
    hv = [hypervolume_of(pts.iloc[: i + 1], OBJECTIVES, references=refs) for i in range(len(pts))]
    return pd.DataFrame({"cum_epochs": pts.cum_epochs.to_numpy(dtype=float), "hypervolume": hv})


def hv_at(curve: pd.DataFrame, budget: float) -> float:
    """The hypervolume of the rounds finished within ``budget`` epochs (0 before the first)."""
    within = curve[curve.cum_epochs <= budget + 1e-9]
    return float(within.hypervolume.iloc[-1]) if len(within) else 0.0


def epochs_to_reach(curve: pd.DataFrame, target: float) -> float:
    """The epochs spent when the hypervolume first reaches ``target`` (within 1e-9); NaN when it never does."""
    hit = curve[curve.hypervolume >= target - 1e-9]
    return float(hit.cum_epochs.iloc[0]) if len(hit) else math.nan


def grid_hv_in_random_orders(grid: pd.DataFrame, refs: dict[str, float], budgets: list[float], orders: int = 500,
                             seed: int = 0) -> pd.DataFrame:
    """Per (random order of the grid's ladders, budget): the hypervolume of the grid's rounds finished within the
    budget, the grid run by hand and stopped there (``ladder_search.grid_orders``)."""
    pruned = grid[grid["round"] >= 1].reset_index(drop=True)
    rows = []
    for i, finish in enumerate(ls.grid_orders(grid, orders, seed)):
        rows += [{"order": i, "budget_epochs": b,
                  "hypervolume": hypervolume_of(pruned[finish <= b + 1e-9], OBJECTIVES, references=refs)}
                 for b in budgets]
    return pd.DataFrame(rows)


def summarize(args) -> tuple[pd.DataFrame, dict]:
    grid = grid_rows(args.results)
    total = float(grid.cum_epochs.max())
    refs = reference(float(grid.dense_val_acc.iloc[0]))
    target = hv_at(hv_curve(grid, refs), total)
    files = sorted((args.results / "runs_mo").glob("*.parquet"))
    budgets = sorted({round(f * total, 1) for f in args.budget_fractions})
    rows = [{"method": "grid", "searcher_seed": 0, "budget_epochs": round(total, 1), "hypervolume": target,
             "epochs_to_grid_hv": epochs_to_reach(hv_curve(grid, refs), target), "ladders": grid.trial_id.nunique()}]
    for f in files:
        g = pd.read_parquet(f)
        curve = hv_curve(g, refs)
        reach = epochs_to_reach(curve, target)
        for b in budgets:
            rows.append({"method": str(g.method.iloc[0]), "searcher_seed": int(g.searcher_seed.iloc[0]),
                         "budget_epochs": b, "hypervolume": hv_at(curve, b), "epochs_to_grid_hv": reach,
                         "ladders": g[g.cum_epochs <= b + 1e-9].trial_id.nunique(), **ls.reuse_counts(g),
                         "epochs_run": float(g.cum_epochs.max()), "wall_seconds": float(g.wall_seconds.iloc[0])})
    per_run = pd.DataFrame(rows).assign(grid_epochs=total, grid_hypervolume=target,
                                        ref_val_acc=refs["val_acc"], ref_weights=refs["weights_remaining"],
                                        budget_fraction=lambda d: d.budget_epochs / total, **environment())
    emit(per_run, "ladder_pareto", str(args.results / "summary_mo.parquet"), show=[])
    return per_run, verdict(per_run, args.seeds)


def verdict(per_run: pd.DataFrame, wanted_seeds: list[int]) -> dict:
    """The goal (the grid's hypervolume within 1/3 of its epochs) and the paired tests, at the largest budget."""
    total = float(per_run.grid_epochs.iloc[0])
    searches = per_run[per_run.method != "grid"]
    out: dict = {"grid_epochs": total, "grid_hypervolume": float(per_run.grid_hypervolume.iloc[0])}
    if searches.empty:
        return {**out, "complete": False}
    top = searches.budget_epochs.max()
    at = searches[searches.budget_epochs == top].pivot_table(index="searcher_seed", columns="method",
                                                            values="hypervolume")
    reach = searches.groupby(["method", "searcher_seed"]).epochs_to_grid_hv.first()
    out["budget_epochs"] = float(top)
    out["reached_within_a_third"] = {m: int((r <= total / 3 + 1e-9).sum()) for m, r in reach.groupby(level=0)}
    out["seeds"] = {m: int(r.size) for m, r in reach.groupby(level=0)}
    out.update(ls.paired_vs_tpe(at, lambda a, b: a - b, "greater", "median_difference"))
    out["complete"] = all(set(wanted_seeds) <= set(searches[searches.method == m].searcher_seed)
                          for m in ls.METHODS)
    return out


def by_hand(results: Path, per_run: pd.DataFrame) -> pd.DataFrame:
    """The grid in random orders at the searches' budgets, with the reference point of ``per_run``."""
    first = per_run.iloc[0]
    return grid_hv_in_random_orders(grid_rows(results), {"val_acc": float(first.ref_val_acc),
                                                         "weights_remaining": float(first.ref_weights)},
                                    ls.search_budgets(per_run))


def render(per_run: pd.DataFrame, v: dict, wanted_seeds: list[int], orders: pd.DataFrame | None = None) -> str:
    """The generated page (``reports/ladder_search/pareto.md``)."""
    total, target = v["grid_epochs"], v["grid_hypervolume"]
    first = per_run.iloc[0]
    searches = per_run[per_run.method != "grid"]
    runs_in = searches.drop_duplicates(["method", "searcher_seed"])
    state = "Complete" if v["complete"] else (
        f"PARTIAL ({len(runs_in)} of {len(ls.METHODS) * len(wanted_seeds)} (method, searcher seed) runs; "
        f"seeds {min(wanted_seeds)}-{max(wanted_seeds)} wanted)")
    lines = ["# Ladder search benchmark, multi-objective: the table (generated)", "",
             "Generated by `python -m benchmarks.ladder_pareto --summary-only` from "
             "`benchmarks/results/ladder_search/`; do not edit.", "",
             f"{state}: hypervolume of validation accuracy against weights remaining (log10), reference point "
             f"(val_acc {first.ref_val_acc:.4f} = dense - 5 pp, {100 * first.ref_weights:.0f} % of the weights). "
             f"The grid of LTH ladders reaches {target:.4f} after all of its {total:.1f} epochs.", "",
             "| method | budget (epochs) | share of the grid's | searcher seeds | hypervolume: median (range) "
             "| ladders (median) |", "|---|---:|---:|---:|---|---:|"]
    for (m, b), g in searches.groupby(["method", "budget_epochs"], sort=True):
        h = g.hypervolume
        lines.append(f"| {m} | {b:.1f} | {b / total:.2f} | {g.searcher_seed.nunique()} | {h.median():.4f} "
                     f"({h.min():.4f}-{h.max():.4f}) | {g.ladders.median():.0f} |")
    lines += ["", f"Epochs until a search first reaches the grid's hypervolume ({target:.4f}); the goal is <= "
              f"{total / 3:.1f} (1/3 of the grid's):", "",
              "| method | searcher seeds | reached within 1/3 of the grid's epochs | epochs when reached: median "
              "(range) |", "|---|---:|---:|---|"]
    for m, g in searches.groupby("method", sort=True):
        r = g.groupby("searcher_seed").epochs_to_grid_hv.first()
        hit = r.dropna()
        span = f"{hit.median():.1f} ({hit.min():.1f}-{hit.max():.1f})" if len(hit) else "never"
        lines.append(f"| {m} | {len(r)} | {v['reached_within_a_third'].get(m, 0)} of {len(r)} | {span} |")
    if orders is not None and len(orders):
        lines += ["", f"The grid run by hand at the same budgets: its ladders in {orders.order.nunique()} random "
                  "orders (numpy seed 0), stopped at the budget:", "",
                  "| budget (epochs) | share of the grid's | orders reaching the grid's final hypervolume "
                  "| hypervolume: median (range) |", "|---:|---:|---:|---|"]
        for b, g in orders.groupby("budget_epochs"):
            h = g.hypervolume
            lines.append(f"| {b:.1f} | {b / total:.2f} | {100 * (h >= target - 1e-9).mean():.0f} % | "
                         f"{h.median():.4f} ({h.min():.4f}-{h.max():.4f}) |")
    lines += ["", "Paired over searcher seeds at the largest budget (hypervolume; Wilcoxon signed-rank, one-sided: "
              "tpe_rounds larger):", ""]
    for other in ("random_fifo", "random_rounds"):
        t = v.get(f"vs_{other}")
        if t:
            lines.append(f"- tpe_rounds vs {other}: {t['n']} seeds, median difference {t['median_difference']:+.4f}, "
                         f"p = {t['p']:.3g}")
    return "\n".join(lines) + "\n"


def figure(per_run: pd.DataFrame, path: Path, orders: pd.DataFrame | None = None) -> None:
    from benchmarks.search_quality import band_figure

    searches = per_run[per_run.method != "grid"]
    if searches.empty:
        return
    units = {}
    if orders is not None and len(orders):
        name = "grid by hand, random order"
        searches = pd.concat([searches, orders.rename(columns={"order": "searcher_seed"}).assign(method=name)],
                             ignore_index=True)
        units[name] = "orders"
    band_figure(searches, "hypervolume", "hypervolume (val_acc x log10 weights)",
                "LeNet-300-100 / MNIST: front found by ladder searches", path,
                hline=(float(per_run.grid_hypervolume.iloc[0]), "grid of LTH ladders (all its epochs)"), units=units)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(5)),
                   help="searcher seeds (5: each search costs about as much as ladder_search's, on 2 cores)")
    p.add_argument("--methods", nargs="+", default=list(ls.METHODS), choices=list(ls.METHODS))
    p.add_argument("--fraction", type=float, default=1 / 3, help="the searches' budget, a fraction of the grid's")
    p.add_argument("--budget-fractions", type=float, nargs="+", default=[1 / 9, 1 / 6, 1 / 3])
    p.add_argument("--summary-only", action="store_true", help="no new search runs")
    p.add_argument("--results", type=Path, default=OUT, help="ladder_search's results folder (its grid run)")
    p.add_argument("--space", type=Path, default=ls.SPACE, help="another space of the same form (a smoke test)")
    args = p.parse_args(argv)
    if not (args.results / "runs" / "grid-s0.parquet").exists():
        raise SystemExit(f"{args.results}/runs/grid-s0.parquet is missing: run benchmarks.ladder_search's grid first")
    if not args.summary_only:
        runs(args, load_space(args.space))
    per_run, v = summarize(args)
    print(json.dumps(v, indent=1, default=str))
    out = REPORT if args.results == OUT else args.results / "report"
    out.mkdir(parents=True, exist_ok=True)
    orders = by_hand(args.results, per_run) if (per_run.method != "grid").any() else None
    (out / "pareto.md").write_text(render(per_run, v, args.seeds, orders))
    figure(per_run, out / "ladder_pareto.png", orders)
    print(f"wrote {out / 'pareto.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
