"""How fast do LeNet-300-100's masks settle on MNIST? The quantity Early-Bird thresholds, measured.

Iterative magnitude pruning as in the early-tickets search (Adam 1.2e-3, batch 60, ``--epochs`` per
round, layer-wise fc rate ``--fc-rate`` / output 10 % per round, reset to init). In every round's
training, at the start of every epoch (You et al. 2020's cadence), the mask each criterion would pick
now is recorded; then, per round and criterion:

- ``d_alive``: normalised Hamming distance between consecutive masks among the weights alive before the
  round (what nas_lth's Early-Bird measures);
- ``d_all``: the same count over all prunable weights (the definition before the fix, which shrinks
  with the density);
- ``fifo5_alive`` / ``fifo5_all``: the largest distance between the newest mask and the 4 before it
  (You et al.'s FIFO of 5): Early-Bird draws at the first epoch where it is <= eps.

    python -m benchmarks.early_bird_distance [--data-dir D] [--epochs 8] [--rounds 4] [--fc-rate 0.36]

Writes benchmarks/results/early_bird_distance.parquet and prints the table.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from benchmarks.common import default_data_dir, emit, environment
from nas_lth import pruning
from nas_lth.data import load_dataset
from nas_lth.estimation import Trainer, recipe_from_dict
from nas_lth.estimation.hooks import RunHook
from nas_lth.estimation.train import clone_state
from nas_lth.models import build_model, masked_layers, set_masks

CRITERIA = ("large_final", "magnitude_increase", "movement")


class _Masks(RunHook):
    """At every check: the masks each criterion would select now."""

    def __init__(self, every, w_init, alive, rates):
        self.check_every, self.w_init, self.alive, self.rates = every, w_init, alive, rates
        self.seen: list[tuple[int, dict]] = []

    def on_check(self, trainer, iteration):
        w = {n: m.weight.detach().clone() for n, m in masked_layers(trainer.model)}
        self.seen.append((iteration, {c: pruning.next_masks(c, self.w_init, w, self.alive, self.rates,
                                                            generator=torch.Generator().manual_seed(0))
                                      for c in CRITERIA}))
        return False


def _rows(seen, alive, rnd: int) -> list[dict]:
    rows = []
    for c in CRITERIA:
        masks = [(it, m[c]) for it, m in seen]
        for i, (it, m) in enumerate(masks):
            prev = [p for _, p in masks[max(0, i - 4):i]]
            row = {"round": rnd, "density": pruning.density(alive), "criterion": c, "iteration": it, "check": i}
            if prev:
                row["d_alive"] = pruning.distance(m, prev[-1], alive)
                row["d_all"] = pruning.distance(m, prev[-1])
            if len(prev) == 4:
                row["fifo5_alive"] = max(pruning.distance(m, p, alive) for p in prev)
                row["fifo5_all"] = max(pruning.distance(m, p) for p in prev)
            rows.append(row)
    return rows


def run(args) -> pd.DataFrame:
    rc = recipe_from_dict({"model": "lenet300_100", "dataset": "mnist", "budget": args.epochs, "seed": args.seed,
                           "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "eval_every": 1000}})
    data = load_dataset("mnist", args.data_dir, seed=args.seed)
    model = build_model("lenet300_100", data.input_shape, data.num_classes, seed=args.seed)
    theta0 = clone_state(model)
    kinds = {n: m.kind for n, m in masked_layers(model)}
    rates = {n: (0.1 if k == "output" else args.fc_rate) for n, k in kinds.items()}
    alive = {n: torch.ones_like(m.weight) for n, m in masked_layers(model)}
    w_init = {n: theta0[f"{n}.weight"] for n in alive}
    rows, ipe = [], rc.iterations_per_epoch(len(data.train))
    for rnd in range(args.rounds):
        model.load_state_dict(pruning.reset_state("original", alive, theta0))
        set_masks(model, alive)
        hook = _Masks(ipe, w_init, alive, rates)
        t0 = time.perf_counter()
        Trainer(model, data, rc.training, seed=args.seed, track_best=False).run(int(args.epochs * ipe), hooks=[hook])
        rows += _rows(hook.seen, alive, rnd)
        print(f"round {rnd}: {100 * pruning.density(alive):.1f} % alive, {time.perf_counter() - t0:.0f} s", flush=True)
        final = {n: m.weight.detach() for n, m in masked_layers(model)}
        alive = pruning.next_masks("large_final", w_init, final, alive, rates)  # the LTH's own next round
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--epochs", type=float, default=8)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--fc-rate", type=float, default=0.36, help="fc prune rate per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    args = p.parse_args(argv)
    df = run(args).assign(**environment(), epochs=args.epochs, fc_rate=args.fc_rate)
    emit(df, "early_bird_distance", args.out, show=["round", "density", "criterion", "iteration", "d_alive", "d_all",
                                                  "fifo5_alive", "fifo5_all"])
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    raise SystemExit(main())
