"""A search's round prefixes: ladder states after round r, content-addressed under ``<experiment>/prefixes/``.

The first ladder that computes a round stores its state (:mod:`nas_lth.estimation.prefix`); a later ladder
whose rounds up to r are the same (same key) continues from it instead of training them again. No claim is
taken, unlike the dense trajectory: two ladders that reach the same round at the same moment both compute it
(the same bytes; the second write is skipped), which costs one round, never a wait on a trial that the
scheduler may stop. A file that fails its check is ignored (and replaced by the next ladder that computes
it); a failed write costs the sharing, not the trial.

On disk a state is compacted without changing a bit of what is loaded: the masks as booleans, once; the mask
buffers inside its weight states (equal to the round's masks, or all ones in the dense rewind point) left out
and put back on load. A LeNet-300-100 round is then about 3x its weights (the next mask's weights, the
round's ticket at its end and at early stop), plus the rewind point when there is one.
"""

from __future__ import annotations

import io
import logging

import torch

from nas_lth.estimation.prefix import prefix_key
from nas_lth.recipe import Recipe
from nas_lth.store.fs import Location

log = logging.getLogger(__name__)
FOLDER = "prefixes"
_KEYS = {"version", "round", "masks", "masks_ready", "runs_done", "prev_stop", "next_stop", "cumulative", "rows",
         "theta_k", "generator", "pending", "final_weights", "round_iterations", "mask_dtype", "stripped"}


class ExperimentPrefixes:
    """:class:`~nas_lth.estimation.prefix.PrefixStore` over an experiment's storage (any node of a cluster
    reaches it, and it survives a resume)."""

    def __init__(self, experiment: Location, recipe: Recipe, device):
        self.experiment, self.recipe = experiment, recipe
        self.device_kind = str(getattr(device, "type", device))

    def path(self, round_: int) -> Location:
        return self.experiment.join(FOLDER, f"{prefix_key(self.recipe, round_, self.device_kind)}.pt")

    def load(self, round_: int) -> dict | None:
        path = self.path(round_)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, OSError):
            return None
        try:  # weights only: a file from shared storage never gets to run code on load
            st = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            if not isinstance(st, dict) or set(st) != _KEYS or st["round"] != round_ or not st["masks_ready"]:
                raise ValueError("not the state after this round")
            st = expand(st)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: computed again, not a failed trial
            log.warning("round prefix %s failed its check (%s); the round is computed again", path.uri, exc)
            return None
        return st

    def store(self, round_: int, state: dict) -> None:
        path = self.path(round_)
        try:
            if self.load(round_) is not None:
                return  # stored by another ladder already: the same bytes
            buf = io.BytesIO()
            torch.save(compact(state), buf)
            path.write_bytes(buf.getvalue())
        except OSError as exc:  # a full disk or lost storage costs the sharing of this round, not the trial
            log.warning("round prefix %s not stored: %s", path.uri, exc)


def _states(st: dict) -> dict[str, dict]:
    """The weight states inside a ladder state, by a path name (those that exist)."""
    out = {"theta_k": st.get("theta_k"), "next_stop": (st.get("next_stop") or {}).get("state"),
           **{f"final_weights.{k}": v for k, v in (st.get("final_weights") or {}).items()}}
    return {k: v for k, v in out.items() if isinstance(v, dict)}


def compact(st: dict) -> dict:
    """``st`` as stored: boolean masks, and each weight state's mask buffers left out where they equal the round's
    masks ("masks") or are all ones ("ones"); ``stripped`` says which, so :func:`expand` restores them exactly."""
    masks = st["masks"]
    dtype = str(next(iter(masks.values())).dtype).removeprefix("torch.") if masks else "float32"
    out = {**st, "masks": {n: m.bool() for n, m in masks.items()}, "mask_dtype": dtype, "stripped": {}}
    out["next_stop"] = dict(st["next_stop"])
    out["final_weights"] = dict(st["final_weights"]) if st.get("final_weights") else st.get("final_weights")
    for path, state in _states(st).items():
        kept, gone = dict(state), {}
        for n, m in masks.items():
            buf = state.get(f"{n}.mask")
            if buf is None or buf.dtype != m.dtype or buf.shape != m.shape:
                continue
            if torch.equal(buf, m):
                gone[n] = "masks"
            elif bool(torch.all(buf == 1)):
                gone[n] = "ones"
            else:
                continue
            del kept[f"{n}.mask"]
        out["stripped"][path] = gone
        _put(out, path, kept)
    return out


def expand(st: dict) -> dict:
    """The state :func:`compact` stored, bit for bit."""
    dtype = getattr(torch, st["mask_dtype"])
    masks = {n: m.to(dtype) for n, m in st["masks"].items()}
    out = {**st, "masks": masks, "next_stop": dict(st["next_stop"])}
    out["final_weights"] = dict(st["final_weights"]) if st.get("final_weights") else st.get("final_weights")
    for path, state in _states(st).items():
        full = dict(state)
        for n, how in st["stripped"].get(path, {}).items():
            full[f"{n}.mask"] = masks[n].clone() if how == "masks" else torch.ones_like(masks[n])
        _put(out, path, full)
    del out["mask_dtype"], out["stripped"]
    return out


def _put(st: dict, path: str, state: dict) -> None:
    if path == "theta_k":
        st["theta_k"] = state
    elif path == "next_stop":
        st["next_stop"]["state"] = state
    else:
        st["final_weights"][path.split(".", 1)[1]] = state

