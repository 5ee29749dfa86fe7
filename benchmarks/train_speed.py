"""Seconds per epoch of LeNet-300-100 on MNIST: nas_lth's training loop against plain PyTorch.

All loops run in this one process with the same thread count, the same data already in memory as
tensors, Adam (lr 1.2e-3) and the same model shape; each configuration is timed ``--repeats`` times
in interleaved order and the median is reported.

- ``plain_slices``: a minimal hand-written loop (index slices of in-memory tensors, nn.Linear):
  the strict baseline; target: nas_lth / plain_slices <= 1.15.
- ``plain_dataloader``: the textbook loop with ``DataLoader(TensorDataset, shuffle=True)``.
- ``nas_lth``: ``nas_lth.estimation.Trainer`` with masked layers (masks re-applied after each step),
  dense (100 %) and at 7 % weights remaining; ``nas_lth+eval100`` adds the LTH protocol's
  validation pass every 100 iterations.

    python -m benchmarks.train_speed [--data-dir D] [--epochs 1] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import default_data_dir, emit, environment
from nas_lth.data import load_dataset
from nas_lth.estimation import Trainer, Training
from nas_lth.models import build_model, layer_kinds, prunable_weights, set_masks
from nas_lth.pruning import layer_rates, next_masks


def plain_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def plain_slices(x, y, bs, epochs, seed):
    torch.manual_seed(seed)
    model = plain_model()
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    n = x.shape[0]
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            loss = nn.functional.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (time.perf_counter() - t0) / epochs


def plain_dataloader(x, y, bs, epochs, seed):
    torch.manual_seed(seed)
    model = plain_model()
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (time.perf_counter() - t0) / epochs


def nas_lth_loop(data, bs, epochs, seed, *, density=1.0, eval_every=None):
    model = build_model("lenet300_100", data.input_shape, data.num_classes, seed=seed)
    if density < 1.0:  # prune to the requested density by magnitude, like a late LTH round
        w = {n: p.detach() for n, p in prunable_weights(model).items()}
        masks = {n: torch.ones_like(p) for n, p in w.items()}
        rate = 1 - density
        masks = next_masks("large_final", w, w, masks, layer_rates(layer_kinds(model), {"fc": rate,
                           "output": rate}))
        set_masks(model, masks)
    ipe = -(-len(data.train) // bs)
    cfg = Training(optimizer="adam", lr=1.2e-3, batch_size=bs, eval_every=eval_every or 10**9)
    trainer = Trainer(model, data, cfg, seed=seed, track_best=False)
    t0 = time.perf_counter()
    trainer.run(ipe * epochs)
    # includes nas_lth's validation passes (before the first step and at the end, at least)
    return (time.perf_counter() - t0) / epochs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs per timed run (nas_lth evaluates at the start and at the end)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[60, 128])
    p.add_argument("--threads", type=int, default=None, help="torch threads for every loop (default: torch's)")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset("mnist", args.data_dir, seed=0)
    x, y = data.train.x, data.train.y
    configs = {
        "plain_slices": lambda bs: plain_slices(x, y, bs, args.epochs, 0),
        "plain_dataloader": lambda bs: plain_dataloader(x, y, bs, args.epochs, 0),
        "nas_lth": lambda bs: nas_lth_loop(data, bs, args.epochs, 0),
        "nas_lth@7%": lambda bs: nas_lth_loop(data, bs, args.epochs, 0, density=0.07),
        "nas_lth+eval100": lambda bs: nas_lth_loop(data, bs, args.epochs, 0, eval_every=100),
    }
    env = environment()
    rows = []
    for bs in args.batch_sizes:
        for fn in configs.values():  # warm-up: allocator, thread pool, lazy init
            fn(bs)
        times = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, fn in configs.items():  # interleaved so drift hits all loops alike
                times[name].append(fn(bs))
        base = statistics.median(times["plain_slices"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append({"batch_size": bs, "loop": name, "sec_per_epoch_median": med,
                         "sec_per_epoch_min": min(ts), "ratio_vs_plain_slices": med / base,
                         "repeats": len(ts), "epochs_per_repeat": args.epochs,
                         "train_examples": len(data.train), **env})
    df = pd.DataFrame(rows)
    emit(df, "train_speed", args.out,
         show=["batch_size", "loop", "sec_per_epoch_median", "sec_per_epoch_min", "ratio_vs_plain_slices"])
    worst = df[df.loop == "nas_lth"].ratio_vs_plain_slices.max()
    print(f"\nnas_lth / plain_slices (worst batch size): {worst:.3f}  (target <= 1.15)")
    return 0 if worst <= 1.15 else 1


if __name__ == "__main__":
    raise SystemExit(main())
