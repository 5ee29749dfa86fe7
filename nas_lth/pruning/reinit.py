"""What the kept weights of a ticket start from (Frankle & Carbin 2019; Zhou et al. 2019).

- ``original``: the weights at the rewind point (iteration 0 = the original init, k = late resetting);
- ``random_reinit``: a fresh draw of the model's initialisation (the LTH control);
- ``reshuffle``: the rewind-point values of each layer's kept weights, permuted among its kept
  positions (same per-layer distribution, different assignment);
- ``signed_constant``: sign of the rewind-point weight times the std of the layer's initialisation.

Non-prunable parameters (biases, BatchNorm) come from the rewind point, or from the fresh draw for
``random_reinit``. Every function works on state dicts and returns a new one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nas_lth.registry import Registry

State = dict[str, torch.Tensor]
Variant = Callable[[torch.Tensor, torch.Tensor, str, dict], None]  # (weight, keep, key, ctx) -> in place
REINIT_VARIANTS: Registry[Variant] = Registry("reinit")


@REINIT_VARIANTS.register("original")
def _original(w, keep, key, ctx) -> None:
    """The rewind-point values as they are (iteration 0: the original init; k: late resetting)."""


@REINIT_VARIANTS.register("random_reinit")
def _random_reinit(w, keep, key, ctx) -> None:
    """A fresh draw of the model's initialisation, the LTH control.

    The state is already ``fresh``: nothing more to do per layer."""


@REINIT_VARIANTS.register("reshuffle")
def _reshuffle(w, keep, key, ctx) -> None:
    """The rewind-point values of each layer's kept weights, permuted among its kept positions."""
    vals = w[keep]
    perm = torch.randperm(vals.numel(), generator=ctx["generator"]).to(vals.device)
    w[keep] = vals[perm]


@REINIT_VARIANTS.register("signed_constant")
def _signed_constant(w, keep, key, ctx) -> None:
    """The sign of the rewind-point weight times the std of the layer's initialisation."""
    std = ctx["init"][key].float().std().to(w.device)
    w.copy_(torch.sign(w) * std)


def reset_state(
    variant: str,
    masks: dict[str, torch.Tensor],
    rewind: State,
    *,
    init: State | None = None,
    fresh: State | None = None,
    generator: torch.Generator | None = None,
) -> State:
    """State dict for the next training run of a ticket with ``masks`` (layer name -> mask).

    ``rewind`` is the full state at the rewind point, ``init`` the state at iteration 0 (for the
    layer std of ``signed_constant``), ``fresh`` a newly initialised state (``random_reinit``).
    """
    apply = REINIT_VARIANTS.get(variant)
    if variant == "random_reinit":
        if fresh is None:
            raise ValueError("random_reinit needs a freshly initialised state")
        base = fresh
    else:
        base = rewind
    out = {k: v.detach().clone() for k, v in base.items()}
    ctx = {"generator": generator, "init": init if init is not None else rewind}
    for name, mask in masks.items():
        key = f"{name}.weight"
        w = out[key]
        mask = mask.to(w.device)  # a fresh CPU draw may meet masks that live on the GPU
        apply(w, mask.bool(), key, ctx)
        w.mul_(mask.to(w.dtype))
        out[f"{name}.mask"] = mask.detach().clone().to(out[f"{name}.mask"].dtype)
    return out
