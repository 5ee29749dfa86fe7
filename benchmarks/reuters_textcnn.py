"""Question II with Kim's text CNN: tickets of the CNN on Reuters-21578 R8 against random re-initialisations.

Iterative magnitude pruning (large_final at the end of each run, reset to the initialisation) of the text CNN
on token ids (embeddings 64, first 128 tokens, as the dense baseline of ``benchmarks/reuters.py``), per round
embedding 36 %, convolutions 20 %, output 10 % (inside the ranges of ``search_spaces/reuters_r8_textcnn.yaml``;
the embedding holds ~85 % of the weights, so it sets the pace), Adam 1e-3, batch 64, ``--epochs`` per round;
every round's masks are also trained from a random re-initialisation. Test accuracy at the early-stop
iteration (minimum validation loss).

Resumable per seed: each finished ladder is appended to ``benchmarks/results/reuters_textcnn_tickets.parquet``
(and its curves), a seed already there is skipped; ``reports/reuters/textcnn.md`` and
``tickets_r8_textcnn.png`` are made from the seeds there.

    python -m benchmarks.reuters_textcnn [--seeds 0 1] [--epochs 4] [--rounds 10]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from benchmarks.common import REPO, RESULTS, append_parquet, default_data_dir, environment, round_collector
from benchmarks.reuters import CNN, TRAINING, plot_tickets
from nas_lth.data import load_dataset
from nas_lth.estimation import TicketRun, recipe_from_dict

ROWS = RESULTS / "reuters_textcnn_tickets.parquet"
CURVES = RESULTS / "reuters_textcnn_tickets_curves.parquet"
OUT = REPO / "reports" / "reuters"
RATES = {"embedding": 0.36, "conv": 0.2, "output": 0.1}


def ladder(seed: int, args) -> tuple[pd.DataFrame, pd.DataFrame]:
    recipe = recipe_from_dict({"model": "textcnn", "dataset": "reuters-r8", "criterion": "large_final",
                               "stop_at": "end", "prune_rate": RATES, "rounds": args.rounds, "budget": args.epochs,
                               "seed": seed, "training": TRAINING, **CNN}, "reuters textcnn tickets")
    data = load_dataset("reuters-r8", args.data_dir, seed=seed, options=recipe.dataset_options)
    rows, curves = [], []
    t0 = time.perf_counter()
    TicketRun(recipe, data, controls=("random_reinit",), on_round=round_collector(rows, curves, seed)).run()
    print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows).assign(epochs=args.epochs, **environment()), pd.DataFrame(curves)


def table(df: pd.DataFrame) -> list[str]:
    t = df.assign(variant=df.variant.replace({"dense": "original"}))
    g = t.groupby(["round", "variant"]).agg(w=("weights_remaining", "mean"), acc=("test_acc_at_early_stop", "mean"),
                                            lo=("test_acc_at_early_stop", "min"),
                                            hi=("test_acc_at_early_stop", "max"), es=("early_stop_iter", "mean"))
    lines = ["| round | weights % | ticket test acc (min-max) | reinit test acc (min-max) | ticket early stop | "
             "reinit early stop |", "|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(t["round"].unique()):
        o = g.loc[(r, "original")]
        rr = g.loc[(r, "random_reinit")] if (r, "random_reinit") in g.index else None
        reinit = "" if rr is None else f"{100 * rr.acc:.2f} ({100 * rr.lo:.2f}-{100 * rr.hi:.2f})"
        lines.append(f"| {r} | {100 * o.w:.2f} | {100 * o.acc:.2f} ({100 * o.lo:.2f}-{100 * o.hi:.2f}) | {reinit} | "
                     f"{o.es:.0f} | {'' if rr is None else f'{rr.es:.0f}'} |")
    return lines


def page(df: pd.DataFrame) -> str:
    """The text of ``reports/reuters/textcnn.md``."""
    epochs = float(df.epochs.iloc[0])
    lines = ["# Tickets of the text CNN on Reuters-21578 R8", "",
             f"`python -m benchmarks.reuters_textcnn` ({df.seed.nunique()} seeds, {epochs:g} epochs per round, "
             f"per round embedding {RATES['embedding']:.0%}, conv {RATES['conv']:.0%}, output {RATES['output']:.0%}; "
             "test accuracy at the early-stop iteration, mean and range over seeds).", "", *table(df), "",
             "![tickets](tickets_r8_textcnn.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=float, default=4)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args(argv)
    if not args.summary_only:
        have = set(pd.read_parquet(ROWS).seed) if ROWS.exists() else set()
        for seed in args.seeds:
            if seed in have:
                continue
            rows, curves = ladder(seed, args)
            append_parquet(CURVES, curves)
            append_parquet(ROWS, rows)  # last: a seed counts as done once its rows are in
    df = pd.read_parquet(ROWS)
    epochs = float(df.epochs.iloc[0])
    plot_tickets(df, OUT, epochs, model="Kim's text CNN", filename="tickets_r8_textcnn.png")
    (OUT / "textcnn.md").write_text(page(df))
    print("\n".join(table(df)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
