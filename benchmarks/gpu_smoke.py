"""One pruning round of every image model on a device (CUDA by default): does it train, stay masked, export?

Per model (LeNet-300-100, Conv-2/4/6, VGG-11, ResNet-20; MNIST): one round of the LTH procedure
(large_final, 20 % per round, reset to init; ``--epochs`` per run), then the checks a GPU run must pass:

- the run trains (the validation loss after training is below the untrained one; metrics finite);
- pruned weights stay *exactly* zero on the device after every optimizer step (``weight[mask == 0] == 0``);
- the ticket packs to nas_lth's ticket format, reloads on the CPU and gives the test accuracy the run recorded
  (to 1e-6: same weights, different device kernels may differ in the last bits of a logit, never in accuracy
  beyond one image in ``--tolerance-images``);
- the training throughput (iterations / s and images / s) is printed and written.

Exit code 1 if a check fails. Meant to take < 5 minutes on one GPU with the default ``--epochs 0.5``; the CPU
path (``--device cpu``, tiny data) runs in the tests so the script stays correct where no GPU is at hand.

    python -m benchmarks.gpu_smoke [--device cuda] [--models ...] [--epochs 0.5] [--data-dir D]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from benchmarks.common import default_data_dir, emit, environment
from benchmarks.lth_cnn import PROTOCOLS
from nas_lth import export
from nas_lth.data import load_dataset
from nas_lth.device import pick_device
from nas_lth.estimation import TicketRun, recipe_from_dict
from nas_lth.estimation.metrics import evaluate
from nas_lth.export.format import rebuild
from nas_lth.models import masked_layers

# model -> (optimizer settings, prune rates): the LTH paper's, one round; the CNNs as benchmarks/lth_cnn.py runs them
MODELS = {"lenet300_100": ({"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60}, {"fc": 0.2, "output": 0.1}),
          **{m: (p["training"], p["prune_rate"]) for m, p in PROTOCOLS.items()}}


class MaskWatch:
    """Checks after each epoch of every run that the pruned weights are exactly zero (on the device)."""

    def __init__(self):
        self.violations = 0
        self.checks = 0

    def __call__(self, state: dict, info) -> None:
        tr = info.trainer
        if tr is None:
            return
        for _, layer in masked_layers(tr.model):
            self.checks += 1
            self.violations += int((layer.weight.detach()[layer.mask == 0] != 0).sum())


def smoke(model: str, data, args) -> dict:
    training, rates = MODELS[model]
    recipe = recipe_from_dict({
        "model": model, "dataset": "mnist", "criterion": "large_final", "stop_at": "end", "rewind_to": 0,
        "reinit": "original", "prune_rate": rates, "rounds": 1, "budget": args.epochs, "seed": 0,
        "val_size": args.val_size, "training": {**training, "eval_every": args.eval_every},
    }, f"gpu_smoke {model}")
    watch = MaskWatch()
    run = TicketRun(recipe, data, device=data.train.x.device, on_checkpoint=watch)
    t0 = time.perf_counter()
    rows = run.run()
    seconds = time.perf_counter() - t0
    ticket_row = rows[-1]
    rec = ticket_row.record()
    first = ticket_row.curve[0]["val_loss"] if ticket_row.curve else float("nan")
    trained = rec["val_loss"] < first
    finite = all(torch.isfinite(torch.tensor(float(v))) for k, v in rec.items()
                 if k.startswith(("val_", "test_")) and isinstance(v, float))
    spec = export.model_spec(model, data.input_shape, data.num_classes, None, data.meta)
    ticket = export.pack(spec, run.masks, run.final_weights, {"experiment": "gpu_smoke", "trial_id": model},
                         recipe.model_dump(mode="json"))
    reloaded = export.from_bytes(export.to_bytes(ticket), f"{model} ticket")
    cpu_model = rebuild(reloaded, "end", model)
    test_cpu = evaluate(cpu_model, data.test.to("cpu"), data.multilabel)["acc"]
    n_test = len(data.test)
    export_ok = abs(test_cpu - rec["test_acc"]) * n_test <= args.tolerance_images
    iters = sum(r.iterations for r in rows)
    return {"model": model, "device": str(data.train.x.device), "weights_remaining": rec["weights_remaining"],
            "test_acc": rec["test_acc"], "test_acc_reloaded_cpu": test_cpu, "val_loss_untrained": first,
            "val_loss": rec["val_loss"], "trained": trained, "metrics_finite": finite,
            "mask_checks": watch.checks, "mask_violations": watch.violations,
            "masks_zero": watch.checks > 0 and watch.violations == 0, "export_reload_ok": export_ok,
            "iterations": iters, "seconds": seconds, "iters_per_s": iters / seconds,
            "images_per_s": iters * training["batch_size"] / seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--epochs", type=float, default=0.5, help="epochs per training run (dense, then ticket)")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--val-size", type=int, default=None)
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check (IDX files you made yourself)")
    p.add_argument("--tolerance-images", type=int, default=1, help="test images the reloaded ticket may differ on")
    p.add_argument("--out", default=None, help="Parquet path (default benchmarks/results/gpu_smoke.parquet)")
    args = p.parse_args(argv)
    dev = pick_device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    data = load_dataset("mnist", args.data_dir, seed=0, val_size=args.val_size, device=dev,
                        verify=not args.no_verify)
    rows = []
    for model in args.models:
        r = smoke(model, data, args)
        ok = r["trained"] and r["metrics_finite"] and r["masks_zero"] and r["export_reload_ok"]
        print(f"{model:<13} {'ok' if ok else 'FAILED':<7} test {r['test_acc']:.4f} (reloaded on cpu "
              f"{r['test_acc_reloaded_cpu']:.4f}) weights {100 * r['weights_remaining']:.1f}% masks zero "
              f"{r['masks_zero']} ({r['mask_checks']} checks) {r['iters_per_s']:.0f} it/s "
              f"{r['images_per_s']:.0f} img/s", flush=True)
        rows.append({**r, "ok": ok})
    df = pd.DataFrame(rows).assign(**environment(),
                                   gpu=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "")
    emit(df, "gpu_smoke", out=args.out, show=["model", "ok", "test_acc", "weights_remaining", "iters_per_s"])
    return 0 if df.ok.all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
