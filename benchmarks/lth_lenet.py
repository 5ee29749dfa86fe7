"""The LTH protocol on LeNet-300-100 / MNIST: iterative winning tickets vs random-reinit controls.

Frankle & Carbin 2019 (Sec. 2): Adam 1.2e-3, batch 60, 5K validation hold-out, evaluation every 100
iterations, early-stop iteration = minimum validation loss, layer-wise pruning fc 20 % / output 10 %
per round, reset to the original init. The paper trains 50K iterations per round; on 2 CPU cores we
train ``--epochs`` (default 20 epochs = 18,340 iterations) per round. Each round's masks are also
trained from a random reinitialisation (the paper's control) in the same run.

    python -m benchmarks.lth_lenet [--data-dir D] [--epochs 20] [--rounds 18] [--seeds 0 1 2]

Writes benchmarks/results/lth_lenet.parquet (one row per seed, round and variant), the curves to
benchmarks/results/lth_lenet_curves.parquet, and the figures + table to reports/lth_lenet/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import REPO, default_data_dir, emit, environment, round_collector, weights_axis  # noqa: E402
from nas_lth.data import load_dataset  # noqa: E402
from nas_lth.estimation import TicketRun, recipe_from_dict  # noqa: E402

PAPER_LADDER = {3: 51.3, 7: 21.1, 9: 13.5, 12: 7.0, 15: 3.6, 18: 1.9}


def run(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, curves = [], []
    for seed in args.seeds:
        data = load_dataset("mnist", args.data_dir, seed=seed)
        recipe = recipe_from_dict({
            "model": "lenet300_100", "dataset": "mnist", "criterion": "large_final", "stop_at": "end",
            "rewind_to": 0, "reinit": "original", "prune_rate": {"fc": 0.2, "output": 0.1},
            "rounds": args.rounds, "budget": args.epochs, "seed": seed,
            "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "eval_every": 100},
        }, "lth_lenet")
        TicketRun(recipe, data, controls=("random_reinit",), on_round=round_collector(rows, curves, seed)).run()
    env = environment()
    return pd.DataFrame(rows).assign(**env), pd.DataFrame(curves)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(variant=df.variant.replace({"dense": "original"}))
    g = df.groupby(["round", "variant"])
    out = g.agg(weights_pct=("weights_remaining", lambda s: 100 * s.mean()),
                test_acc_es=("test_acc_at_early_stop", "mean"),
                test_acc_es_min=("test_acc_at_early_stop", "min"),
                test_acc_es_max=("test_acc_at_early_stop", "max"),
                test_acc_end=("test_acc", "mean"),
                early_stop_iter=("early_stop_iter", "mean"),
                seeds=("seed", "nunique")).reset_index()
    return out


def plot(summary: pd.DataFrame, out_dir: Path, epochs: float) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    style = {"original": ("winning ticket (reset to init)", "-", "C0"),
             "random_reinit": ("random reinit (same masks)", "--", "C3")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for variant, (label, ls, color) in style.items():
        s = summary[(summary.variant == variant) | (summary["round"] == 0)].sort_values("weights_pct")
        axes[0].plot(s.weights_pct, 100 * s.test_acc_es, ls, color=color, marker="o", ms=3, label=label)
        axes[0].fill_between(s.weights_pct, 100 * s.test_acc_es_min, 100 * s.test_acc_es_max, color=color,
                             alpha=0.15)
        axes[1].plot(s.weights_pct, s.early_stop_iter, ls, color=color, marker="o", ms=3, label=label)
    dense = summary[summary["round"] == 0].iloc[0]
    axes[0].axhline(100 * dense.test_acc_es, color="gray", lw=0.8, ls=":", label="dense")
    for ax, ylabel in zip(axes, ("test accuracy at early stop (%)", "early-stop iteration"), strict=True):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        weights_axis(ax, [100, 51.3, 21.1, 7.0, 3.6, 1.9])
    axes[0].legend(fontsize=8)
    fig.suptitle(f"LeNet-300-100 / MNIST, iterative magnitude pruning, {epochs:g} epochs per round "
                 f"(mean and range over {int(summary.seeds.max())} seeds)", fontsize=10)
    fig.tight_layout()
    p = out_dir / "lth_lenet.png"
    fig.savefig(p, dpi=130)
    paths.append(p)
    return paths


def render_table(summary: pd.DataFrame, args, seconds: float, cores: int | None = None) -> str:
    """The text of ``reports/lth_lenet/table.md`` (``cores``: the CPU cores of the run, default this machine's;
    ``seconds``: its wall time, NaN when not known)."""
    threads = getattr(args, "threads", None)
    command = (f"python -m benchmarks.lth_lenet --epochs {args.epochs:g} --rounds {args.rounds} "
               f"--seeds {' '.join(map(str, args.seeds))}" + (f" --threads {threads}" if threads else ""))
    took = "" if seconds != seconds else f" in {seconds / 60:.0f} min"
    on = f"{cores or environment()['cores']} CPU cores"
    on += f" ({threads} thread{'s' * (threads > 1)})" if threads else ""
    piv = summary.pivot_table(index="round", columns="variant",
                              values=["weights_pct", "test_acc_es", "early_stop_iter"])
    lines = [
        "# LTH reproduction: LeNet-300-100 on MNIST", "",
        f"Generated by `{command}`{took} on {on}. Mean over seeds; test accuracy at the early-stop "
        "iteration (minimum validation loss); the paper's weights-remaining values in parentheses.",
        "",
        "| round | weights % (paper) | ticket test acc | reinit test acc | ticket early stop | reinit early stop |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in piv.index:
        w = piv.loc[r, ("weights_pct", "original")]
        paper = PAPER_LADDER.get(int(r), "")
        acc_t = piv.loc[r, ("test_acc_es", "original")]
        acc_r = piv.loc[r].get(("test_acc_es", "random_reinit"), float("nan"))
        es_t = piv.loc[r, ("early_stop_iter", "original")]
        es_r = piv.loc[r].get(("early_stop_iter", "random_reinit"), float("nan"))
        paper = f" ({paper})" if paper != "" else ""
        lines.append(f"| {r} | {w:.1f}{paper} | {100 * acc_t:.2f} | "
                     f"{'' if pd.isna(acc_r) else f'{100 * acc_r:.2f}'} | {es_t:.0f} | "
                     f"{'' if pd.isna(es_r) else f'{es_r:.0f}'} |")
    return "\n".join(lines) + "\n"


def write_table(summary: pd.DataFrame, out_dir: Path, args, seconds: float, cores: int | None = None) -> Path:
    p = out_dir / "table.md"
    p.write_text(render_table(summary, args, seconds, cores))
    return p


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--epochs", type=float, default=20)
    p.add_argument("--rounds", type=int, default=18)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out-dir", default=str(REPO / "reports" / "lth_lenet"))
    p.add_argument("--results", default=None, help="Parquet path (default benchmarks/results/lth_lenet.parquet)")
    p.add_argument("--replot", action="store_true", help="redraw the figure and table from the stored Parquet")
    args = p.parse_args(argv)
    if args.replot:
        df = pd.read_parquet(args.results or REPO / "benchmarks" / "results" / "lth_lenet.parquet")
        args.seeds = sorted(df.seed.unique().tolist())
        plot(summarize(df), Path(args.out_dir), args.epochs)
        write_table(summarize(df), Path(args.out_dir), args, seconds=float("nan"), cores=int(df.cores.iloc[0]))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    df, curves = run(args)
    seconds = time.perf_counter() - t0
    results = Path(args.results) if args.results else None
    emit(df, "lth_lenet", str(results) if results else None,
         show=["seed", "round", "variant", "weights_remaining", "test_acc_at_early_stop", "early_stop_iter"])
    emit(curves, "lth_lenet_curves",
         str(results.with_name(results.stem + "_curves.parquet")) if results else None, show=[])
    summary = summarize(df)
    out_dir = Path(args.out_dir)
    plot(summary, out_dir, args.epochs)
    write_table(summary, out_dir, args, seconds)
    print(f"figures and table in {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
