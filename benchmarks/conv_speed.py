"""Seconds per training iteration of the convolutional models on MNIST: nas_lth's loop against plain PyTorch.

For Conv-2, Conv-4, Conv-6, VGG-11 and ResNet-20 (MNIST, batch 60 for the Conv nets and 64 for VGG/ResNet, as in
``benchmarks/lth_cnn.py``), all in this one process with the same thread count, the same in-memory data and
optimizer (Adam for Conv, SGD momentum for VGG/ResNet), ``--iterations`` training steps per timed run,
interleaved over ``--repeats`` passes, median reported:

- ``plain``: a minimal hand-written loop over the same architecture (index slices of in-memory tensors,
  forward, cross-entropy, backward, step), NCHW (``contiguous``) memory format;
- ``plain_cl``: the same loop with the model and the input in ``channels_last`` (NHWC) memory format, which
  oneDNN's CPU convolutions prefer;
- ``nas_lth``: ``nas_lth.estimation.Trainer`` as the search runs it (masked layers, masks re-applied after
  each step at 20 % pruned; NCHW, the trainer's default);
- ``nas_lth_cl``: the same trainer with ``memory_format="channels_last"``;
- ``plain_cl_compiled`` (with ``--compile``): the ``plain_cl`` loop with the model under ``torch.compile``
  (inductor, default mode; built and compiled once per model in the warm-up, so compile time is not timed).

The ratio column is nas_lth / the fastest plain loop; the goal is <= 1.10 for every model. Timing is only
meaningful on a quiet machine: the script prints the load average before and after.

    python -m benchmarks.conv_speed [--models ...] [--iterations 20] [--repeats 3] [--threads 2] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd
import torch
from torch import nn

from benchmarks.common import default_data_dir, emit, environment
from nas_lth.data import load_dataset
from nas_lth.estimation import Trainer, Training
from nas_lth.models import build_model, layer_kinds, prunable_weights, set_masks
from nas_lth.pruning import layer_rates, next_masks

SETTINGS = {  # model -> (batch size, optimizer settings)
    "conv2": (60, {"optimizer": "adam", "lr": 2e-4}),
    "conv4": (60, {"optimizer": "adam", "lr": 3e-4}),
    "conv6": (60, {"optimizer": "adam", "lr": 3e-4}),
    "vgg11": (64, {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}),
    "resnet20": (64, {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}),
}


def _optimizer(model: nn.Module, opt: dict):
    if opt["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=opt["lr"])
    return torch.optim.SGD(model.parameters(), lr=opt["lr"], momentum=opt["momentum"])


def plain(name: str, data, iterations: int, channels_last: bool, compiled: dict | None = None) -> float:
    """``compiled``: a cache for the ``torch.compile`` variant; the compiled model is built once and trained on
    across calls (a fresh module per call would recompile, and compile time is not what is measured)."""
    bs, opt_cfg = SETTINGS[name]
    x, y = data.train.x, data.train.y
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if compiled is not None and name in compiled:
        model, opt = compiled[name]
    else:
        model = build_model(name, data.input_shape, data.num_classes, seed=0).train()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = _optimizer(model, opt_cfg)
        if compiled is not None:
            model = torch.compile(model)
            compiled[name] = (model, opt)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(x.shape[0], generator=g)
    t0 = time.perf_counter()
    for i in range(iterations):
        idx = perm[i * bs:(i + 1) * bs]
        loss = nn.functional.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / iterations


def nas_lth(name: str, data, iterations: int, memory_format: str) -> float:
    bs, opt_cfg = SETTINGS[name]
    model = build_model(name, data.input_shape, data.num_classes, seed=0)
    w = {n: p.detach() for n, p in prunable_weights(model).items()}
    masks = next_masks("large_final", w, w, {n: torch.ones_like(p) for n, p in w.items()},
                       layer_rates(layer_kinds(model), {"conv": 0.2, "fc": 0.2, "output": 0.2}))
    set_masks(model, masks)  # a pruned round: the per-step mask multiply is part of the cost
    cfg = Training(**opt_cfg, batch_size=bs, eval_every=10**9)
    trainer = Trainer(model, data, cfg, seed=0, track_best=False, memory_format=memory_format)
    t0 = time.perf_counter()
    trainer.run(iterations)  # plus one validation pass before the first step and one at the end (tiny split)
    return (time.perf_counter() - t0) / iterations


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--iterations", type=int, default=20, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--val-size", type=int, default=60, help="a tiny validation split: the timing is of training")
    p.add_argument("--compile", action="store_true", help="also time the channels_last loop under torch.compile")
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist", args.data_dir, seed=0, val_size=args.val_size)
    load_before = os.getloadavg()[0]
    configs = {
        "plain": lambda m: plain(m, data, args.iterations, channels_last=False),
        "plain_cl": lambda m: plain(m, data, args.iterations, channels_last=True),
        "nas_lth": lambda m: nas_lth(m, data, args.iterations, "contiguous"),
        "nas_lth_cl": lambda m: nas_lth(m, data, args.iterations, "channels_last"),
    }
    if args.compile:
        cache: dict = {}
        configs["plain_cl_compiled"] = lambda m: plain(m, data, args.iterations, channels_last=True, compiled=cache)
    rows = []
    for model in args.models:
        for fn in configs.values():  # warm-up: allocator, oneDNN primitive caches, thread pool
            fn(model)
        times = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, fn in configs.items():  # interleaved: drift hits every loop alike
                times[name].append(fn(model))
        fastest_plain = min(statistics.median(ts) for name, ts in times.items() if name.startswith("plain"))
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append({"model": model, "loop": name, "ms_per_iter_median": 1000 * med,
                         "ms_per_iter_min": 1000 * min(ts),
                         "ratio_vs_fastest_plain": med / fastest_plain, "repeats": len(ts),
                         "iterations": args.iterations, "batch_size": SETTINGS[model][0]})
        line = ", ".join(f"{r['loop']} {r['ms_per_iter_median']:.1f} ms" for r in rows[-len(configs):])
        print(f"{model}: {line}", flush=True)
    df = pd.DataFrame(rows).assign(**{**environment(), "threads": args.threads}, load_before=load_before,
                                   load_after=os.getloadavg()[0])
    emit(df, "conv_speed", args.out,
         show=["model", "loop", "ms_per_iter_median", "ms_per_iter_min", "ratio_vs_fastest_plain"])
    worst = df[df.loop == "nas_lth"].ratio_vs_fastest_plain.max()
    worst_cl = df[df.loop == "nas_lth_cl"].ratio_vs_fastest_plain.max()
    print(f"\nnas_lth / fastest plain loop (worst model): {worst:.3f} NCHW, {worst_cl:.3f} channels_last "
          f"(goal <= 1.10); load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
