"""Structured against unstructured tickets at deployment: accuracy, parameters, MACs, file size and CPU latency.

Per model (LeNet-300-100, Conv-4, ResNet-20 on MNIST) one dense run of ``--epochs`` is trained and shared; then,
for every channel fraction in ``--keep``, a one-shot *channel* ticket (``granularity: channel``, L1 filter norm
at the end of training, reset to the initialisation, Li et al. 2017's criterion in the LTH procedure) and a
one-shot *weight* ticket (large_final) at the same fraction of weights remaining are each retrained
``--epochs`` from the initialisation. Per ticket:

- test accuracy (the dense network's beside it), weights remaining, parameters of the compact network,
  multiply-accumulates per example (``nas_lth.export.compact.count_macs``: the compact network for channel
  tickets; only the non-zero products - what an ideal sparse kernel would do - for weight tickets);
- file size: the ticket file (packed mask bits + surviving values, LZMA) and, for channel tickets, the compact
  ``torch.export`` program;
- forward latency at batch 1 and 256 (``nas_lth.export.latency.measure_latency``: the forms interleaved, median):
  ``dense`` (the same architecture with dense kernels, the dense network's speed), ``compact`` (without the
  removed channels), ``csr`` and ``csr_fc`` (CSR products, for weight tickets).

Resumable: one row per (model, granularity, keep, seed, batch) appended to ``benchmarks/results/structured.parquet``
as each ticket finishes; a ticket already there is skipped. The figure and the table are written to
``reports/structured/`` from what exists.

    python -m benchmarks.structured [--models lenet300_100 conv4 resnet20] [--keep 0.7 0.5 0.35]
                                    [--epochs 1] [--seed 0] [--summary-only]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from benchmarks.common import REPO, RESULTS, append_parquet, default_data_dir, environment  # noqa: E402
from benchmarks.lth_cnn import PROTOCOLS  # noqa: E402
from nas_lth import export  # noqa: E402
from nas_lth.data import load_dataset  # noqa: E402
from nas_lth.estimation import TicketRun, recipe_from_dict  # noqa: E402
from nas_lth.estimation.trajectory import compute_trajectory  # noqa: E402
from nas_lth.export.compact import compact, count_macs, parameters, save_program  # noqa: E402
from nas_lth.export.latency import example_batch, measure_latency  # noqa: E402

OUT = RESULTS / "structured.parquet"
REPORT = REPO / "reports" / "structured"
TRAINING = {"lenet300_100": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60},
            "conv4": PROTOCOLS["conv4"]["training"], "resnet20": PROTOCOLS["resnet20"]["training"]}
UNIT = ["model", "granularity", "keep", "seed"]  # one trained ticket; its rows are one per batch size


def base_recipe(model: str, args) -> dict:
    return {"model": model, "dataset": "mnist", "criterion": "large_final", "budget": args.epochs,
            "seed": args.seed, "prune_rate": {"output": 0.0},
            "training": {**TRAINING[model], "eval_every": 10**9}}  # validation only at the end of a run


def ticket_of(run: TicketRun, data, row) -> dict:
    rc = run.recipe
    spec = export.model_spec(rc.model, data.input_shape, data.num_classes, rc.model_options, data.meta)
    prov = {"experiment": "benchmarks.structured", "trial_id": f"{rc.model}-{rc.granularity}", "round": row.round,
            "criterion": rc.criterion, "model": rc.model, "dataset": rc.dataset, "seed": rc.seed}
    return export.pack(spec, run.masks, run.final_weights or {"end": run.model.state_dict()}, prov,
                       rc.model_dump(mode="json"))


def measure(ticket: dict, data, granularity: str, threads: int) -> list[dict]:
    """One row per batch size: sizes, MACs and the latency of each form."""
    masked = export.format.rebuild(ticket, "end", "benchmark")
    x = example_batch(data.test.x, 2)
    small = compact(masked, x)
    program = io.BytesIO()
    save_program(small, x, program)
    forms = ("dense", "compact") if granularity == "channel" else ("dense", "csr", "csr_fc", "compact")
    common = {"params_compact": parameters(small), "params_dense": parameters(masked),
              "macs": count_macs(small if granularity == "channel" else masked, x, nonzero=granularity == "weight"),
              "macs_dense": count_macs(masked, x), "file_ticket_bytes": len(export.to_bytes(ticket)),
              "file_program_bytes": len(program.getvalue())}
    torch.set_num_threads(threads)
    rows = []
    for batch in (1, 256):
        lat = measure_latency(masked, example_batch(data.test.x, batch), forms=forms, passes=3, budget_s=3.0)
        rows.append({**common, "batch": batch, **{k: v for k, v in lat.items() if k.endswith("_ms")},
                     "fastest_form": lat["latency_form"], "threads": threads})
    return rows


def have() -> set[tuple]:
    if not OUT.exists():
        return set()
    return set(map(tuple, pd.read_parquet(OUT)[UNIT].to_numpy()))


def run_model(model: str, args, data) -> None:
    base = base_recipe(model, args)
    wanted = [(model, "dense", 1.0, args.seed)] + [(model, g, k, args.seed) for k in args.keep
                                                   for g in ("channel", "weight")]
    if set(wanted) <= have():
        print(f"{model}: done")
        return
    dense_rc = recipe_from_dict({**base, "rounds": 0}, "structured")
    budget = max(1, int(round(args.epochs * dense_rc.iterations_per_epoch(len(data.train)))))
    traj = compute_trajectory(dense_rc, data, snapshot_iters={budget})
    dense_acc = traj.metrics["test_acc"]
    print(f"{model} dense: test acc {dense_acc:.4f} ({traj.wall_seconds:.0f} s)", flush=True)
    todo = [w for w in wanted if w not in have()]
    for _, granularity, keep, _ in todo:
        if granularity == "dense":
            rc = recipe_from_dict({**base, "rounds": 0}, "structured")
            run = TicketRun(rc, data, trajectory=traj)
            row = run.run()[-1]
            run.final_weights = {"end": {k: v.clone() for k, v in traj.snapshots[budget].items()}}
        else:
            target = keep if granularity == "channel" else channel_weights(model, args, data, keep)
            rc = recipe_from_dict({**base, "rounds": 1, "target_weights": target, "granularity": granularity},
                                  "structured")
            run = TicketRun(rc, data, trajectory=traj)
            row = run.run()[-1]
        ticket = ticket_of(run, data, row)
        rows = [{"model": model, "granularity": granularity, "keep": keep, "weights_remaining": row.weights_remaining,
                 "test_acc": row.metrics["test_acc"], "dense_test_acc": dense_acc, "epochs": args.epochs,
                 "seed": args.seed, "train_seconds": row.wall_seconds, **m}
                for m in measure(ticket, data, granularity, args.threads)]
        append_parquet(OUT, pd.DataFrame(rows).assign(**environment()), replace=UNIT)
        b256 = next(r for r in rows if r["batch"] == 256)
        print(f"  {granularity:<7} keep {keep:.2f}: {100 * row.weights_remaining:6.2f}% weights, test acc "
              f"{row.metrics['test_acc']:.4f}, batch 256 dense {b256['latency_dense_ms']:.1f} ms, fastest "
              f"{b256['fastest_form']} {min(v for k, v in b256.items() if k.startswith('latency_')):.1f} ms",
              flush=True)


def channel_weights(model: str, args, data, keep: float) -> float:
    """The weights remaining of the channel ticket at ``keep`` (the weight ticket is matched to it)."""
    df = pd.read_parquet(OUT)
    hit = df[(df.model == model) & (df.granularity == "channel") & (df.keep == keep) & (df.seed == args.seed)]
    return float(hit.weights_remaining.iloc[0])


def summary_table(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows with the derived columns, the table of ``reports/structured/table.md``)."""
    df = df.copy()
    lat = [c for c in df.columns if c.startswith("latency_") and c.endswith("_ms")]
    df["best_ms"] = df[lat].min(axis=1)
    # against the same architecture run dense, timed interleaved with the ticket's forms (the dense network's
    # speed: zeros cost as much as weights in dense kernels)
    df["speedup"] = df.latency_dense_ms / df.best_ms
    df["acc_drop_pp"] = 100 * (df.dense_test_acc - df.test_acc)
    cols = ["model", "granularity", "keep", "weights_remaining", "test_acc", "acc_drop_pp", "params_compact",
            "macs", "file_ticket_bytes", "batch", "latency_dense_ms", "best_ms", "fastest_form", "speedup"]
    table = df.sort_values(["model", "batch", "granularity", "keep"], ascending=[True, True, True, False])[cols]
    return df, table


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g") + "\n"


def summary() -> pd.DataFrame:
    df, table = summary_table(pd.read_parquet(OUT))
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / "table.md").write_text(markdown(table))
    figure(df)
    return table


def figure(df: pd.DataFrame) -> None:
    models = list(dict.fromkeys(df.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        d = df[(df.model == model) & (df.batch == 256)]
        for gran, marker in (("channel", "o"), ("weight", "s"), ("dense", "*")):
            g = d[d.granularity == gran]
            ax.scatter(g.speedup, 100 * g.test_acc, marker=marker, s=60 if gran == "dense" else 36, label=gran)
        ax.axvline(2.0, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1, 1.5, 2, 3, 4, 6, 8]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(f"{model} / MNIST, batch 256")
        ax.set_xlabel("speed-up over the dense network (fastest form)")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(REPORT / "structured.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    global OUT, REPORT  # noqa: PLW0603 - the script's output paths, set once from the command line
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lenet300_100", "conv4", "resnet20"], choices=sorted(TRAINING))
    p.add_argument("--keep", nargs="+", type=float, default=[0.7, 0.5, 0.35])
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--out", type=Path, default=OUT, help="results file (default: %(default)s)")
    p.add_argument("--report", type=Path, default=REPORT, help="figure and table folder (default: %(default)s)")
    args = p.parse_args(argv)
    OUT, REPORT = args.out, args.report
    if not args.summary_only:
        data = load_dataset("mnist", args.data_dir, seed=args.seed)
        for model in args.models:
            run_model(model, args, data)
    print(summary().to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()
