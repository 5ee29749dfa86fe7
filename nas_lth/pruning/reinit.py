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

import torch

from nas_lth.errors import UserError

REINIT_VARIANTS = ("original", "random_reinit", "reshuffle", "signed_constant")
State = dict[str, torch.Tensor]


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
    if variant not in REINIT_VARIANTS:
        raise UserError(f"unknown reinit {variant!r}; allowed: {', '.join(REINIT_VARIANTS)}")
    if variant == "random_reinit":
        if fresh is None:
            raise ValueError("random_reinit needs a freshly initialised state")
        base = fresh
    else:
        base = rewind
    out = {k: v.detach().clone() for k, v in base.items()}
    for name, mask in masks.items():
        key = f"{name}.weight"
        w = out[key]
        mask = mask.to(w.device)  # a fresh CPU draw may meet masks that live on the GPU
        keep = mask.bool()
        if variant == "reshuffle":
            vals = w[keep]
            perm = torch.randperm(vals.numel(), generator=generator).to(vals.device)
            w[keep] = vals[perm]
        elif variant == "signed_constant":
            std = (init if init is not None else rewind)[key].float().std().to(w.device)
            w.copy_(torch.sign(w) * std)
        w.mul_(mask.to(w.dtype))
        out[f"{name}.mask"] = mask.detach().clone().to(out[f"{name}.mask"].dtype)
    return out
