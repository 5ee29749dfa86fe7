"""Early-Bird tickets as published (You et al. 2020), at a budget that fits 2 CPU cores: do the channel masks
settle early, and is the early-bird ticket as good as the ticket drawn at the end?

ResNet-20 on MNIST (``--model``), SGD momentum 0.9 lr 0.01, batch 64, with network slimming's L1 penalty on the
BatchNorm scales (``training.bn_l1``, 1e-4 as in the paper). The mask: *channels* by |gamma|
(``granularity: channel``, ``criterion: bn_gamma``), ranked globally at a fixed prune ratio p (``--ratios``;
the paper's 30/50/70 %). Early-Bird: a FIFO of 5 masks, distance = fraction of channels that differ, drawn when
all distances are <= 0.1. Adaptation (stated in the README): the paper checks once per epoch of a 160-epoch
run; at ``--epochs`` epochs here the check runs every ``--checks-per-epoch``-th of an epoch.

Per (seed, ratio): the dense network is trained once (shared, with a snapshot at every check); the
early-bird ticket (``stop_at: early_bird``) and the ticket drawn at the end of training (``stop_at: end``) are
each reset to the initialisation (the LTH convention; the paper also fine-tunes) and retrained ``--epochs``.
Rows: the epoch the early-bird was drawn (or that it never was), each ticket's test accuracy at the end and at
early stop, and the dense network's; appended per (seed, ratio, ticket) to
``benchmarks/results/early_bird_channels.parquet``, skipped when there. The table
``reports/early_bird/table.md`` (test accuracy at early stop, as in the other studies) is generated from that
file, also by ``--summary-only``.

    python -m benchmarks.early_bird_channels [--seeds 0 1] [--ratios 0.5] [--epochs 2]  (the README's run)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.common import REPO, RESULTS, append_parquet, default_data_dir, environment
from nas_lth.data import load_dataset
from nas_lth.estimation import TicketRun, recipe_from_dict
from nas_lth.estimation.trajectory import compute_trajectory

OUT = RESULTS / "early_bird_channels.parquet"
TABLE = REPO / "reports" / "early_bird" / "table.md"
KEYS = ["model", "seed", "ratio", "ticket"]
TICKETS = {"early_bird": "early_bird", "end": "end"}


def recipe(args, seed: int, ratio: float | None, stop_at: str):
    base = {"model": args.model, "dataset": "mnist", "granularity": "channel", "criterion": "bn_gamma",
            "scope": "global", "budget": args.epochs, "seed": seed, "val_size": 5000, "eb_eps": 0.1, "eb_window": 5,
            "training": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 64, "bn_l1": 1e-4,
                         "eval_every": args.eval_every}}
    if ratio is None:
        return recipe_from_dict({**base, "rounds": 0}, "early_bird_channels")
    return recipe_from_dict({**base, "rounds": 1, "stop_at": stop_at, "prune_rate": {"conv": ratio, "output": 0.0},
                             "eb_every": args.eb_every}, "early_bird_channels")


def done() -> set[tuple]:
    if not OUT.exists():
        return set()
    return set(map(tuple, pd.read_parquet(OUT)[KEYS].to_numpy()))


def run_seed(args, data, seed: int) -> None:
    wanted = [(args.model, seed, r, t) for r in args.ratios for t in TICKETS]
    if set(wanted) <= done():
        return
    dense = recipe(args, seed, None, "end")
    ipe = dense.iterations_per_epoch(len(data.train))
    args.eb_every = max(1, ipe // args.checks_per_epoch)
    traj = compute_trajectory(dense, data, snapshot_iters=set(), grids={args.eb_every})
    print(f"{args.model} seed {seed}: dense test acc {traj.metrics['test_acc']:.4f} ({traj.wall_seconds:.0f} s)",
          flush=True)
    for key in wanted:
        if key in done():
            continue
        _, _, ratio, ticket = key
        rc = recipe(args, seed, ratio, TICKETS[ticket])
        row = TicketRun(rc, data, trajectory=traj).run()[-1]
        drawn = bool(row.early_bird_drawn) if ticket == "early_bird" else None
        rec = {"model": args.model, "seed": seed, "ratio": ratio, "ticket": ticket, "epochs": args.epochs,
               "checks_per_epoch": args.checks_per_epoch, "eb_every": args.eb_every,
               "mask_epoch": row.mask_iter / ipe if row.mask_iter is not None else None, "drawn": drawn,
               "weights_remaining": row.weights_remaining, "test_acc": row.metrics["test_acc"],
               "test_acc_at_early_stop": row.metrics.get("test_acc_at_early_stop"),
               "dense_test_acc": traj.metrics["test_acc"],
               "dense_test_acc_at_early_stop": traj.metrics.get("test_acc_at_early_stop"),
               "mask_digest": row.mask_digest,
               "train_seconds": row.wall_seconds}
        append_parquet(OUT, pd.DataFrame([rec]).assign(**environment()))
        print(f"  ratio {ratio:.2f} {ticket:<10}: mask at epoch {rec['mask_epoch']:.2f}"
              f"{'' if drawn is None else (' (drawn)' if drawn else ' (never drawn: the last weights)')}, "
              f"{100 * row.weights_remaining:.1f}% weights, test acc {rec['test_acc']:.4f}", flush=True)


def markdown(df: pd.DataFrame) -> str:
    """``reports/early_bird/table.md`` from the results file: per (model, seed, ratio), both tickets' test
    accuracy at early stop (the minimum validation loss; the convention of every other table here)."""
    dense_es = "dense_test_acc_at_early_stop" in df and df.dense_test_acc_at_early_stop.notna().all()
    lines = [
        "# Early-Bird tickets as published: the table", "",
        "Generated by `python -m benchmarks.early_bird_channels --summary-only` from "
        "`benchmarks/results/early_bird_channels.parquet`. Test accuracy (%) at the early-stop iteration (minimum "
        "validation loss) of each ticket, reset to the initialisation and retrained; weights remaining in brackets; "
        "the better ticket of a row in bold. The dense network: test accuracy "
        + ("at early stop." if dense_es else "at the end of its training (its accuracy at early stop is not in "
                                              "the file)."), "",
        "| model | seed | ratio | dense test acc. | early-bird drawn at | early-bird ticket | ticket drawn at the end "
        f"({', '.join(f'epoch {e:g}' for e in sorted(df[df.ticket == 'end'].mask_epoch.unique()))}) "
        "| early-bird - end (pp) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, seed, ratio), g in df.groupby(["model", "seed", "ratio"], sort=True):
        t = g.set_index("ticket")
        if not {"early_bird", "end"} <= set(t.index):
            continue
        eb, end = t.loc["early_bird"], t.loc["end"]
        acc = {k: 100 * float(t.loc[k, "test_acc_at_early_stop"]) for k in ("early_bird", "end")}
        best = max(acc, key=acc.get) if acc["early_bird"] != acc["end"] else None
        cells = {k: f"{f'**{acc[k]:.2f}**' if k == best else f'{acc[k]:.2f}'} ({100 * r.weights_remaining:.1f} %)"
                 for k, r in (("early_bird", eb), ("end", end))}
        drawn = f"epoch {eb.mask_epoch:.1f}" if bool(eb.drawn) else "never drawn"
        dense = float(eb.dense_test_acc_at_early_stop if dense_es else eb.dense_test_acc)
        lines.append(f"| {model} | {seed} | {100 * ratio:.0f} % | {100 * dense:.2f} | {drawn} | "
                     f"{cells['early_bird']} | {cells['end']} | "
                     f"{acc['early_bird'] - acc['end']:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    global OUT  # noqa: PLW0603 - the script's output path, set once from the command line
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20", choices=["resnet20", "vgg11"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--ratios", nargs="+", type=float, default=[0.5])
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--checks-per-epoch", type=int, default=5)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--out", type=Path, default=OUT, help="results file (default: %(default)s)")
    p.add_argument("--table", type=Path, default=TABLE, help="the generated table (default: %(default)s)")
    args = p.parse_args(argv)
    OUT = args.out
    if not args.summary_only:
        for seed in args.seeds:
            data = load_dataset("mnist", args.data_dir, seed=seed, val_size=5000)
            run_seed(args, data, seed)
    df = pd.read_parquet(OUT)
    print(df[KEYS + ["mask_epoch", "drawn", "weights_remaining", "test_acc", "test_acc_at_early_stop",
                     "dense_test_acc"]].to_markdown(index=False, floatfmt=".4g"))
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(markdown(df))
    print(f"table: {args.table}")


if __name__ == "__main__":
    main()
