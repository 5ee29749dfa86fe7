"""Trained tickets as files: written by the search for every completed trial, exported and loaded.

    python -m nas_lth.export runs/<experiment> --best -o ticket.pt
    model = nas_lth.export.load("ticket.pt")              # a torch.nn.Module, eval mode, on raw inputs
    net = nas_lth.export.load("ticket.pt", raw=False)     # the bare network, on standardised inputs
    model = nas_lth.export.load("ticket.pt", sparse=True)  # CSR execution of the pruned layers

The search stores ``<experiment>/tickets/<trial_id>.pt`` (see :mod:`nas_lth.export.format`) next to
the Parquet tables, on whatever storage holds them, so a ticket found on a cluster is exported on a
laptop without retraining. This package reads results; it never imports the strategy (Ray Tune).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pandas as pd
import torch
from torch import nn

from nas_lth.errors import UserError
from nas_lth.export.format import (
    FORMAT,
    VERSION,
    WEIGHT_SETS,
    ModelSpec,
    from_bytes,
    masks_of,
    model_spec,
    pack,
    rebuild,
    select,
    to_bytes,
)
from nas_lth.export.sparse import to_sparse
from nas_lth.export.transform import RawInput, wrap
from nas_lth.names import valid_name
from nas_lth.store import locate
from nas_lth.store import read as read_results

__all__ = [
    "FORMAT", "VERSION", "WEIGHT_SETS", "ModelSpec", "RawInput", "evaluate_raw", "evaluate_ticket", "export_trial",
    "from_bytes", "load", "masks_of", "model_spec", "pack", "raw_test_split", "read", "recorded", "save",
    "stored_ticket", "ticket_data", "ticket_path", "to_bytes", "to_sparse", "trials_of",
]

TICKETS_DIR = "tickets"


def ticket_path(experiment_uri: str, trial_id: str):
    """``<experiment>/tickets/<trial_id>.pt``. The id often comes from a trials table (data, not code): a
    value that is not a plain name (``../x``, ``/etc/x``) is refused rather than followed."""
    if not valid_name(str(trial_id)):
        raise UserError(f"{experiment_uri}: trial id {str(trial_id)[:80]!r} is not a plain name; refusing to build a "
                        "path from it")
    return locate(experiment_uri).join(TICKETS_DIR, f"{trial_id}.pt")


def save(ticket: dict, path: str | os.PathLike) -> int:
    """Write a ticket (atomically: never a partial file); returns its size in bytes."""
    data = to_bytes(ticket)
    locate(str(path)).write_bytes(data)
    return len(data)


def read(path: str | os.PathLike) -> dict:
    """The checked ticket dictionary of a file (local path or URI)."""
    loc = locate(str(path))
    if not loc.exists():
        raise UserError(f"{path}: no such ticket file")
    return from_bytes(loc.read_bytes(), str(path))


def _default_set(ticket: dict, weights: str | None) -> str:
    if weights is not None:
        return weights
    sets = list(ticket["weights"])
    return "end" if "end" in sets else sets[0]


def load(path: str | os.PathLike, *, weights: str | None = None, device: str | torch.device = "cpu",
         sparse: bool = False, raw: bool = True) -> nn.Module:
    """Rebuild the ticket as a module in eval mode that takes raw inputs, as the dataset returned them: the
    network behind the input transform it was trained with (:class:`~nas_lth.export.transform.RawInput`;
    ``.net`` is the bare network). ``raw=False``: the bare network, which takes standardised inputs.
    ``weights``: "end" or "early_stop" (default: "end" when present); ``sparse``: run pruned layers as CSR
    products (see :func:`to_sparse`). A ticket file written before tickets recorded their transform loads
    bare, with a warning. A compact program (``export --compact``, a ``.pt2`` file) is not a ticket: a
    :class:`UserError` says to load it with ``torch.export.load(path).module()``."""
    ticket = read(path)
    model = rebuild(ticket, _default_set(ticket, weights), str(path))
    if sparse:
        model = to_sparse(model)
    if raw:
        model = wrap(model, ticket, str(path)).eval()
    return model.to(device)


def trials_of(experiment_dir: str) -> pd.DataFrame:
    """The trials table, confirmation rows included; files that cannot be read are skipped and named on stderr."""
    res = read_results(experiment_dir)
    for s in res.skipped:
        print(f"warning: skipped unreadable {s}", file=sys.stderr)
    return res.all_trials


def stored_ticket(experiment_dir: str, trial_id: str | None = None, *, best: bool = False) -> tuple[dict, pd.Series]:
    """The ticket the search stored for a trial (or the best completed one) with its trials-table row."""
    table = trials_of(experiment_dir)
    if table.empty:
        raise UserError(f"{experiment_dir}: no trials recorded yet")
    if best:
        # the search's best (a confirmation row re-runs a recipe the search already ranked)
        search = table[table["stage"].fillna("search") != "confirm"] if "stage" in table else table
        done = search[(search.status == "completed") & search.objective.notna()]
        if done.empty:
            raise UserError(f"{experiment_dir}: no completed trial yet; --best needs one")
        row = done.sort_values(["objective", "weights_remaining", "trial_id"], ascending=[False, True, True]).iloc[0]
    else:
        rows = table[table.trial_id == trial_id]
        if rows.empty:
            known = ", ".join(sorted(table.trial_id.astype(str))[:8])
            raise UserError(f"{experiment_dir}: no trial {trial_id!r}; trials include: {known}")
        row = rows.iloc[-1]
        if row.status != "completed":
            raise UserError(f"trial {trial_id} is {row.status!r}, not completed: only a completed trial has a "
                            f"trained ticket (a scheduler-stopped trial trained only part of its budget)")
    path = ticket_path(locate(experiment_dir).uri, str(row.trial_id))
    if not path.exists():
        raise UserError(f"{path.uri}: no stored ticket for trial {row.trial_id} (searches before nas_lth "
                        f"stored tickets, or a dense-only recipe whose round 0 came from a shared trajectory)")
    return from_bytes(path.read_bytes(), path.uri), row


def export_trial(experiment_dir: str, trial_id: str | None = None, *, best: bool = False,
                 weights: str = "end") -> tuple[dict, pd.Series]:
    """The exportable ticket of one trial: one weight set, provenance naming the experiment."""
    if weights not in WEIGHT_SETS:
        raise UserError(f"--weights {weights!r}: allowed: {', '.join(WEIGHT_SETS)}")
    ticket, row = stored_ticket(experiment_dir, trial_id, best=best)
    out = select(ticket, weights)
    out["provenance"] = {**out["provenance"], "experiment_uri": locate(experiment_dir).uri,
                         "weights": weights}
    return out, row


def ticket_data(ticket: dict, data_dir: str | None, *, device: str | torch.device = "cpu"):
    """The dataset, split as in the ticket's trial."""
    from nas_lth.data import load_dataset

    prov = ticket["provenance"]
    return load_dataset(prov["dataset"], data_dir, seed=int(prov["seed"]), val_size=prov.get("val_size"),
                        device=device, options=prov.get("dataset_options") or None)


def raw_test_split(ticket: dict, data_dir: str | None):
    """The trial's test split as the dataset returned it (before scaling and standardisation), a ``Split``
    with the loader's own dtype: what a module from :func:`load` takes."""
    from nas_lth.data import Split, load_raw

    prov = ticket["provenance"]
    raw = load_raw(prov["dataset"], data_dir, seed=int(prov["seed"]), val_size=prov.get("val_size"),
                   options=prov.get("dataset_options") or None)
    x = raw.x_test.toarray() if hasattr(raw.x_test, "toarray") else raw.x_test
    return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(raw.y_test)))


def evaluate_raw(model: nn.Module, ticket: dict, data_dir: str | None) -> dict[str, float]:
    """Test metrics of a module from :func:`load` (raw inputs) on the trial's raw test split (on the CPU)."""
    from nas_lth.data.load import get_spec
    from nas_lth.estimation.metrics import evaluate

    split = raw_test_split(ticket, data_dir)
    multilabel = get_spec(ticket["provenance"]["dataset"]).multilabel
    return {f"test_{k}": v for k, v in evaluate(model.cpu().eval(), split, multilabel).items()}


def evaluate_ticket(model: nn.Module, ticket: dict, data_dir: str | None, *,
                    device: str | torch.device = "cpu") -> dict[str, float]:
    """Test (and validation) metrics of ``model`` on the split the ticket's trial used (standardised: a module
    from :func:`load` is evaluated through its bare network, ``model.net``)."""
    from nas_lth.estimation.metrics import evaluate

    data = ticket_data(ticket, data_dir, device=device)
    model = (model.net if isinstance(model, RawInput) else model).to(device).eval()
    out = {f"test_{k}": v for k, v in evaluate(model, data.test, data.multilabel).items()}
    out.update({f"val_{k}": v for k, v in evaluate(model, data.val, data.multilabel).items()})
    return out


def recorded(ticket: dict, weights: str) -> dict[str, float]:
    """The metrics the trial recorded for this weight set (finite values only)."""
    rec = (ticket["provenance"].get("metrics") or {}).get(weights) or {}
    return {k: v for k, v in rec.items() if isinstance(v, int | float) and math.isfinite(v)}
