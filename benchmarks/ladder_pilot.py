"""Pilot for ladder trials (rounds as the fidelity): does an early rung of a pruning ladder rank ladders by
their final quality?

A *ladder* is one iterative-pruning recipe run round after round down to a sparsity floor; every round's
ticket is trained and evaluated. A scheduler over rounds would stop a ladder at an early rung when it ranks
low there, so it only helps if the early rung predicts the end. This pilot measures that on LeNet-300-100 /
MNIST (the LTH protocol, ``--epochs`` per round): ``--ladders`` random recipes (criterion, stopping point,
rewind point, per-round rate), all of seed 0 and one shared dense run, each pruned until ``--floor`` of the
weights or ``--max-rounds``.

The final quality of a ladder is the question of the search benchmark: the sparsest ticket whose validation
accuracy is within ``--within`` of the dense network's (``sparsest``, as weights remaining; 1 when no ticket
is). Predictors, each read from the ladder's first rounds only: the validation accuracy at round k (rungs by
round index: rates differ, so round k lies at different sparsities), the validation accuracy at matched
weights remaining s (log-linear interpolation between the rounds around s: rungs at sparsity levels), and
the sparsest-within-bound ticket among the rounds down to s (the objective itself, truncated). For each,
Spearman's rank correlation with the final quality over the ladders that reached the rung, and what reaching
the rung cost in training epochs.

    python -m benchmarks.ladder_pilot [--ladders 30] [--epochs 2] [--floor 0.005] [--threads 1]
    python -m benchmarks.ladder_pilot --summary-only     # the table from the stored ladders

Each ladder is stored as it finishes (``benchmarks/results/ladder_pilot/ladder-NN.parquet``, one row per
round); a ladder already stored is skipped, so the study resumes where it stopped. The summary goes to
``benchmarks/results/ladder_pilot.parquet`` and ``reports/ladder_pilot/``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import REPO, RESULTS, default_data_dir, emit, environment

FOLDER = RESULTS / "ladder_pilot"
CRITERIA = ("large_final", "movement", "magnitude_increase", "large_final_same_sign", "large_init", "random",
            "snip", "synflow")
STOPS = (200, 1000, "end")
REWINDS = (0, 100)
RATE = (0.1, 0.6)  # per-round rate of the fc layers; the output layer's is half of it (LTH: 20 % / 10 %)
SPARSITY_RUNGS = (0.5, 0.2, 0.1, 0.05)
ROUND_RUNGS = (1, 2, 3, 4, 6)


def ladder_recipe(i: int, args) -> dict:
    """Ladder ``i``'s recipe, drawn from its own generator (the same ``i`` gives the same recipe)."""
    rng = np.random.default_rng(1000 + i)
    rate = float(rng.uniform(*RATE))
    # rounds until the fc layers reach the floor (the output layer, pruned slower, keeps a little more)
    rounds = min(args.max_rounds, math.ceil(math.log(args.floor) / math.log(1 - rate)))
    return {"model": "lenet300_100", "dataset": "mnist", "criterion": str(rng.choice(CRITERIA)),
            "stop_at": STOPS[int(rng.integers(len(STOPS)))], "rewind_to": int(rng.choice(REWINDS)),
            "reinit": "original", "prune_rate": {"fc": rate, "output": rate / 2}, "rounds": rounds,
            "budget": args.epochs, "seed": 0, "eval_rounds": "all",
            "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "eval_every": 100}}


def run(args) -> None:
    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun, recipe_from_dict
    from nas_lth.estimation.trajectory import compute_trajectory

    torch.set_num_threads(args.threads)
    FOLDER.mkdir(parents=True, exist_ok=True)
    data = load_dataset("mnist", args.data_dir, seed=0)
    trajectory = None
    for i in range(args.ladders):
        path = FOLDER / f"ladder-{i:02d}.parquet"
        if path.exists():
            continue
        spec = ladder_recipe(i, args)
        recipe = recipe_from_dict(spec, f"ladder {i}")
        if trajectory is None:  # round 0 is the same dense run for every ladder: trained once
            ipe = recipe.iterations_per_epoch(len(data.train))
            budget = int(round(args.epochs * ipe))
            trajectory = compute_trajectory(recipe, data, snapshot_iters={0, *REWINDS, 200, 1000, budget})
        t0 = time.perf_counter()
        rows = [r.record() for r in TicketRun(recipe, data, trajectory=trajectory).run()]
        df = pd.DataFrame(rows).assign(
            ladder=i, criterion=spec["criterion"], stop_at=str(spec["stop_at"]), rewind_to=spec["rewind_to"],
            rate=spec["prune_rate"]["fc"], epochs_per_round=args.epochs,
            iterations_per_epoch=recipe.iterations_per_epoch(len(data.train)),
            wall_seconds_ladder=time.perf_counter() - t0, **environment())
        tmp = path.with_suffix(".tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(path)
        last = df.iloc[-1]
        print(f"ladder {i:2d} {spec['criterion']:<22} stop {str(spec['stop_at']):>4} rewind {spec['rewind_to']:>3} "
              f"rate {spec['prune_rate']['fc']:.2f}: {len(df) - 1} rounds to {100 * last.weights_remaining:.2f}% "
              f"val {last.val_acc:.4f}  [{time.perf_counter() - t0:.0f} s]", flush=True)


def load() -> pd.DataFrame:
    files = sorted(FOLDER.glob("ladder-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def _at_weights(ladder: pd.DataFrame, s: float) -> float:
    """Validation accuracy at weights remaining ``s``, log-linear between the rounds around it (NaN when the
    ladder did not get that sparse)."""
    w, acc = np.log(ladder.weights_remaining.to_numpy()), ladder.val_acc.to_numpy()
    if w.min() > math.log(s) + 1e-12:
        return float("nan")
    j = int(np.argmax(w <= math.log(s)))  # the first round at or below s (round 0 is dense: j >= 1)
    t = (math.log(s) - w[j - 1]) / (w[j] - w[j - 1])
    return float(acc[j - 1] + t * (acc[j] - acc[j - 1]))


def _sparsest(ladder: pd.DataFrame, bound: float) -> float:
    ok = ladder[ladder.val_acc >= bound]
    return float(ok.weights_remaining.min()) if len(ok) else 1.0


def summarize(df: pd.DataFrame, within: float) -> pd.DataFrame:
    from scipy import stats

    df = df[df.variant.isin(["original", "dense"])].sort_values(["ladder", "round"])
    ladders = {i: g.reset_index(drop=True) for i, g in df.groupby("ladder")}
    dense = next(iter(ladders.values())).val_acc.iloc[0]  # one shared dense run
    bound = dense - within
    final = {i: _sparsest(g, bound) for i, g in ladders.items()}
    epochs = {i: g.iterations.cumsum() / g.iterations_per_epoch for i, g in ladders.items()}  # round 0 included

    def row(rung: str, predictor: dict, cost: dict) -> dict:
        keys = [i for i, v in predictor.items() if not math.isnan(v)]
        y = [-math.log(final[i]) for i in keys]  # sparser final ticket = higher
        x = [predictor[i] for i in keys]
        rho, p = stats.spearmanr(x, y) if len(keys) >= 3 and len(set(x)) > 1 else (float("nan"), float("nan"))
        full = np.mean([epochs[i].iloc[-1] for i in keys]) if keys else float("nan")
        spent = np.mean([cost[i] for i in keys]) if keys else float("nan")
        return {"rung": rung, "ladders": len(keys), "spearman": rho, "p": p,
                "epochs_to_rung": spent, "epochs_full_ladder": full}

    out = []
    for k in ROUND_RUNGS:
        pred = {i: float(g.val_acc.iloc[k]) if len(g) > k else float("nan") for i, g in ladders.items()}
        cost = {i: float(epochs[i].iloc[k]) if len(g) > k else float("nan") for i, g in ladders.items()}
        out.append(row(f"round {k}: val acc", pred, cost))
    for s in SPARSITY_RUNGS:
        reach = {i: int(np.argmax(g.weights_remaining.to_numpy() <= s)) if g.weights_remaining.min() <= s else None
                 for i, g in ladders.items()}
        cost = {i: float(epochs[i].iloc[j]) if j is not None else float("nan") for i, (g, j) in
                ((i, (ladders[i], reach[i])) for i in ladders)}
        out.append(row(f"{100 * s:g} % weights: val acc", {i: _at_weights(g, s) for i, g in ladders.items()}, cost))
        truncated = {i: (-math.log(_sparsest(g.iloc[: j + 1], bound)) if j is not None else float("nan"))
                     for i, (g, j) in ((i, (ladders[i], reach[i])) for i in ladders)}
        out.append(row(f"{100 * s:g} % weights: sparsest within bound so far", truncated, cost))
    res = pd.DataFrame(out)
    res.attrs.update(dense_val_acc=float(dense), bound=float(bound), ladders=len(ladders),
                     final_within=sum(v < 1 for v in final.values()))
    return res


def render_page(res: pd.DataFrame, df: pd.DataFrame, args) -> str:
    """The text of ``reports/ladder_pilot/table.md``."""
    a = res.attrs
    partial = a["ladders"] < args.ladders
    lines = [
        "# Pilot: does an early rung of a pruning ladder rank ladders by their final quality?", "",
        f"Generated by `python -m benchmarks.ladder_pilot --summary-only` from "
        f"`benchmarks/results/ladder_pilot/` ({a['ladders']} of {args.ladders} ladders"
        f"{': PARTIAL, the study is still running' if partial else ''}). LeNet-300-100 / MNIST, "
        f"{df.epochs_per_round.iloc[0]:g} epochs per round, seed 0, one shared dense run (validation accuracy "
        f"{100 * a['dense_val_acc']:.2f} %). Final quality of a ladder: its sparsest ticket with validation accuracy "
        f">= {100 * a['bound']:.2f} % (dense - {100 * args.within:g} pp); {a['final_within']} ladders have one. "
        "Spearman's rho between each predictor and -log(final weights remaining), over the ladders that reached "
        "the rung; epochs: mean training epochs (round 0 included) to reach the rung and to finish the ladder.", "",
        "| rung: predictor | ladders | Spearman rho | p | epochs to rung | epochs, whole ladder |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res.itertuples():
        lines.append(f"| {r.rung} | {r.ladders} | {r.spearman:.2f} | {r.p:.2g} | {r.epochs_to_rung:.1f} | "
                     f"{r.epochs_full_ladder:.1f} |")
    return "\n".join(lines) + "\n"


def write_page(res: pd.DataFrame, df: pd.DataFrame, args) -> Path:
    out = REPO / "reports" / "ladder_pilot"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "table.md"
    page.write_text(render_page(res, df, args))
    return page


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ladder_pilot", description=__doc__.splitlines()[0])
    p.add_argument("--ladders", type=int, default=30)
    p.add_argument("--epochs", type=float, default=2.0, help="training epochs per round")
    p.add_argument("--floor", type=float, default=0.005, help="prune until this fraction of fc weights")
    p.add_argument("--max-rounds", type=int, default=25)
    p.add_argument("--within", type=float, default=0.005, help="accuracy bound below the dense network")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--summary-only", action="store_true", help="only summarise the stored ladders")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if not args.summary_only:
        run(args)
    df = load()
    if df.empty:
        raise SystemExit(f"no ladders stored in {FOLDER}")
    res = summarize(df, args.within)
    emit(res, "ladder_pilot")
    print(f"page: {write_page(res, df, args)}")


if __name__ == "__main__":
    main()
