"""A trial's trained ticket in the experiment (``<experiment>/tickets/<trial_id>.pt``), exportable later
without retraining; a replayed trial gets a copy of its source's ticket."""

from __future__ import annotations

import torch

from nas_lth import export
from nas_lth.data.load import get_spec
from nas_lth.estimation import TicketRun
from nas_lth.export.transform import input_record
from nas_lth.recipe import REWIND_MODE
from nas_lth.version import __version__


def store_ticket(loc, run: TicketRun, data, row, trial_id: str, experiment_name: str,
                 plugins: tuple[str, ...] = (), masks: dict | None = None, weights: dict | None = None) -> None:
    """``<experiment>/tickets/<trial_id>.pt``: the trained ticket, exportable later without retraining: the run's
    last one, or ``row``'s with its ``masks`` and ``weights`` (a ladder's answer, an earlier round)."""
    rc, rec = run.recipe, row.record()
    metrics = {
        "end": {k: rec[k] for k in rec if k.startswith(("val_", "test_")) and not k.endswith("_at_early_stop")},
        "early_stop": {k.removesuffix("_at_early_stop"): rec[k] for k in rec if k.endswith("_at_early_stop")},
    }
    provenance = {
        "experiment": experiment_name, "trial_id": trial_id, "round": row.round, "rewind_to": rc.rewind_to,
        "criterion": rc.criterion, "stop_at": rc.stop.label(), "reinit": rc.reinit, "model": rc.model,
        "dataset": rc.dataset, "dataset_options": rc.dataset_options, "val_size": rc.val_size, "seed": rc.seed,
        "mask_iter": row.mask_iter, "early_stop_iter": row.early_stop_iter, "iterations": row.iterations,
        "metrics": metrics, "nas_lth_version": __version__, "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(), "device": str(run.device), "rewind_mode": REWIND_MODE,
        "precision": rc.training.precision,
        "plugins": list(plugins),  # imported before the ticket is rebuilt: where its model is registered
    }
    spec = export.model_spec(rc.model, data.input_shape, data.num_classes, rc.model_options, data.meta)
    masks = {n: m.detach().cpu() for n, m in (masks or run.masks).items()}
    record = input_record(data.meta, data.input_shape, get_spec(rc.dataset).standardize)
    ticket = export.pack(spec, masks, weights or run.final_weights, provenance, rc.model_dump(mode="json"), record)
    export.ticket_path(loc.uri, trial_id).write_bytes(export.to_bytes(ticket))


def copy_ticket(loc, source: str, trial_id: str) -> None:
    """A replayed trial gets the ticket of the trial that trained its recipe (provenance says which)."""
    src = export.ticket_path(loc.uri, source)
    if source == trial_id or not src.exists():
        return
    ticket = export.from_bytes(src.read_bytes(), src.uri)
    ticket["provenance"] = {**ticket["provenance"], "trial_id": trial_id, "trained_in_trial": source}
    export.ticket_path(loc.uri, trial_id).write_bytes(export.to_bytes(ticket))
