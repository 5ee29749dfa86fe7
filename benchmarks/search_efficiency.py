"""Training epochs and wall time to find a ticket at <= 7 % weights within 0.5 pp of the dense
validation accuracy: nas_lth's search (shared dense trajectory + ASHA + early stopping points)
against sequential iterative magnitude pruning with full training per round (the LTH procedure).

Both run in this one process, one after the other, on LeNet-300-100 / MNIST with the same training
settings and the same budget per training run (``--budget`` epochs; the paper's 50K iterations do not
fit 2 CPU cores). The baseline stops at the first round that meets the target; the search stops
(``strategy.stop_when``) once a full-budget ticket meets it. Epochs count every training iteration of
every trial, including trials still running when the search stopped (up to their last report, at most
one epoch short), and the shared dense trajectory once, divided by the iterations per epoch.

    python -m benchmarks.search_efficiency [--data-dir D] [--budget 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import REPO, default_data_dir, emit, environment
from nas_lth.data import load_dataset
from nas_lth.estimation import TicketRun, recipe_from_dict
from nas_lth.estimation.trajectory import DenseTrajectory
from nas_lth.space import load_space
from nas_lth.space.schema import SearchSpace
from nas_lth.store import read

SPACE = REPO / "benchmarks" / "spaces" / "search_efficiency.yaml"
MAX_WEIGHTS, WITHIN = 0.07, 0.005


class _Found(Exception):
    pass


def baseline(data, budget: float, seed: int) -> dict:
    """LTH: train, prune 20 % (fc) / 10 % (output) of the surviving weights, reset, retrain, ..."""
    recipe = recipe_from_dict({
        "model": "lenet300_100", "dataset": "mnist", "criterion": "large_final", "stop_at": "end",
        "prune_rate": {"fc": 0.2, "output": 0.1}, "rounds": 18, "budget": budget, "seed": seed,
        "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "eval_every": 100},
    }, "baseline")
    run = TicketRun(recipe, data)
    dense: dict = {}
    t0 = time.perf_counter()
    out = {"method": "sequential IMP (full training per round)", "found": False}

    def on_round(row):
        if row.round == 0:
            dense["val_acc"] = row.metrics["val_acc"]
        print(f"  IMP round {row.round:>2}: {100 * row.weights_remaining:6.2f}% val_acc "
              f"{row.metrics.get('val_acc', float('nan')):.4f}  [{time.perf_counter() - t0:5.0f}s]", flush=True)
        if row.weights_remaining <= MAX_WEIGHTS and row.metrics["val_acc"] >= dense["val_acc"] - WITHIN:
            out.update(found=True, weights_remaining=row.weights_remaining, val_acc=row.metrics["val_acc"],
                       round=row.round)
            raise _Found

    run.on_round = on_round
    try:
        run.run()
    except _Found:
        pass
    out.update(wall_seconds=time.perf_counter() - t0, epochs=run.cumulative / run.ipe,
               dense_val_acc=dense.get("val_acc"), trials=1)
    return out


def search(space: SearchSpace, data_dir: str | None, budget: float, seed: int, *, search_seed: int = 0,
           concurrency: int = 2) -> dict:
    from nas_lth.strategy import SearchOptions, run_search

    d = space.to_dict()
    d["fixed"]["budget"] = budget
    d["fixed"]["seed"] = seed
    space = SearchSpace.from_dict(d, str(SPACE))
    with tempfile.TemporaryDirectory() as storage:
        t0 = time.perf_counter()
        # the 2 cores either run two 1-thread trials at once or one 2-thread trial at a time
        opts = SearchOptions(space=space, name="search_efficiency", storage=storage, data_dir=data_dir,
                             dashboard=False, num_cpus=2, progress_every_s=60.0, seed=search_seed,
                             max_concurrent=concurrency, cpus_per_trial=2 / concurrency)
        run_search(opts)
        wall = time.perf_counter() - t0
        exp = Path(storage) / "search_efficiency"
        trials = read(str(exp)).trials
        # every trajectory file once (a trial stopped while computing it may not have reported it)
        dense_iters = sum(DenseTrajectory.from_bytes(p.read_bytes()).iterations
                          for p in (exp / "trajectories").glob("*.pt"))
    ipe = -(-55000 // 60)
    own = (trials.iterations_trained.fillna(0) - trials.trajectory_iterations_trained.fillna(0)).sum()
    ok = trials[(trials.status == "completed") & (trials.weights_remaining <= MAX_WEIGHTS)
                & (trials.val_acc >= trials.dense_val_acc - WITHIN)]
    best = ok.sort_values("val_acc", ascending=False).head(1)
    out = {"method": f"nas_lth search, {concurrency} trial(s) at a time", "found": not ok.empty,
           "search_seed": search_seed, "concurrency": concurrency,
           "wall_seconds": wall, "epochs": (own + dense_iters) / ipe,
           "dense_val_acc": trials.dense_val_acc.dropna().iloc[0] if trials.dense_val_acc.notna().any() else None,
           "trials": len(trials)}
    if not best.empty:
        b = best.iloc[0]
        out.update(weights_remaining=b.weights_remaining, val_acc=b.val_acc,
                   recipe=f"{b.criterion}, stop_at={b.stop_at}, rounds={int(b.rounds)}, rewind_to={int(b.rewind_to)}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--budget", type=float, default=5, help="epochs per training run (both methods)")
    p.add_argument("--seed", type=int, default=0, help="recipe seed (init, data order) for both methods")
    p.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2], help="Optuna sampler seeds")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2], help="trials at once (2 cores)")
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    space = load_space(SPACE)
    data = load_dataset("mnist", args.data_dir, seed=args.seed)
    print("baseline: sequential iterative magnitude pruning", flush=True)
    base = baseline(data, args.budget, args.seed)
    rows = [base]
    for concurrency in args.concurrency:
        for search_seed in args.search_seeds:
            print(f"nas_lth search: {concurrency} at a time, searcher seed {search_seed}", flush=True)
            rows.append(search(space, args.data_dir, args.budget, args.seed, search_seed=search_seed,
                               concurrency=concurrency))
    df = pd.DataFrame(rows).assign(budget_epochs=args.budget, target_weights=MAX_WEIGHTS,
                                   within_pp=100 * WITHIN, **environment())
    df["epochs_ratio_vs_baseline"] = df.epochs.iloc[0] / df.epochs
    df["wall_ratio_vs_baseline"] = df.wall_seconds.iloc[0] / df.wall_seconds
    emit(df, "search_efficiency", args.out,
         show=["method", "search_seed", "found", "epochs", "wall_seconds", "trials", "weights_remaining",
               "val_acc", "dense_val_acc", "epochs_ratio_vs_baseline", "wall_ratio_vs_baseline", "recipe"])
    searches = df.iloc[1:]
    for c, g in searches.groupby("concurrency"):
        print(f"{int(c)} at a time: median {g.epochs_ratio_vs_baseline.median():.1f}x fewer epochs, "
              f"{g.wall_ratio_vs_baseline.median():.1f}x less wall time (found in {int(g.found.sum())}/{len(g)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
