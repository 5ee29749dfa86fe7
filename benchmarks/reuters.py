"""Question II: does the Lottery Ticket Hypothesis transfer to topic classification (Reuters-21578)?

Part 1 - dense baselines on the same splits and features: a bag-of-words MLP (TF-IDF -> 300 -> 100
-> classes) and Kim's text CNN (token ids) against scikit-learn's LinearSVC on the same TF-IDF
features, on R8 (single-label: accuracy) and ApteMod-90 (multi-label: micro/macro F1, threshold 0.5).
Part 2 - iterative magnitude pruning of the MLP on R8 (reset to init; fc 36 %, output 10 % per round)
against random re-initialisations of the same masks, across weights remaining.

    python -m benchmarks.reuters [--data-dir D] [--epochs 6] [--rounds 9] [--seeds 0 1] [--cnn-epochs 6]
                                 [--apte-epochs 15] [--baselines-only]

``--baselines-only`` reruns part 1 and rebuilds the report with the stored part-2 tables.

Writes benchmarks/results/reuters_{baselines,tickets}.parquet and reports/reuters/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import REPO, default_data_dir, emit, environment, round_collector, weights_axis  # noqa: E402
from nas_lth.data import load_dataset  # noqa: E402
from nas_lth.estimation import TicketRun, recipe_from_dict  # noqa: E402

TRAINING = {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "eval_every": 50}
CNN = {"model_options": {"embed_dim": 64}, "dataset_options": {"representation": "tokens", "max_len": 128}}


def svm_baseline(dataset: str, data_dir, seed: int) -> dict:
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    data = load_dataset(dataset, data_dir, seed=seed)
    x, y = data.train.x.numpy(), data.train.y.numpy()
    xt, yt = data.test.x.numpy(), data.test.y.numpy()
    t0 = time.perf_counter()
    if data.multilabel:
        clf = OneVsRestClassifier(LinearSVC(C=1.0)).fit(x, y.astype(int))
    else:
        clf = LinearSVC(C=1.0).fit(x, y)
    pred = clf.predict(xt)
    out = {"dataset": dataset, "model": "LinearSVC (TF-IDF)", "seed": seed, "train_seconds": time.perf_counter() - t0}
    if data.multilabel:
        yt = yt.astype(int)
        out.update(test_acc=float((pred == yt).all(axis=1).mean()),
                   test_micro_f1=f1_score(yt, pred, average="micro", zero_division=0),
                   test_macro_f1=f1_score(yt, pred, average="macro", zero_division=0))
    else:
        out.update(test_acc=float((pred == yt).mean()),
                   test_micro_f1=f1_score(yt, pred, average="micro"), test_macro_f1=f1_score(yt, pred, average="macro"))
    return out


def dense_net(dataset: str, model: str, data_dir, seed: int, epochs: float) -> dict:
    extra = CNN if model == "textcnn" else {}
    recipe = recipe_from_dict({"model": model, "dataset": dataset, "rounds": 0, "budget": epochs, "seed": seed,
                               "training": TRAINING, **extra}, "reuters")
    data = load_dataset(dataset, data_dir, seed=seed, options=recipe.dataset_options or None)
    t0 = time.perf_counter()
    row = TicketRun(recipe, data).run()[0]
    m = row.metrics
    return {"dataset": dataset, "model": model, "seed": seed, "train_seconds": time.perf_counter() - t0,
            "epochs": epochs, "test_acc": m.get("test_acc_at_early_stop"),
            "test_micro_f1": m.get("test_micro_f1_at_early_stop"),
            "test_macro_f1": m.get("test_macro_f1_at_early_stop"),
            "early_stop_iter": row.early_stop_iter}


def tickets(data_dir, seeds, epochs: float, rounds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, curves = [], []
    for seed in seeds:
        data = load_dataset("reuters-r8", data_dir, seed=seed)
        recipe = recipe_from_dict({
            "model": "bow_mlp", "dataset": "reuters-r8", "criterion": "large_final", "stop_at": "end",
            "prune_rate": {"fc": 0.36, "output": 0.1}, "rounds": rounds, "budget": epochs, "seed": seed,
            "training": TRAINING}, "reuters tickets")
        TicketRun(recipe, data, controls=("random_reinit",), on_round=round_collector(rows, curves, seed)).run()
    return pd.DataFrame(rows), pd.DataFrame(curves)


def plot_tickets(df: pd.DataFrame, out: Path, epochs: float, model: str = "bag-of-words MLP",
                 filename: str = "tickets_r8_bow.png") -> Path:
    df = df.assign(variant=df.variant.replace({"dense": "original"}))
    g = df.groupby(["round", "variant"]).agg(w=("weights_remaining", "mean"), acc=("test_acc_at_early_stop", "mean"),
                                             lo=("test_acc_at_early_stop", "min"), hi=("test_acc_at_early_stop", "max"),
                                             es=("early_stop_iter", "mean")).reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for variant, label, ls, color in (("original", "winning ticket (reset to init)", "-", "C0"),
                                      ("random_reinit", "random reinit (same masks)", "--", "C3")):
        s = g[(g.variant == variant) | (g["round"] == 0)].sort_values("w")
        axes[0].plot(100 * s.w, 100 * s.acc, ls, color=color, marker="o", ms=3, label=label)
        axes[0].fill_between(100 * s.w, 100 * s.lo, 100 * s.hi, color=color, alpha=0.15)
        axes[1].plot(100 * s.w, s.es, ls, color=color, marker="o", ms=3, label=label)
    dense = g[g["round"] == 0].iloc[0]
    axes[0].axhline(100 * dense.acc, color="gray", ls=":", lw=0.8, label="dense")
    for ax, ylabel in zip(axes, ("test accuracy at early stop (%)", "early-stop iteration"), strict=True):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        weights_axis(ax, sorted({round(100 * w, 1) for w in g.w})[::-2])
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{model} on Reuters-21578 R8, iterative magnitude pruning, {epochs:g} epochs per round "
                 f"(mean and range over {df.seed.nunique()} seeds)", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / filename
    fig.savefig(path, dpi=130)
    return path


def render_md(base: pd.DataFrame, tix: pd.DataFrame, args, seconds: float) -> str:
    """The text of ``reports/reuters/README.md``."""
    command = (f"python -m benchmarks.reuters --epochs {args.epochs:g} --cnn-epochs {args.cnn_epochs:g} "
               f"--apte-epochs {args.apte_epochs:g} --rounds {args.rounds} --seeds {' '.join(map(str, args.seeds))}")
    if args.baselines_only:
        how = (f"The dense baselines were rerun by `{command} --baselines-only` in {seconds / 60:.0f} min on 2 CPU "
               f"cores; the pruning tables come from `benchmarks/results/reuters_tickets*.parquet`, written by "
               f"`{command}`.")
    else:
        how = f"Generated by `{command}` in {seconds / 60:.0f} min on 2 CPU cores."
    lines = ["# Lottery tickets for topic classification: Reuters-21578", "",
             f"{how} Test metrics at the early-stop iteration for the networks.", "",
             "## Dense baselines (mean over seeds)", "",
             f"MLP: {args.epochs:g} epochs on R8, {args.apte_epochs:g} on ApteMod-90; text CNN (embeddings 64, "
             f"first 128 tokens): {args.cnn_epochs:g} epochs; LinearSVC: C = 1 on the same TF-IDF features "
             "(one-vs-rest for ApteMod-90).", "",
             "| dataset | model | test accuracy | micro-F1 | macro-F1 |", "|---|---|---:|---:|---:|"]
    agg = base.groupby(["dataset", "model"], sort=False)[["test_acc", "test_micro_f1", "test_macro_f1"]].mean()
    for (ds, model), r in agg.iterrows():
        lines.append(f"| {ds} | {model} | {100 * r.test_acc:.2f} | {100 * r.test_micro_f1:.2f} | "
                     f"{100 * r.test_macro_f1:.2f} |")
    t = tix.assign(variant=tix.variant.replace({"dense": "original"}))
    piv = t.pivot_table(index="round", columns="variant", values=["weights_remaining", "test_acc_at_early_stop",
                                                                   "early_stop_iter"])
    lines += ["", "## Iterative pruning of the MLP on R8 (mean over seeds)", "",
              "| round | weights % | ticket test acc | reinit test acc | ticket early stop | reinit early stop |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in piv.index:
        row = piv.loc[r]
        reinit_acc = row.get(("test_acc_at_early_stop", "random_reinit"), np.nan)
        reinit_es = row.get(("early_stop_iter", "random_reinit"), np.nan)
        lines.append(f"| {r} | {100 * row[('weights_remaining', 'original')]:.2f} | "
                     f"{100 * row[('test_acc_at_early_stop', 'original')]:.2f} | "
                     f"{'' if pd.isna(reinit_acc) else f'{100 * reinit_acc:.2f}'} | "
                     f"{row[('early_stop_iter', 'original')]:.0f} | "
                     f"{'' if pd.isna(reinit_es) else f'{reinit_es:.0f}'} |")
    lines += ["", "![tickets](tickets_r8_bow.png)", ""]
    return "\n".join(lines)


def write_md(base: pd.DataFrame, tix: pd.DataFrame, out: Path, args, seconds: float) -> Path:
    path = out / "README.md"
    path.write_text(render_md(base, tix, args, seconds))
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--epochs", type=float, default=6, help="epochs per MLP training run")
    p.add_argument("--cnn-epochs", type=float, default=6, help="epochs of the dense text CNN")
    p.add_argument("--apte-epochs", type=float, default=15,
                   help="epochs of the dense MLP on ApteMod-90 (90 sigmoid outputs start all-negative: slower)")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out-dir", default=str(REPO / "reports" / "reuters"))
    p.add_argument("--baselines-only", action="store_true",
                   help="rerun the dense baselines only; the report takes the pruning tables from the stored Parquet")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    base = []
    for seed in args.seeds:
        for ds in ("reuters-r8", "reuters-apte90"):
            base.append(svm_baseline(ds, args.data_dir, seed))
            mlp_epochs = args.apte_epochs if ds == "reuters-apte90" else args.epochs
            base.append(dense_net(ds, "bow_mlp", args.data_dir, seed, mlp_epochs))
            base.append(dense_net(ds, "textcnn", args.data_dir, seed, args.cnn_epochs))
            print(pd.DataFrame(base[-3:])[["dataset", "model", "test_acc", "test_micro_f1", "test_macro_f1"]],
                  flush=True)
    env = environment()
    base_df = pd.DataFrame(base).assign(**env)
    emit(base_df, "reuters_baselines", show=["dataset", "model", "seed", "test_acc", "test_micro_f1", "test_macro_f1",
                                             "train_seconds"])
    if args.baselines_only:
        tix = pd.read_parquet(REPO / "benchmarks" / "results" / "reuters_tickets.parquet")
    else:
        tix, curves = tickets(args.data_dir, args.seeds, args.epochs, args.rounds)
        emit(tix.assign(**env), "reuters_tickets", show=["seed", "round", "variant", "weights_remaining",
                                                         "test_acc_at_early_stop", "early_stop_iter"])
        emit(curves, "reuters_tickets_curves", show=[])
    out = Path(args.out_dir)
    plot_tickets(tix, out, args.epochs)
    write_md(base_df, tix, out, args, time.perf_counter() - t0)
    print(f"report in {out}")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    raise SystemExit(main())
