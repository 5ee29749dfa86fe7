"""What a ticket buys at deployment: file size, memory and CPU inference latency against sparsity.

Real tickets, trained here and written with ``nas_lth.export``, at 100, 21, 7, 3.6 and 1.9 % weights:

- LeNet-300-100 / MNIST: the LTH protocol (large_final, fc 20 % / output 10 % per round, reset to
  init), 18 rounds of ``--epochs`` each; the rounds 0, 7, 12, 15, 18 hit the five levels.
- Conv-2 / MNIST (``--conv-dataset cifar10`` when its tarball is at hand): one-shot tickets from one
  shared dense run (``target_weights`` = each level for conv and fc layers, output 10 %), Adam 2e-4 as
  in the paper, ``--conv-epochs`` per run - iterative pruning of a conv net is ~1 h on 2 cores.

Per ticket:
- sizes: the dense ``state_dict`` file (``torch.save``), the nas_lth ticket file (packed mask bits +
  surviving float32 values, LZMA), a ``torch.save`` of the CSR tensors; in memory: dense float32,
  packed bits + values, torch CSR (int64 indices + values), each with the dense biases;
- latency of one forward pass at batch 1 and 256, min and median over ``--repeats``:
  ``dense`` (dense kernels; the ticket's zeros cost as much as weights - this is also what
  ``nas_lth.export.load`` returns), ``masked`` (``torch.nn.utils.prune``: weight * mask at each call,
  how mask-based LTH code runs a ticket), ``csr`` (``nas_lth.export.to_sparse``: CSR x dense,
  convolutions as unfold + CSR) and, for the conv model, ``csr_fc`` (CSR linear layers, dense convs);
- the reloaded file's test accuracy (dense and CSR) against the run's recorded accuracy.

    python -m benchmarks.inference [--data-dir D] [--threads 1] [--repeats 30]

Writes benchmarks/results/inference.parquet and reports/inference/ (figure + table).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.common import REPO, default_data_dir, emit, environment, weights_axis  # noqa: E402
from nas_lth import export  # noqa: E402
from nas_lth.data import load_dataset  # noqa: E402
from nas_lth.estimation import TicketRun, recipe_from_dict  # noqa: E402
from nas_lth.estimation.metrics import evaluate, predict  # noqa: E402
from nas_lth.estimation.trajectory import compute_trajectory  # noqa: E402
from nas_lth.export.latency import masked_copy, time_forward  # noqa: E402
from nas_lth.models import masked_layers  # noqa: E402

LEVELS = [1.0, 0.211, 0.070, 0.036, 0.019]  # the LTH paper's LeNet ladder: rounds 0, 7, 12, 15, 18
LENET_ROUNDS = {0: 1.0, 7: 0.211, 12: 0.070, 15: 0.036, 18: 0.019}
MODES = ("dense", "masked", "csr", "csr_fc")
CSR_CHECK = 1000  # test images on which CSR execution must predict what dense execution predicts


# ------------------------------------------------------------------ tickets


def _ticket(run: TicketRun, data, masks, state, level: float, row) -> dict:
    rc = run.recipe
    spec = export.model_spec(rc.model, data.input_shape, data.num_classes, rc.model_options, data.meta)
    metrics = {k: v for k, v in row.metrics.items() if not k.endswith("_at_early_stop")}
    prov = {"experiment": "benchmarks.inference", "trial_id": f"{rc.model}@{level:g}", "round": row.round,
            "criterion": rc.criterion, "model": rc.model, "dataset": rc.dataset, "seed": rc.seed,
            "rewind_to": rc.rewind_to, "metrics": {"end": metrics}}
    return export.pack(spec, masks, {"end": state}, prov, rc.model_dump(mode="json"))


def lenet_tickets(data, epochs: float, seed: int) -> list[tuple[float, dict]]:
    rc = recipe_from_dict({"model": "lenet300_100", "dataset": "mnist", "criterion": "large_final",
                           "rounds": max(LENET_ROUNDS), "budget": epochs, "seed": seed,
                           "prune_rate": {"fc": 0.2, "output": 0.1}})
    out = []
    run = TicketRun(rc, data)

    def on_round(row):
        if row.round in LENET_ROUNDS:
            state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
            masks = {n: m.cpu().clone() for n, m in run.masks.items()}
            out.append((LENET_ROUNDS[row.round], _ticket(run, data, masks, state, LENET_ROUNDS[row.round], row)))
            print(f"  lenet300_100 round {row.round:>2}: {100 * row.weights_remaining:6.2f}% weights, "
                  f"test acc {row.metrics['test_acc']:.4f}", flush=True)

    run.on_round = on_round
    run.run()
    return out


def conv_tickets(data, dataset: str, epochs: float, seed: int) -> list[tuple[float, dict]]:
    # the paper's Conv-2 optimiser (Adam 2e-4, batch 60); validation only at the end of a run - a full
    # validation pass of Conv-2 at 28x28 costs as much as ~1/3 of the training here
    base = {"model": "conv2", "dataset": dataset, "criterion": "large_final", "budget": epochs, "seed": seed,
            "prune_rate": {"conv": 0.1, "fc": 0.2, "output": 0.1},
            "training": {"lr": 2e-4, "eval_every": 10**9}}
    dense_rc = recipe_from_dict({**base, "rounds": 0})
    budget = max(1, int(round(epochs * dense_rc.iterations_per_epoch(len(data.train)))))
    traj = compute_trajectory(dense_rc, data, snapshot_iters={budget})  # the end state: the dense ticket
    print(f"  conv2 dense: test acc {traj.metrics['test_acc']:.4f} ({traj.wall_seconds:.0f} s)", flush=True)
    out = []
    for level in LEVELS:
        rc = recipe_from_dict({**base, "rounds": 0} if level == 1.0 else {**base, "rounds": 1,
                                                                          "target_weights": level})
        run = TicketRun(rc, data, trajectory=traj)
        rows = run.run()
        row = rows[-1]
        if level == 1.0:  # the dense net itself: its weights are the trajectory's end state
            state = {k: v.clone() for k, v in traj.snapshots[budget].items()}
        else:
            state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        masks = {n: m.cpu().clone() for n, m in run.masks.items()}
        out.append((level, _ticket(run, data, masks, state, level, row)))
        print(f"  conv2 one-shot: {100 * row.weights_remaining:6.2f}% weights, "
              f"test acc {row.metrics['test_acc']:.4f}", flush=True)
    return out


# ------------------------------------------------------------------ sizes


def plain_state(model: nn.Module) -> dict:
    return {k: v for k, v in model.state_dict().items() if not k.endswith(".mask")}


def saved_size(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def sizes(model: nn.Module, ticket_bytes: int) -> dict:
    layers = dict(masked_layers(model))
    state = plain_state(model)
    prunable = {f"{n}.weight" for n in layers}
    other = sum(v.numel() * v.element_size() for k, v in state.items() if k not in prunable)
    dense = sum(v.numel() * v.element_size() for v in state.values())
    packed, csr, csr_state = other, other, {}
    for k, v in state.items():
        if k not in prunable:
            csr_state[k] = v
    for n, layer in layers.items():
        w = layer.weight.detach()
        nnz = int(layer.mask.count_nonzero())
        packed += (w.numel() + 7) // 8 + 4 * nnz
        mat = w.reshape(w.shape[0], -1).to_sparse_csr()
        csr += sum(t.numel() * t.element_size() for t in (mat.crow_indices(), mat.col_indices(), mat.values()))
        csr_state[f"{n}.weight"] = mat
    return {"file_dense_bytes": saved_size(state), "file_ticket_bytes": ticket_bytes,
            "file_csr_bytes": saved_size(csr_state), "mem_dense_bytes": dense, "mem_packed_bytes": packed,
            "mem_csr_bytes": csr}


# ------------------------------------------------------------------ latency


def measure(name: str, level: float, ticket: dict, data, args, tmp: Path) -> list[dict]:
    path = tmp / f"{name}-{level:g}.pt"
    nbytes = export.save(ticket, path)
    model = export.load(path, raw=False)  # the network alone: latency without the input transform
    csr = export.to_sparse(model)
    models = {"dense": model, "masked": masked_copy(model), "csr": csr}
    if any(isinstance(m, nn.Conv2d | nn.Conv1d) for _, m in masked_layers(model)):
        models["csr_fc"] = export.to_sparse(model, layers=("linear",))
    recorded = ticket["provenance"]["metrics"]["end"]["test_acc"]
    reloaded = evaluate(model, data.test, data.multilabel)["acc"]
    # CSR on the first test images only (a dense-weight CSR convolution is slow): same predictions?
    x_check = data.test.x[:CSR_CHECK]
    want = predict(model, x_check).argmax(1)
    agree = float((predict(csr, x_check).argmax(1) == want).float().mean())
    agree_fc = float((predict(models["csr_fc"], x_check).argmax(1) == want).float().mean()) \
        if "csr_fc" in models else 1.0
    common = {"model": name, "level": level, "weights_remaining": ticket["provenance"]["weights_remaining"],
              "test_acc_recorded": recorded, "test_acc_reloaded": reloaded, "csr_agreement": agree,
              "csr_fc_agreement": agree_fc,
              **sizes(model, nbytes)}
    rows = []
    g = torch.Generator().manual_seed(0)
    for batch in args.batches:
        idx = torch.randint(0, len(data.test), (batch,), generator=g)
        x = data.test.x[idx]
        reps = args.repeats if batch <= 16 else max(5, args.repeats // 3)
        for _ in range(2):  # interleaved passes over the modes: drift hits all modes alike
            for mode in [m for m in MODES if m in models]:
                lo, med = time_forward(models[mode], x, reps)
                rows.append({**common, "batch": batch, "mode": mode, "latency_min_s": lo, "latency_median_s": med,
                             "repeats": reps})
    df = pd.DataFrame(rows)
    keys = ["model", "level", "batch", "mode"]
    agg = df.groupby(keys, as_index=False).agg(latency_min_s=("latency_min_s", "min"),
                                               latency_median_s=("latency_median_s", "median"),
                                               repeats=("repeats", "sum"))
    return agg.merge(df.drop(columns=["latency_min_s", "latency_median_s", "repeats"]).drop_duplicates(keys),
                     on=keys).to_dict("records")


# ------------------------------------------------------------------ output


def break_even(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, batch and sparse mode: the densest ticket from which on the sparse mode beats dense
    kernels (median latency) at that level and at every sparser one - one lucky level does not count."""
    out = []
    for (model, batch), g in df.groupby(["model", "batch"]):
        piv = g.pivot_table(index="weights_remaining", columns="mode", values="latency_median_s").sort_index()
        for mode in [m for m in ("csr", "csr_fc") if m in piv]:
            faster = None
            for w, r in piv.iterrows():  # sparsest first
                if r[mode] >= r["dense"]:
                    break
                faster = w
            out.append({"model": model, "batch": batch, "mode": mode,
                        "faster_at_or_below": float("nan") if faster is None else float(faster),
                        "speedup_at_sparsest": float(piv["dense"].iloc[0] / piv[mode].iloc[0])})
    return pd.DataFrame(out)


def _finish_axes(ax, ylabel: str, title: str) -> None:
    weights_axis(ax, [100 * v for v in LEVELS])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot(df: pd.DataFrame, out_dir: Path) -> Path:
    """One row per model: latency against weights remaining per batch size, then file compression."""
    models, batches = sorted(df.model.unique()), sorted(df.batch.unique())
    ncols = len(batches) + 1
    fig, axes = plt.subplots(len(models), ncols, figsize=(4.4 * ncols, 3.5 * len(models)), squeeze=False)
    styles = {"dense": ("C0", "-"), "masked": ("C1", "--"), "csr": ("C2", "-"), "csr_fc": ("C3", ":")}
    for i, model in enumerate(models):
        for j, batch in enumerate(batches):
            ax = axes[i][j]
            g = df[(df.model == model) & (df.batch == batch)]
            for mode in [m for m in MODES if m in set(g["mode"])]:
                s = g[g["mode"] == mode].sort_values("weights_remaining")
                color, ls = styles[mode]
                ax.plot(100 * s.weights_remaining, 1e3 * s.latency_median_s, ls, color=color, marker="o", ms=3,
                        label=mode)
            _finish_axes(ax, "latency, median (ms, log)", f"{model}, batch {batch}")
        ax = axes[i][-1]
        s = df[df.model == model].drop_duplicates("level").sort_values("weights_remaining")
        ax.plot(100 * s.weights_remaining, s.file_dense_bytes / s.file_ticket_bytes, marker="o", label="ticket file")
        ax.plot(100 * s.weights_remaining, s.file_dense_bytes / s.file_csr_bytes, "--", marker="s", ms=3,
                label="torch.save of CSR")
        _finish_axes(ax, "dense file / file (x, log)", f"{model}: file size")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "inference.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(df: pd.DataFrame, be: pd.DataFrame, args, seconds: float, env: dict) -> str:
    kib = 1024
    lines = [
        "# Deployment: size and CPU inference latency of tickets",
        "",
        f"Generated by `python -m benchmarks.inference --threads {args.threads} --repeats {args.repeats} "
        f"--epochs {args.epochs:g} --conv-epochs {args.conv_epochs:g} --batches {' '.join(map(str, args.batches))} "
        f"--models {' '.join(args.models)}` in {seconds / 60:.0f} min "
        f"(torch {env['torch']}, {env['threads']} thread(s) of a {env['cores']}-core {env['cpu']}).",
        "",
        "## Sizes",
        "",
        "| model | weights % | test acc (recorded / reloaded) | CSR = dense predictions | dense file KiB | "
        "ticket file KiB | ratio | CSR file KiB | memory: dense / packed / CSR KiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    first = df.drop_duplicates(["model", "level"]).sort_values(["model", "level"], ascending=[True, False])
    for r in first.itertuples():
        lines.append(
            f"| {r.model} | {100 * r.weights_remaining:.2f} | {r.test_acc_recorded:.4f} / {r.test_acc_reloaded:.4f} | "
            f"{100 * r.csr_agreement:.1f} % | {r.file_dense_bytes / kib:.0f} | {r.file_ticket_bytes / kib:.1f} | "
            f"{r.file_dense_bytes / r.file_ticket_bytes:.1f}x | {r.file_csr_bytes / kib:.0f} | "
            f"{r.mem_dense_bytes / kib:.0f} / {r.mem_packed_bytes / kib:.0f} / {r.mem_csr_bytes / kib:.0f} |")
    lines += ["", "## Latency of one forward pass (ms, median / min)", "",
              "| model | batch | weights % | dense | masked (weight * mask) | CSR | CSR speed-up vs dense | "
              "CSR fc only, dense convs | its speed-up |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (model, batch, _), g in df.groupby(["model", "batch", "level"], sort=False):
        m = g.set_index("mode")
        cell = {mode: f"{1e3 * m.loc[mode, 'latency_median_s']:.3f} / {1e3 * m.loc[mode, 'latency_min_s']:.3f}"
                if mode in m.index else "-" for mode in MODES}
        sp = {mode: f"{m.loc['dense', 'latency_median_s'] / m.loc[mode, 'latency_median_s']:.2f}x"
              if mode in m.index else "-" for mode in ("csr", "csr_fc")}
        lines.append(f"| {model} | {batch} | {100 * g.weights_remaining.iloc[0]:.2f} | {cell['dense']} | "
                     f"{cell['masked']} | {cell['csr']} | {sp['csr']} | {cell['csr_fc']} | {sp['csr_fc']} |")
    lines += ["", "## Where CSR execution starts to pay off", "",
              "| model | batch | execution | faster than dense at or below (weights %) | speed-up at the sparsest |",
              "|---|---:|---|---:|---:|"]
    for r in be.itertuples():
        at = "never (in these levels)" if np.isnan(r.faster_at_or_below) else f"{100 * r.faster_at_or_below:.2f}"
        lines.append(f"| {r.model} | {r.batch} | {r.mode} | {at} | {r.speedup_at_sparsest:.2f}x |")
    lines += ["", "![latency and compression](inference.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--epochs", type=float, default=2, help="epochs per LeNet round")
    p.add_argument("--conv-epochs", type=float, default=0.25, help="epochs per Conv-2 run")
    p.add_argument("--conv-dataset", default="mnist")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for the timings")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=["lenet300_100", "conv2"])
    p.add_argument("--out-dir", default=str(REPO / "reports" / "inference"))
    p.add_argument("--results", default=None, help="Parquet path (default benchmarks/results/inference.parquet)")
    p.add_argument("--replot", action="store_true", help="redraw the figure from the stored Parquet")
    args = p.parse_args(argv)
    if args.replot:
        plot(pd.read_parquet(args.results or REPO / "benchmarks" / "results" / "inference.parquet"),
             Path(args.out_dir))
        return 0
    t0 = time.perf_counter()
    torch.set_num_threads(2)  # training the tickets
    mnist = load_dataset("mnist", args.data_dir, seed=args.seed)
    tickets = {}
    if "lenet300_100" in args.models:
        tickets["lenet300_100"] = (lenet_tickets(mnist, args.epochs, args.seed), mnist)
    if "conv2" in args.models:
        data = mnist if args.conv_dataset == "mnist" else load_dataset(args.conv_dataset, args.data_dir,
                                                                       seed=args.seed)
        tickets["conv2"] = (conv_tickets(data, args.conv_dataset, args.conv_epochs, args.seed), data)
    torch.set_num_threads(args.threads)
    env = {**environment(), "threads": torch.get_num_threads()}
    rows = []
    tmp = Path(args.out_dir) / "tickets"
    tmp.mkdir(parents=True, exist_ok=True)
    for name, (items, data) in tickets.items():
        for level, ticket in items:
            rows += measure(name, level, ticket, data, args, tmp)
            print(f"  measured {name} at {100 * ticket['provenance']['weights_remaining']:.2f}%", flush=True)
    df = pd.DataFrame(rows).assign(**{k: v for k, v in env.items()})
    seconds = time.perf_counter() - t0
    emit(df, "inference", args.results,
         show=["model", "weights_remaining", "batch", "mode", "latency_median_s", "latency_min_s",
               "file_dense_bytes", "file_ticket_bytes", "file_csr_bytes", "test_acc_recorded", "test_acc_reloaded"])
    be = break_even(df)
    print(be.to_string(index=False))
    out_dir = Path(args.out_dir)
    plot(df, out_dir)
    (out_dir / "README.md").write_text(markdown(df, be, args, seconds, env))
    for f in tmp.glob("*.pt"):  # the tickets are measured, not kept: the table records them
        f.unlink()
    tmp.rmdir()
    print(f"figure and table in {out_dir}")
    bad = df[(df.test_acc_reloaded != df.test_acc_recorded) | (df.csr_agreement < 1.0)
             | (df.csr_fc_agreement < 1.0)]
    if len(bad):
        print(f"MISMATCH: {len(bad)} rows where the reloaded or CSR ticket disagrees with the recorded one")
    return 1 if len(bad) else 0


if __name__ == "__main__":
    raise SystemExit(main())
