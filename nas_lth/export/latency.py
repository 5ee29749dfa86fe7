"""How fast a ticket runs: forward-pass latency of one batch, in each way a ticket can be executed.

Forms (``FORMS``):

- ``dense``: the ticket as a plain module, dense kernels (its zeros cost as much as weights; this is what
  :func:`nas_lth.export.load` returns);
- ``masked``: ``torch.nn.utils.prune``'s ``weight * mask`` at every call, how mask-based LTH code runs a ticket;
- ``csr``: :func:`nas_lth.export.to_sparse`, CSR x dense products (convolutions as unfold + CSR);
- ``csr_fc``: CSR linear layers, dense convolutions (only for models with convolutions; often the faster mix);
- ``compact``: :func:`nas_lth.export.compact.compact`, the network without the channels the ticket removed,
  dense kernels (a channel ticket's form; for a weight ticket it drops only neurons no layer writes or reads).

:func:`measure_latency` times the forms interleaved (drift hits them alike) and reports the median of each and
the fastest: the deployment cost of the ticket is that of the best way to run it.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn
from torch.nn.utils import prune

from nas_lth.export.compact import compact
from nas_lth.export.sparse import to_sparse
from nas_lth.models.layers import masked_layers
from nas_lth.recipe import LATENCY_FORMS

FORMS = LATENCY_FORMS
DEFAULT_FORMS = ("dense", "masked", "csr", "compact")


def masked_copy(model: nn.Module) -> nn.Module:
    """The ticket run the way mask-based LTH code runs it: torch.nn.utils.prune's weight * mask."""
    out = copy.deepcopy(model).eval()
    for _, layer in masked_layers(out):
        mask = layer.mask.clone()
        del layer._buffers["mask"]
        prune.custom_from_mask(layer, "weight", mask)
    return out


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv1d | nn.Conv2d) for _, m in masked_layers(model))


def runnable(model: nn.Module, form: str, x: torch.Tensor) -> nn.Module | None:
    """An eval-mode copy of ``model`` that executes as ``form`` (``x``: example inputs); None where the form
    does not apply (``csr_fc`` without convolutions is ``csr``)."""
    if form == "dense":
        return copy.deepcopy(model).eval()
    if form == "masked":
        return masked_copy(model)
    if form == "csr":
        return to_sparse(model)
    if form == "csr_fc":
        return to_sparse(model, layers=("linear",)) if has_conv(model) else None
    if form == "compact":
        return compact(model, x)
    raise ValueError(f"latency form {form!r}; allowed: {', '.join(FORMS)}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels are asynchronous: time what ran, not what was queued
        torch.cuda.synchronize(device)


def time_forward(model: nn.Module, x: torch.Tensor, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """(min, median) seconds of ``model(x)`` over ``repeats`` calls after ``warmup`` calls."""
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        _sync(x.device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            _sync(x.device)
            times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def example_batch(x: torch.Tensor, batch_size: int, seed: int = 0) -> torch.Tensor:
    """``batch_size`` real inputs drawn from ``x`` (with repetition when ``x`` is smaller)."""
    g = torch.Generator().manual_seed(seed)  # its own generator: training's random stream is untouched
    idx = torch.randint(0, len(x), (batch_size,), generator=g)
    return x[idx.to(x.device)]


def measure_latency(model: nn.Module, x: torch.Tensor, forms=DEFAULT_FORMS, passes: int = 2,
                    budget_s: float = 0.5, max_repeats: int = 50) -> dict:
    """Median forward latency (ms) of each applicable form on batch ``x`` (on ``x``'s device), and the fastest.

    Each pass times every form once, interleaved; a form's repeats per pass are sized from one timed call
    so that a pass costs about ``budget_s / passes`` per form (at least 3 calls, at most ``max_repeats``).
    Returns ``{"latency_ms", "latency_form", "latency_batch", "latency_<form>_ms", ...}``.
    """
    models = {f: m.to(x.device) for f in forms if (m := runnable(model, f, x)) is not None}
    repeats = {}
    for f, m in models.items():
        one, _ = time_forward(m, x, 1, warmup=1)
        repeats[f] = int(min(max_repeats, max(3, budget_s / passes / max(one, 1e-6))))
    medians: dict[str, list[float]] = {f: [] for f in models}
    for _ in range(passes):
        for f, m in models.items():
            medians[f].append(time_forward(m, x, repeats[f])[1])
    ms = {f: 1000 * statistics.median(v) for f, v in medians.items()}
    best = min(ms, key=ms.get)
    return {"latency_ms": ms[best], "latency_form": best, "latency_batch": int(x.shape[0]),
            **{f"latency_{f}_ms": v for f, v in ms.items()}}
