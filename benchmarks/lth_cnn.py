"""The LTH protocol on convolutional networks, MNIST: each round's winning ticket against a random
reinitialisation of the same masks (Frankle & Carbin 2019, Figures 5-7, at a budget that fits the machine).

Per model (``PROTOCOLS``; the paper's settings for CIFAR-10, applied to MNIST):

- ``conv2`` / ``conv4`` / ``conv6``: layer-wise pruning per round conv 10 % / 10 % / 15 %, fc 20 %, output
  10 %; Adam 2e-4 / 3e-4 / 3e-4, batch 60; reset to the original initialisation (iteration 0).
- ``vgg11`` (the smallest VGG here; the paper prunes VGG-19): *global* pruning, 20 % of all conv weights per
  round (the output layer 10 %, layer-wise), SGD momentum 0.9, lr 0.01 (the paper's lower rate), batch 64,
  and *late resetting* to iteration 500 (``--late-reset``; the paper's deep networks needed warmup or late
  resetting).
- ``resnet20``: the same, global 20 %, SGD momentum 0.9 lr 0.01, batch 64, late resetting to iteration 500.

Every round trains ``--epochs`` (the paper trains 20-112 epochs per round: set them on a GPU, see
``--device``), evaluates every ``--eval-every`` iterations; the early-stop iteration is the minimum validation
loss. The random-reinit control is trained in the same run (``controls=("random_reinit",)``).

Resumable, per round: each (model, seed) appends its rounds to ``benchmarks/results/lth_cnn/<model>-s<seed>
.parquet`` (rows and curves) as they finish and saves the run's state after every training run, so a
restart continues inside the ladder; a finished (model, seed) is skipped. The summary
(``benchmarks/results/lth_cnn.parquet``) and ``reports/lth_cnn/`` (a table and a figure per model) are made
from every (model, seed) stored in the folder whose ladder is complete, not only the ones the command names
(so running one model's ladder keeps the others in the report); partial ones are listed, never averaged in.

    python -m benchmarks.lth_cnn [--models conv2 conv4 ...] [--seeds 0 1] [--epochs 1] [--rounds 8]
                                 [--device cpu|cuda] [--summary-only]
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

from benchmarks.common import REPO, RESULTS, append_parquet, default_data_dir, emit, environment, weights_axis  # noqa: E402
from nas_lth.data import load_dataset  # noqa: E402
from nas_lth.device import pick_device  # noqa: E402
from nas_lth.estimation import TicketRun, recipe_from_dict  # noqa: E402

ADAM = {"optimizer": "adam", "batch_size": 60}
SGD = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 64}
PROTOCOLS = {
    "conv2": {"prune_rate": {"conv": 0.1, "fc": 0.2, "output": 0.1}, "training": {**ADAM, "lr": 2e-4}},
    "conv4": {"prune_rate": {"conv": 0.1, "fc": 0.2, "output": 0.1}, "training": {**ADAM, "lr": 3e-4}},
    "conv6": {"prune_rate": {"conv": 0.15, "fc": 0.2, "output": 0.1}, "training": {**ADAM, "lr": 3e-4}},
    "vgg11": {"prune_rate": {"conv": 0.2, "output": 0.1}, "scope": "global", "late_reset": True, "training": SGD},
    "resnet20": {"prune_rate": {"conv": 0.2, "output": 0.1}, "scope": "global", "late_reset": True,
                 "training": SGD},
}
OUT = RESULTS / "lth_cnn"
REPORT = REPO / "reports" / "lth_cnn"
VARIANTS = ("original", "random_reinit")


def recipe(model: str, args, seed: int):
    p = PROTOCOLS[model]
    return recipe_from_dict({
        "model": model, "dataset": "mnist", "criterion": "large_final", "stop_at": "end",
        "rewind_to": args.late_reset if p.get("late_reset") else 0, "reinit": "original",
        "prune_rate": {**p["prune_rate"], **dict(getattr(args, "prune_rate", None) or {})},
        "scope": p.get("scope", "layerwise"), "rounds": args.rounds, "budget": args.epochs, "seed": seed,
        "val_size": args.val_size,
        "training": {**p["training"], "eval_every": args.eval_every},
    }, f"lth_cnn {model}")


class Ladder:
    """One (model, seed): its rounds on disk, appended as they finish, and the run's state for a restart."""

    def __init__(self, out: Path, model: str, seed: int):
        self.model, self.seed = model, seed
        self.rows_path = out / f"{model}-s{seed}.parquet"
        self.curves_path = out / f"{model}-s{seed}.curves.parquet"
        self.state_path = out / f"{model}-s{seed}.state.pt"

    def rows(self) -> pd.DataFrame:
        return pd.read_parquet(self.rows_path) if self.rows_path.exists() else pd.DataFrame()

    def complete(self, rounds: int, rows: pd.DataFrame | None = None) -> bool:
        rows = self.rows() if rows is None else rows
        return not rows.empty and {(rounds, v) for v in VARIANTS} <= set(zip(rows["round"], rows.variant, strict=True))

    def on_round(self, row) -> None:
        # the thread count decides the reduction order, so a run is reproducible only with it (the summary's
        # environment columns are the summarising process's)
        rec = {"model": self.model, "seed": self.seed, **row.record(), "torch_threads": torch.get_num_threads(),
               "torch_version": torch.__version__}
        keys = {"model": self.model, "seed": self.seed, "round": rec["round"], "variant": rec["variant"]}
        # (a run's curve always holds its start evaluation; the columns are named so that an empty one still writes)
        curve = pd.DataFrame([{**keys, **c} for c in row.curve], columns=[*keys, *(row.curve[0] if row.curve else [])])
        for path, new in ((self.rows_path, pd.DataFrame([rec])), (self.curves_path, curve)):
            append_parquet(path, new, replace=["round", "variant"])  # a round replayed after a restart
        print(f"{self.model} seed {self.seed} round {rec['round']:>2} {rec['variant']:<14} "
              f"{100 * rec['weights_remaining']:6.2f}% test@es {rec.get('test_acc_at_early_stop', float('nan')):.4f} "
              f"es {rec['early_stop_iter']}", flush=True)

    def on_checkpoint(self, state: dict, info) -> None:
        if info.trainer is None:  # between training runs: everything up to here is kept
            tmp = self.state_path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(self.state_path)

    def run(self, args) -> None:
        data = load_dataset("mnist", args.data_dir, seed=self.seed, val_size=args.val_size,
                            device=pick_device(args.device), verify=not args.no_verify)
        resume = torch.load(self.state_path, weights_only=False) if self.state_path.exists() else None
        run = TicketRun(recipe(self.model, args, self.seed), data, device=data.train.x.device,
                        controls=("random_reinit",), on_round=self.on_round, on_checkpoint=self.on_checkpoint)
        run.run(resume=resume)
        self.state_path.unlink(missing_ok=True)


def summarize(rows: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per (model, round, variant) over seeds. ``val_loss_first`` is the validation loss at a run's first
    evaluation after its start (iteration ``first_eval_iter``): at one epoch per round the early-stop iteration is
    mostly the last one, so this is the finer measure of "learns faster". A late-reset run starts at its reset
    iteration (evaluated there, untrained), so its first evaluation after the start is the next one."""
    rows = rows.assign(variant=rows.variant.replace({"dense": "original"}))
    g = rows.groupby(["model", "round", "variant"])
    summary = g.agg(weights_pct=("weights_remaining", lambda s: 100 * s.mean()),
                    test_acc_es=("test_acc_at_early_stop", "mean"), test_acc_es_min=("test_acc_at_early_stop", "min"),
                    test_acc_es_max=("test_acc_at_early_stop", "max"), early_stop_iter=("early_stop_iter", "mean"),
                    seeds=("seed", "nunique")).reset_index()
    keys = ["model", "round", "variant"]
    curves = curves.assign(variant=curves.variant.replace({"dense": "original"}))
    start = curves.groupby([*keys, "seed"]).iteration.transform("min")
    first = curves[curves.iteration > start].sort_values("iteration").groupby([*keys, "seed"]).first().reset_index()
    first = first.groupby(keys).agg(val_loss_first=("val_loss", "mean"), first_eval_iter=("iteration", "max"))
    return summary.merge(first.reset_index(), on=keys, how="left")


def plot(summary: pd.DataFrame, model: str, title: str, out_dir: Path) -> Path:
    s_all = summary[summary.model == model]
    first_eval = s_all.first_eval_iter.max()  # NaN only when no run was evaluated after its start
    first_label = "first evaluation" if pd.isna(first_eval) else f"iteration {int(first_eval)}"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    style = {"original": ("winning ticket", "-", "C0"), "random_reinit": ("random reinit (same masks)", "--", "C3")}
    for variant, (label, ls, color) in style.items():
        s = s_all[(s_all.variant == variant) | (s_all["round"] == 0)].sort_values("weights_pct")
        axes[0].plot(s.weights_pct, 100 * s.test_acc_es, ls, color=color, marker="o", ms=3, label=label)
        axes[0].fill_between(s.weights_pct, 100 * s.test_acc_es_min, 100 * s.test_acc_es_max, color=color, alpha=0.15)
        axes[1].plot(s.weights_pct, s.early_stop_iter, ls, color=color, marker="o", ms=3, label=label)
        axes[2].plot(s.weights_pct, s.val_loss_first, ls, color=color, marker="o", ms=3, label=label)
    ticks = sorted(set(s_all.weights_pct.round(1)), reverse=True)[::2]
    ylabels = ("test accuracy at early stop (%)", "early-stop iteration", f"validation loss at {first_label}")
    for ax, ylabel in zip(axes, ylabels, strict=True):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        weights_axis(ax, ticks)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model}.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _acc(r) -> str:
    """Mean test accuracy in %, with the range over seeds when there is more than one."""
    mean = f"{100 * r.test_acc_es:.2f}"
    return mean if r.seeds < 2 else f"{mean} ({100 * r.test_acc_es_min:.2f}-{100 * r.test_acc_es_max:.2f})"


def render(summary: pd.DataFrame, status: pd.DataFrame, args) -> str:
    """The text of ``reports/lth_cnn/README.md``."""
    lines = ["# LTH on convolutional networks, MNIST", "",
             f"`python -m benchmarks.lth_cnn --models <model> --seeds <seed> --epochs {args.epochs:g} --rounds "
             f"{args.rounds} --late-reset {args.late_reset}{rate_flag(args)}` ({args.device}) for each (model, seed) "
             "below; mean "
             "(range) over the complete seeds; test accuracy at the early-stop iteration (minimum validation loss); "
             "validation loss at a run's first evaluation after its start (iteration "
             f"{', '.join(sorted({str(int(i)) for i in summary.first_eval_iter.dropna()}))}) as the measure of "
             "learning speed.",
             "", "| model | seeds complete | seeds partial (not averaged) |", "|---|---|---|"]
    for _, r in status.iterrows():
        lines.append(f"| {r.model} | {r.complete or '-'} | {r.partial or '-'} |")
    summarised = set(summary.model)
    for model in (m for m in status.model if m in summarised):  # the status table's order
        s = summary[summary.model == model].set_index(["round", "variant"])
        lines += ["", f"## {model}", "", f"![{model}]({model}.png)", "",
                  "| round | weights % | ticket test acc | reinit test acc | ticket - reinit (pp) | ticket early stop "
                  "| reinit early stop | ticket val loss, 1st eval | reinit val loss, 1st eval | seeds |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for rnd in sorted(s.index.get_level_values("round").unique()):
            t = s.loc[(rnd, "original")]
            r = s.loc[(rnd, "random_reinit")] if (rnd, "random_reinit") in s.index else None
            gap = f"{100 * (t.test_acc_es - r.test_acc_es):+.2f}" if r is not None else ""
            lines.append(f"| {rnd} | {t.weights_pct:.1f} | {_acc(t)} | {_acc(r) if r is not None else ''} | {gap} | "
                         f"{t.early_stop_iter:.0f} | {f'{r.early_stop_iter:.0f}' if r is not None else ''} | "
                         f"{t.val_loss_first:.3f} | {f'{r.val_loss_first:.3f}' if r is not None else ''} | {t.seeds} |")
    return "\n".join(lines) + "\n"


def write_report(summary: pd.DataFrame, status: pd.DataFrame, args, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "README.md"
    path.write_text(render(summary, status, args))
    return path


def stored_ladders(out: Path, models, seeds) -> list[Ladder]:
    """The ladders asked for and every other one stored in ``out``: a command that runs one model must not
    drop the others from the report (each ladder is judged complete against the same ``--rounds``)."""
    found = {(m, s) for m in models for s in seeds}
    for path in out.glob("*-s*.parquet"):
        model, _, seed = path.name.removesuffix(".parquet").rpartition("-s")
        if model in PROTOCOLS and seed.isdigit():
            found.add((model, int(seed)))
    order = list(PROTOCOLS)
    return [Ladder(out, m, s) for m, s in sorted(found, key=lambda k: (order.index(k[0]), k[1]))]


def tables(args, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the summary of the complete ladders stored in ``out``, empty if none; each model's complete and partial
    seeds): what the report is made of."""
    ladders = stored_ladders(out, args.models, args.seeds)
    stored = {lad: lad.rows() for lad in ladders}  # each ladder's file read once
    models = list(dict.fromkeys(lad.model for lad in ladders))
    done = [lad for lad in ladders if lad.complete(args.rounds, stored[lad])]
    status = pd.DataFrame([{"model": m, "complete": " ".join(str(lad.seed) for lad in done if lad.model == m),
                            "partial": " ".join(str(lad.seed) for lad in ladders if lad.model == m and lad not in done
                                                and not stored[lad].empty)} for m in models])
    if not done:
        return pd.DataFrame(), status
    rows = pd.concat([stored[lad] for lad in done], ignore_index=True)
    rows = rows[rows["round"] <= args.rounds]
    curves = pd.concat([pd.read_parquet(lad.curves_path) for lad in done], ignore_index=True)
    return summarize(rows, curves), status


def report(args, out: Path, report_dir: Path) -> pd.DataFrame:
    summary, status = tables(args, out)
    print(status.to_string(index=False))
    if summary.empty:
        print("no complete ladder yet: nothing summarised")
        return summary
    for model in summary.model.unique():
        seeds = int(summary[summary.model == model].seeds.max())
        plot(summary, model, f"{model} / MNIST, {args.epochs:g} epoch(s) per round, {args.rounds} rounds "
                             f"(mean and range over {seeds} seed(s))", report_dir)
    write_report(summary, status, args, report_dir)
    # the summary sits beside its ladders' folder, named after it: another --results never overwrites lth_cnn's
    emit(summary.assign(**environment(), epochs=args.epochs, rounds=args.rounds, device=args.device), out.name,
         out=str(out.parent / f"{out.name}.parquet"))
    return summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--models", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=float, default=1.0, help="epochs per round")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=200, help="iterations between validation passes")
    p.add_argument("--late-reset", type=int, default=500, help="iteration VGG and ResNet are reset to")
    p.add_argument("--prune-rate", type=_rate, nargs="+", default=None, metavar="KIND=RATE",
                   help="per-round rates that replace the protocol's for these layer kinds, e.g. conv=0.2 fc=0.4 "
                        "(fewer rounds at a larger rate, for a longer budget per round)")
    p.add_argument("--val-size", type=int, default=None, help="validation hold-out (default: MNIST's 5,000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=OUT, help="folder of the per-(model, seed) files")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="where the pages go (default: reports/lth_cnn, or reports/<folder> for another --results)")
    p.add_argument("--summary-only", action="store_true", help="no training: summarise what exists")
    p.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check (IDX files you made yourself)")
    return p


def _rate(text: str) -> tuple[str, float]:
    kind, _, rate = text.partition("=")
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if kind not in ("conv", "fc", "output") or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND=RATE with KIND conv, fc or output and 0 <= RATE < 1")
    return kind, value


def rate_flag(args) -> str:
    """The --prune-rate part of the study's command, as the page states it ('' for the protocol's rates)."""
    rates = dict(getattr(args, "prune_rate", None) or {})
    return " --prune-rate " + " ".join(f"{k}={v:g}" for k, v in rates.items()) if rates else ""


def report_dir_for(results: Path) -> Path:
    """The pages of a ladders folder: reports/lth_cnn for the main one, reports/<folder> for another (e.g. the
    reset-to-0 control), so that a study in another folder never overwrites the main pages."""
    return REPORT if results.resolve() == OUT.resolve() else REPO / "reports" / results.name


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.report_dir is None:
        args.report_dir = report_dir_for(args.results)
    torch.set_num_threads(args.threads)
    args.results.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        for model in args.models:
            for seed in args.seeds:
                ladder = Ladder(args.results, model, seed)
                if ladder.complete(args.rounds):
                    print(f"{model} seed {seed}: complete, skipped")
                    continue
                t0 = time.perf_counter()
                ladder.run(args)
                print(f"{model} seed {seed}: {args.rounds} rounds in {time.perf_counter() - t0:.0f} s", flush=True)
    report(args, args.results, args.report_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
