"""A benchmark where the search strategy can win (issue 26 item 6): the sparsest LeNet-300-100 / MNIST ticket whose
test accuracy, confirmed with fresh seeds, is within 0.5 pp of the dense network's - searched over pruning ladders
(``strategy.fidelity: rounds``) at equal budgets counted in training epochs.

Methods, each a real search (local Ray, Optuna, Parquet) over ``benchmarks/spaces/ladder_search.yaml``
(criterion x stopping point x rewind point x per-round rate, ladders down to 0.5 % of the weights, 2 epochs per
round, objective ``sparsest_within: 0.005``), one 1-thread ladder at a time:

- ``grid``: what a researcher runs by hand - one LTH ladder (end of training, reset to init, 20 %/round fc, 10 %
  output) per criterion of the space (Zhou et al.'s ten, SNIP, SynFlow), each to the floor. Its
  ``large_final`` ladder is the single LTH ladder.
- ``tpe_rounds``: TPE + the scheduler over rounds (ASHA at levels of weights remaining) + shared round prefixes;
- ``random_rounds``: random ladders + the same scheduler and sharing;
- ``random_fifo``: random ladders, every one to its floor, no prefix sharing.

The searches end at ``--fraction`` of the grid's epochs (``strategy.epoch_budget``: every round a ladder trained,
the dense run once, reused rounds not again). A method *recommends*, after B epochs, the sparsest round of any of
its ladders whose validation accuracy was within 0.5 pp of the dense network's; each recommended ladder is
trained again up to that round with fresh seeds (``--confirm-seeds``; the search's seed is 0), and the method's
*confirmed ticket* is the sparsest round up to the recommended one whose mean test accuracy over those seeds is
within 0.5 pp of the dense network's mean (over the same seeds); with none, the dense network (100 %).

Resumable: each (method, searcher seed) run is one file ``benchmarks/results/ladder_search/runs/<method>-s<seed>
.parquet`` (one row per round of every ladder, with the epochs spent when it finished), written whole when the
search ends; confirmations are rows of ``confirm.parquet`` per (ladder, seed). A rerun skips what exists.

    python -m benchmarks.ladder_search [--seeds 0 ... 9] [--methods ...] [--fraction 0.3333]
    python -m benchmarks.ladder_search --summary-only [--jobs 2]   # confirmations, 2 processes of 1 thread
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import REPO, RESULTS, append_parquet, default_data_dir, emit, environment
from nas_lth.space import load_space
from nas_lth.space.schema import SearchSpace

SPACE = REPO / "benchmarks" / "spaces" / "ladder_search.yaml"
OUT = RESULTS / "ladder_search"
REPORT = REPO / "reports" / "ladder_search"
WITHIN = 0.005
METHODS = {  # name -> (searcher, scheduler, share round prefixes)
    "tpe_rounds": ("tpe", "asha", True),
    "random_rounds": ("random", "asha", True),
    "random_fifo": ("random", "fifo", False),
}
SEARCHED = ("criterion", "stop_at", "rewind_to", "prune_rate.fc")
CONFIRM_SEEDS = [1, 2, 3]
CONFIRM_COLUMNS = ["ladder", "seed", "round", "weights_remaining", "val_acc", "test_acc", "wall_seconds"]


# ------------------------------------------------------------------ one run per (method, searcher seed)


def method_space(space: SearchSpace, method: str, seed: int, epoch_budget: float | None) -> SearchSpace:
    d = space.to_dict()
    if method == "grid":
        criteria = d["search"]["criterion"]["choice"]
        d["search"] = {"criterion": {"choice": criteria}}
        d["fixed"].update(stop_at="end", rewind_to=0)
        d["fixed"]["prune_rate"] = {**d["fixed"].get("prune_rate", {}), "fc": 0.2}
        d["strategy"].update(searcher="grid", scheduler="fifo", seed=seed, num_samples=len(criteria))
    else:
        searcher, scheduler, share = METHODS[method]
        d["strategy"].update(searcher=searcher, scheduler=scheduler, share_rounds=share, seed=seed,
                             epoch_budget=epoch_budget)
    return SearchSpace.from_dict(d, space.source)


def search_run(sp: SearchSpace, data_dir) -> pd.DataFrame:
    """Run the search; one row per evaluated round of every ladder, in the order the work was done, with what
    it cost (``cost_epochs``: 0 for a reused round) and the epochs spent when it was done (``cum_epochs``)."""
    from nas_lth.store import read
    from nas_lth.strategy import SearchOptions, run_search

    with tempfile.TemporaryDirectory() as storage:
        run_search(SearchOptions(space=sp, name="q", storage=storage, data_dir=data_dir, dashboard=False,
                                 num_cpus=1, progress_every_s=600.0, quiet=True))
        res = read(str(Path(storage) / "q"))
    return ordered_rounds(res.trials, res.rounds)


def ordered_rounds(trials: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """The rounds in the order they were trained (one ladder at a time: trials by the time they finished, rounds
    in order), each costing what it trained; what a ladder trained beyond its rows (a round cut short when the
    budget ran out) is charged at its end."""
    trials = trials.sort_values("finished_at").reset_index(drop=True)
    out, spent = [], 0.0
    for t in trials.itertuples():
        ipe = float(t.iterations_per_epoch)
        mine = rounds[rounds.trial_id == t.trial_id].sort_values("round")
        charged = 0.0
        for r in mine.itertuples():
            cost = 0.0 if r.reused else float(r.iterations_trained) / ipe
            charged += cost
            spent += cost
            out.append({"trial_id": t.trial_id, "trial_status": t.status, "round": int(r.round),
                        "weights_remaining": r.weights_remaining, "val_acc": r.val_acc, "test_acc": r.test_acc,
                        "reused": bool(r.reused), "cost_epochs": cost, "cum_epochs": spent,
                        "ladder": ladder_key(t), **{k.replace(".", "_"): _field(t, k) for k in SEARCHED}})
        rest = float(t.iterations_trained or 0) / ipe - charged
        if rest > 1e-9:
            spent += rest
            out.append({"trial_id": t.trial_id, "trial_status": t.status, "round": -1, "cost_epochs": rest,
                        "cum_epochs": spent, "ladder": ladder_key(t)})
    df = pd.DataFrame(out)
    dense = df[(df["round"] == 0)].val_acc.dropna()
    dense_test = df[(df["round"] == 0)].test_acc.dropna()
    return df.assign(dense_val_acc=float(dense.iloc[0]), dense_test_acc=float(dense_test.iloc[0]))


def _field(t, key: str):
    col = {"prune_rate.fc": "prune_rate_fc"}.get(key, key)
    return getattr(t, col)


def ladder_key(t) -> str:
    """A ladder's searched values (its recipe without the round cap), as JSON: what confirmation trains again."""
    kinds = {"criterion": str, "stop_at": str, "rewind_to": int, "prune_rate.fc": float}
    return json.dumps({k: kinds[k](_field(t, k)) for k in SEARCHED}, sort_keys=True)


def runs(args, space: SearchSpace) -> None:
    """The grid first (its epochs set the searches' budget), then every (method, seed) not yet stored, seed-major."""
    folder = OUT / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [("grid", 0)] + [(m, s) for s in args.seeds for m in args.methods]
    for method, seed in todo:
        path = folder / f"{method}-s{seed}.parquet"
        if path.exists():
            continue
        budget = None if method == "grid" else args.fraction * grid_epochs()
        print(f"{method}, searcher seed {seed}" + (f", {budget:.1f} epochs" if budget else "") + " ...", flush=True)
        store_run(path, method_space(space, method, seed, budget), args.data_dir, method, seed)


def store_run(path: Path, sp: SearchSpace, data_dir, method: str, seed: int) -> None:
    """Run one search and write its rows (:func:`search_run`) whole to ``path``: a temporary name, then renamed."""
    t0 = time.perf_counter()
    df = search_run(sp, data_dir).assign(method=method, searcher_seed=seed, wall_seconds=time.perf_counter() - t0)
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    print(f"  {df.trial_id.nunique()} ladders, {len(df)} rows, {df.cum_epochs.max():.1f} epochs, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


def paired(at: pd.DataFrame, a: str, b: str, diff, alternative: str, name: str) -> dict | None:
    """Method ``a`` against ``b`` over the searcher seeds of ``at`` (seed x method): ``diff(a, b)`` per seed, its
    median as ``name``, and the one-sided Wilcoxon signed-rank p (NaN below five seeds or without a nonzero
    difference); None when either method is missing."""
    from scipy.stats import wilcoxon

    if a not in at or b not in at:
        return None
    both = at[[a, b]].dropna()
    d = diff(both[a], both[b])
    p = float(wilcoxon(d, alternative=alternative).pvalue) if (d != 0).any() and len(d) >= 5 else math.nan
    return {"n": len(both), name: float(d.median()), "p": p}


def paired_vs_tpe(at: pd.DataFrame, diff, alternative: str, name: str) -> dict:
    """tpe_rounds against each random method present in ``at``, paired over searcher seeds (``paired``)."""
    out = {}
    for other in ("random_fifo", "random_rounds"):
        t = paired(at, "tpe_rounds", other, diff, alternative, name)
        if t:
            out[f"vs_{other}"] = t
    return out


def grid_epochs() -> float:
    path = OUT / "runs" / "grid-s0.parquet"
    return float(pd.read_parquet(path).cum_epochs.max())


# ------------------------------------------------------------------ analysis


def recommend(df: pd.DataFrame, budget: float) -> tuple[str, int, float] | None:
    """(ladder, round, weights remaining) a method recommends after ``budget`` epochs: the sparsest round within
    the bound on validation (ties: the better validation accuracy)."""
    ok = df[(df["round"] >= 1) & (df.cum_epochs <= budget + 1e-9) & (df.val_acc >= df.dense_val_acc - WITHIN)]
    if ok.empty:
        return None
    best = ok.sort_values(["weights_remaining", "val_acc"], ascending=[True, False]).iloc[0]
    return str(best.ladder), int(best["round"]), float(best.weights_remaining)


def grid_orders(grid: pd.DataFrame, orders: int, seed: int = 0):
    """The grid run by hand in ``orders`` random orders of its ladders (numpy seed ``seed``): per order, the epochs
    spent when each pruned round finished (aligned with the rows of ``grid[grid["round"] >= 1]``). The dense run
    is paid once, before the first ladder, as in the grid's own run; the grid ran its ladders in one arbitrary
    order, which decides what it has found at a budget smaller than its own."""
    rng = np.random.default_rng(seed)
    dense = float(grid[grid["round"] == 0].cost_epochs.max())
    pruned = grid[grid["round"] >= 1].reset_index(drop=True)
    ladders = []  # per ladder: its rows, the epochs after each of its rounds, its total
    for _, g in pruned.groupby("trial_id", sort=False):
        g = g.sort_values("round")
        spent = g.cost_epochs.cumsum().to_numpy(dtype=float)
        ladders.append((g.index.to_numpy(), spent, float(spent[-1])))
    for _ in range(orders):
        finish, start = np.empty(len(pruned)), dense
        for j in rng.permutation(len(ladders)):
            rows, spent, total = ladders[j]
            finish[rows] = start + spent
            start += total
        yield finish


def search_budgets(per_run: pd.DataFrame) -> list[float]:
    """The budgets the searches' answers are read at (every method but the grid)."""
    return sorted(per_run[per_run.method != "grid"].budget_epochs.unique())


def grid_in_random_orders(grid: pd.DataFrame, budgets: list[float], orders: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (random order of the grid's ladders, budget): the weights of the answer ``recommend`` would give after
    that many epochs (1.0 when none); see ``grid_orders``."""
    pruned = grid[grid["round"] >= 1]
    ok = np.where(pruned.val_acc >= pruned.dense_val_acc - WITHIN, pruned.weights_remaining, 1.0)
    rows = []
    for i, finish in enumerate(grid_orders(grid, orders, seed)):
        rows += [{"order": i, "budget_epochs": b, "weights": float(ok[finish <= b + 1e-9].min(initial=1.0))}
                 for b in budgets]
    return pd.DataFrame(rows)


def confirm(wanted: dict[str, int], seeds: list[int], space: SearchSpace, data_dir, jobs: int = 1) -> pd.DataFrame:
    """Every round up to ``wanted[ladder]`` of each ladder trained again with each seed (cached per ladder and seed;
    a ladder stored to fewer rounds is trained again to the deeper one). ``jobs`` 1-thread processes train
    (ladder, seed) pairs side by side; this process alone writes the file, after each pair."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    path = OUT / "confirm.parquet"
    done = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=CONFIRM_COLUMNS)
    todo = []
    for ladder, last in sorted(wanted.items()):
        for seed in seeds:
            have = done[(done.ladder == ladder) & (done.seed == seed)]
            if not (len(have) and have["round"].max() >= last):
                todo.append((ladder, last, seed))
    print(f"confirmations: {len(todo)} (ladder, seed) pairs to train, {jobs} at a time", flush=True)

    def store(new: pd.DataFrame) -> None:  # a pair trained again (deeper) replaces its earlier rows
        append_parquet(path, new, replace=["ladder", "seed"])

    if jobs <= 1:
        for ladder, last, seed in todo:
            store(confirm_one(ladder, last, seed, space, data_dir))
    else:
        # spawn: a forked child would inherit this process's torch thread pool and Ray/Optuna state
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            for f in as_completed([pool.submit(confirm_one, *pair, space, data_dir) for pair in todo]):
                store(f.result())
    return pd.read_parquet(path) if path.exists() else done


def confirm_one(ladder: str, last: int, seed: int, space: SearchSpace, data_dir) -> pd.DataFrame:
    """One ladder's rounds 0..``last`` trained with ``seed`` on one thread: its dense and ticket rows."""
    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun

    torch.set_num_threads(1)
    fields = json.loads(ladder)
    sampled = {k: (int(v) if k == "stop_at" and str(v).isdigit() else v) for k, v in fields.items()}
    recipe = space.recipe({**sampled, "rounds": last, "seed": seed})
    t0 = time.perf_counter()
    data = load_dataset(recipe.dataset, data_dir, seed=seed, val_size=recipe.val_size,
                        options=recipe.dataset_options or None)
    rows = TicketRun(recipe, data, eval_at_epoch_end=True).run()
    wall = time.perf_counter() - t0
    print(f"  confirmed seed {seed}: {fields} to round {last} [{wall:.0f} s]", flush=True)
    return pd.DataFrame([{"ladder": ladder, "seed": seed, "round": r.round, "weights_remaining": r.weights_remaining,
                          "val_acc": r.metrics.get("val_acc"), "test_acc": r.metrics.get("test_acc"),
                          "wall_seconds": wall} for r in rows if r.variant in ("dense", recipe.reinit)],
                        columns=CONFIRM_COLUMNS)


def confirmed_ticket(conf: pd.DataFrame, ladder: str, last: int, seeds: list[int]) -> tuple[float, float, float]:
    """(weights remaining, mean test accuracy, dense mean test accuracy) of the sparsest round <= ``last`` of
    ``ladder`` whose mean test accuracy over ``seeds`` is within the bound of the dense network's mean; the dense
    network (1.0) when no round is."""
    c = conf[(conf.ladder == ladder) & conf.seed.isin(seeds) & (conf["round"] <= last)]
    by_round = c.groupby("round").agg(weights=("weights_remaining", "first"), test=("test_acc", "mean"),
                                      n=("seed", "nunique"))
    by_round = by_round[by_round.n == len(seeds)]
    if 0 not in by_round.index:
        return math.nan, math.nan, math.nan
    dense = float(by_round.loc[0, "test"])
    ok = by_round[(by_round.index >= 1) & (by_round.test >= dense - WITHIN)]
    if ok.empty:
        return 1.0, dense, dense
    best = ok.sort_values("weights").iloc[0]
    return float(best.weights), float(best.test), dense


def reuse_counts(g: pd.DataFrame) -> dict:
    """What a run reused: ladders that replayed a recipe already run (every row reused: the searcher proposed a
    completed recipe again; nothing trained), and rounds continued from another ladder's stored prefix."""
    rows = g[g["round"] >= 0]
    reused = rows.reused.fillna(False).astype(bool)
    whole = reused.groupby(rows.trial_id).all()
    replayed = set(whole.index[whole])
    prefix = reused & (rows["round"] >= 1) & ~rows.trial_id.isin(replayed)
    return {"replayed_ladders": len(replayed), "reused_rounds": int(prefix.sum())}


def summarize(args, space: SearchSpace, confirm_now: bool) -> pd.DataFrame:
    files = sorted((OUT / "runs").glob("*.parquet"))
    if not files:
        raise SystemExit("no runs yet: run without --summary-only first")
    runs_ = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    total = grid_epochs()
    budgets = sorted({round(f * total, 1) for f in args.budget_fractions})
    recs = {}
    for (m, s), g in runs_.groupby(["method", "searcher_seed"]):
        for b in (budgets if m != "grid" else [round(total, 1)]):
            recs[(m, s, b)] = recommend(g, b)
    wanted: dict[str, int] = {}
    for r in recs.values():
        if r is not None:
            wanted[r[0]] = max(wanted.get(r[0], 0), r[1])
    conf = confirm(wanted, args.confirm_seeds, space, args.data_dir, args.jobs) if confirm_now else (
        pd.read_parquet(OUT / "confirm.parquet") if (OUT / "confirm.parquet").exists()
        else pd.DataFrame(columns=CONFIRM_COLUMNS))
    rows = []
    for (m, s, b), r in recs.items():
        g = runs_[(runs_.method == m) & (runs_.searcher_seed == s)]
        within = g[g.cum_epochs <= b + 1e-9]  # what the run had done by the budget
        w, test, dense = confirmed_ticket(conf, r[0], r[1], args.confirm_seeds) if r else (1.0, math.nan, math.nan)
        rows.append({"method": m, "searcher_seed": s, "budget_epochs": b, "budget_fraction": b / total,
                     "recommended_ladder": r[0] if r else None, "recommended_round": r[1] if r else None,
                     "recommended_weights": r[2] if r else 1.0, "confirmed_weights": w, "confirmed_test_acc": test,
                     "confirmed_dense_test_acc": dense, "ladders": within.trial_id.nunique(), **reuse_counts(within),
                     "epochs_run": float(g.cum_epochs.max()), "wall_seconds": float(g.wall_seconds.iloc[0])})
    per_run = pd.DataFrame(rows).assign(grid_epochs=total, **environment())
    emit(per_run, "ladder_search", str(OUT / "summary.parquet"), show=[])
    return per_run


VIEWS = {  # column of the per-run table -> what it is
    "confirmed_weights": "confirmed weights % (test, seeds {seeds})",
    "recommended_weights": "search-time weights % (validation, the search's seed 0)",
}


def verdict(per_run: pd.DataFrame, wanted_seeds: list[int], col: str = "confirmed_weights") -> dict:
    """The issue's goals against the measured numbers, at the largest search budget, on ``col`` (the confirmed
    ticket's weights, or the search-time answer's); runs without a value there (not confirmed yet) left out."""
    grid = per_run[per_run.method == "grid"]
    grid_w = float(grid[col].iloc[0]) if len(grid) else math.nan
    top = per_run[per_run.method != "grid"].budget_epochs.max()
    at = per_run[per_run.budget_epochs == top].pivot_table(index="searcher_seed", columns="method", values=col)
    out = {"grid_weights": grid_w, "budget_epochs": top, "seeds": sorted(at.index)}
    if "tpe_rounds" in at and np.isfinite(grid_w):
        tpe = at.tpe_rounds.dropna()
        out["tpe_at_least_as_sparse_as_grid"] = f"{int((tpe <= grid_w + 1e-12).sum())} of {len(tpe)}"
    out.update(paired_vs_tpe(at, lambda a, b: np.log10(a) - np.log10(b), "less", "median_log10_ratio"))
    out["complete"] = set(wanted_seeds) <= set(at.index) and bool(at.notna().all().all())
    return out


def _view(per_run: pd.DataFrame, wanted_seeds: list[int], col: str) -> list[str]:
    """One table (method x budget: median and range of ``col`` over searcher seeds, how often at least as sparse
    as the grid's) and the paired tests at the largest budget."""
    v = verdict(per_run, wanted_seeds, col)
    total = float(per_run.grid_epochs.iloc[0])
    grid_w = v["grid_weights"]
    name = VIEWS[col].format(seeds=", ".join(map(str, CONFIRM_SEEDS)))
    lines = [f"| method | budget (epochs) | share of the grid's | searcher seeds | {name}: median (range) "
             "| at least as sparse as the grid | ladders run (median) | prefix rounds reused (median) "
             "| replayed ladders (median) |", "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for (m, b), g in per_run.groupby(["method", "budget_epochs"], sort=True):
        g = g.dropna(subset=[col])
        if g.empty:
            continue
        w = 100 * g[col]
        le = f"{int((g[col] <= grid_w + 1e-12).sum())} of {len(g)}" if np.isfinite(grid_w) else "- (grid not yet)"
        lines.append(f"| {m} | {b:.1f} | {b / total:.2f} | {g.searcher_seed.nunique()} | {w.median():.2f} "
                     f"({w.min():.2f}-{w.max():.2f}) | {le} | {g.ladders.median():.0f} | "
                     f"{g.reused_rounds.median():.0f} | "
                     f"{g.replayed_ladders.median():.0f} |")
    lines += ["", f"Paired over searcher seeds at the largest budget ({v['budget_epochs']:.1f} epochs; log10 of the "
              "weights; Wilcoxon signed-rank, one-sided: tpe_rounds sparser):", ""]
    for other in ("random_fifo", "random_rounds"):
        t = v.get(f"vs_{other}")
        if t:
            lines.append(f"- tpe_rounds vs {other}: {t['n']} seeds, median log10 ratio {t['median_log10_ratio']:+.3f}, "
                         f"p = {t['p']:.3g}")
    lines += ["", "The scheduler alone, at every budget (random_rounds vs random_fifo: the same random sampler and "
              "seed, ASHA over rounds and shared prefixes against neither; one-sided: random_rounds sparser):", ""]
    for b, g in per_run[per_run.method != "grid"].groupby("budget_epochs"):
        at = g.pivot_table(index="searcher_seed", columns="method", values=col)
        t = paired(at, "random_rounds", "random_fifo", lambda x, y: np.log10(x) - np.log10(y), "less", "m")
        if t:
            lines.append(f"- {b:.1f} epochs: {t['n']} seeds, median log10 ratio {t['m']:+.3f}, p = {t['p']:.3g}")
    return lines


def _grid_orders_view(grid: pd.DataFrame, per_run: pd.DataFrame, orders: pd.DataFrame) -> list[str]:
    """The grid at the searches' budgets, over random orders of its ladders (``orders``: what running it by hand
    with a third of its epochs finds depends on which ladders come first)."""
    total = float(per_run.grid_epochs.iloc[0])
    final = recommend(grid, total + 1)
    found = grid[(grid.ladder == final[0]) & (grid["round"] == final[1])].cum_epochs.iloc[0]
    order = list(dict.fromkeys(grid.sort_values("cum_epochs").ladder))
    n = orders.order.nunique()
    lines = ["### The grid run by hand at the same budgets", "",
             f"The grid's {len(order)} ladders in {n} random orders (numpy seed 0), each stopped at the budget; its "
             f"answer as the searches' are chosen (validation, seed 0). Its own run found its final answer "
             f"({100 * final[2]:.2f} %, {json.loads(final[0])['criterion']}) after {found:.0f} epochs: that ladder "
             f"ran as number {order.index(final[0]) + 1} of {len(order)}.", "",
             "| budget (epochs) | share of the grid's | orders at least as sparse as the grid's final answer "
             "| weights %: median (range) |", "|---:|---:|---:|---|"]
    for b, g in orders.groupby("budget_epochs"):
        w = 100 * g.weights
        lines.append(f"| {b:.1f} | {b / total:.2f} | {100 * (g.weights <= final[2] + 1e-12).mean():.0f} % | "
                     f"{w.median():.2f} ({w.min():.2f}-{w.max():.2f}) |")
    return lines + ["", *_ladder_quality_view(grid, per_run, final[2])]


def _ladder_quality_view(grid: pd.DataFrame, per_run: pd.DataFrame, grid_w: float) -> list[str]:
    """How good single ladders are: the sparsest round within the bound (validation, seed 0) of each of the
    grid's ladders and of the random ladders random_fifo ran to their floor (uniform draws from the space)."""
    files = sorted((OUT / "runs").glob("random_fifo-s*.parquet"))
    pools = {"the grid's ladders (20 %/round, end, reset to init)": grid}
    if files:
        pools["random ladders of the space (random_fifo, all seeds)"] = pd.concat(
            [pd.read_parquet(f) for f in files], ignore_index=True).assign(
            trial_id=lambda d: d.searcher_seed.astype(str) + "/" + d.trial_id)
    lines = ["### Single ladders", "",
             "The sparsest round within 0.5 pp of dense (validation, seed 0) of each ladder run to its floor (not cut "
             "short by a budget):", "",
             "| ladders | n | at least as sparse as the grid's final answer | at most 1.5 % of the weights "
             "| median weights % |", "|---|---:|---:|---:|---:|"]
    for name, df in pools.items():
        df = df[df["round"] >= 0]
        whole = df[df.trial_status == "completed"]  # not a ladder the budget cut short
        ok = whole[(whole["round"] >= 1) & (whole.val_acc >= whole.dense_val_acc - WITHIN)]
        best = ok.groupby("trial_id").weights_remaining.min().reindex(whole.trial_id.unique()).fillna(1.0)
        lines.append(f"| {name} | {len(best)} | {100 * (best <= grid_w + 1e-12).mean():.0f} % | "
                     f"{100 * (best <= 0.015).mean():.0f} % | {100 * best.median():.2f} |")
    return lines


def render(per_run: pd.DataFrame, wanted_seeds: list[int], grid: pd.DataFrame | None = None,
           orders: pd.DataFrame | None = None) -> str:
    """The generated table page (``reports/ladder_search/table.md``): per method and budget, the weights remaining
    of the answer over searcher seeds (median, range) and how often it is at least as sparse as the grid's - as
    the search measured it (validation, one seed) and as confirmed (test, fresh seeds) where confirmed."""
    total = float(per_run.grid_epochs.iloc[0])
    searches = per_run[per_run.method != "grid"]
    done = sorted(searches.searcher_seed.unique())
    confirmed = per_run.confirmed_weights.notna()
    runs_done = set(wanted_seeds) <= set(done) and searches.groupby("method").searcher_seed.nunique().eq(
        len(wanted_seeds)).all()
    head = (f"{'Every' if runs_done else 'PARTIAL: not every'} (method, searcher seed) run of seeds "
            f"{min(wanted_seeds)}-{max(wanted_seeds)} is in ({len(done)} seeds have at least one); "
            f"{int(confirmed.sum())} of {len(per_run)} (method, seed, budget) answers confirmed. The grid ran "
            f"{total:.1f} epochs.")
    lines = ["# Ladder search benchmark: the table (generated)", "",
             "Generated by `python -m benchmarks.ladder_search --summary-only` from "
             "`benchmarks/results/ladder_search/`; do not edit.", "", head, "",
             "## As the searches measured it (validation accuracy within 0.5 pp of dense, the search's seed)", ""]
    lines += _view(per_run, wanted_seeds, "recommended_weights")
    if grid is not None and orders is not None:  # the grid's run, and it in random orders (grid_in_random_orders)
        lines += [""] + _grid_orders_view(grid, per_run, orders)
    lines += ["", "## Confirmed (test accuracy within 0.5 pp of dense, mean over fresh seeds)", ""]
    if confirmed.any():
        if not confirmed.all():
            lines += ["PARTIAL: only the confirmed answers are counted below.", ""]
        lines += _view(per_run, wanted_seeds, "confirmed_weights")
    else:
        lines.append("Not confirmed yet.")
    return "\n".join(lines) + "\n"


def figure(per_run: pd.DataFrame, out: Path, orders: pd.DataFrame | None = None) -> list[Path]:
    """The weights of each method's answer against the budget (median and range over searcher seeds), the grid's
    as a line: as the searches measured it (``ladder_search_val.png``, with the grid run by hand in random
    orders and stopped at the same budgets) and, where confirmed, as confirmed (``ladder_search.png``, confirmed
    answers only)."""
    from benchmarks.search_quality import band_figure

    title = "LeNet-300-100 / MNIST: sparsest ticket within 0.5 pp of dense"
    made = []
    for col, name, label in (("recommended_weights", "ladder_search_val.png", "search-time answer (validation)"),
                             ("confirmed_weights", "ladder_search.png", "confirmed ticket (test, fresh seeds)")):
        rows = per_run.dropna(subset=[col])
        runs_ = rows[rows.method != "grid"]
        if runs_.empty:
            continue
        grid_row = rows[rows.method == "grid"]
        part = "" if len(rows) == len(per_run) else f"\nPARTIAL: {len(rows)} of {len(per_run)} answers"
        runs_ = runs_.assign(pct=100 * runs_[col])
        units = {}
        if orders is not None and col == "recommended_weights":
            by_hand = "grid by hand, random order"
            runs_ = pd.concat([runs_, pd.DataFrame({"method": by_hand, "searcher_seed": orders.order,
                                                    "budget_epochs": orders.budget_epochs,
                                                    "pct": 100 * orders.weights})], ignore_index=True)
            units[by_hand] = "orders"
        band_figure(runs_, "pct", f"{label}: weights remaining (%)", title + part, out / name,
                    hline=(float(grid_row[col].iloc[0]) * 100 if len(grid_row) else math.nan,
                           "grid of LTH ladders (all its epochs)"), logy=True, units=units)
        made.append(out / name)
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="searcher seeds")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--fraction", type=float, default=1 / 3, help="the searches' budget, a fraction of the grid's")
    p.add_argument("--budget-fractions", type=float, nargs="+", default=[1 / 9, 1 / 6, 1 / 3])
    p.add_argument("--confirm-seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--jobs", type=int, default=1, help="confirmations trained side by side (1 thread each)")
    p.add_argument("--no-confirm", action="store_true", help="summarise without training confirmations")
    p.add_argument("--summary-only", action="store_true", help="no new search runs")
    p.add_argument("--results", type=Path, default=OUT)
    p.add_argument("--space", type=Path, default=SPACE, help="another space of the same form (a smoke test)")
    args = p.parse_args(argv)
    globals()["OUT"] = args.results
    space = load_space(args.space)
    if not args.summary_only:
        runs(args, space)
    globals()["CONFIRM_SEEDS"] = args.confirm_seeds
    per_run = summarize(args, space, confirm_now=not args.no_confirm)
    for col in VIEWS:
        print(col, json.dumps(verdict(per_run, args.seeds, col), indent=1, default=str))
    out = REPORT if args.results == RESULTS / "ladder_search" else args.results / "report"
    out.mkdir(parents=True, exist_ok=True)
    grid = pd.read_parquet(OUT / "runs" / "grid-s0.parquet")
    orders = grid_in_random_orders(grid, search_budgets(per_run))
    (out / "table.md").write_text(render(per_run, args.seeds, grid, orders))
    made = figure(per_run, out, orders)
    print(f"wrote {out / 'table.md'} and {', '.join(str(p) for p in made)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
