"""The Tune trainable: one trial = one ticket recipe, run by the estimation part.

Reports once per epoch of the measured (final) training run - the fidelity ASHA promotes - with a
checkpoint each time, so a retried or resumed trial continues from its last epoch. Earlier rounds
checkpoint at the end of each run and at least every ``CHECKPOINT_EVERY_S`` seconds.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

import nas_lth
from nas_lth import export
from nas_lth.data import load_dataset
from nas_lth.device import pick_device
from nas_lth.errors import UserError
from nas_lth.estimation import TicketRun
from nas_lth.estimation.train import Diverged
from nas_lth.estimation.trajectory import compute_trajectory
from nas_lth.pruning import density
from nas_lth.space.schema import SearchSpace
from nas_lth.store.fs import locate
from nas_lth.strategy.broker import NAMESPACE, broker_name, get_trajectory
from nas_lth.strategy.memo import Memo
from nas_lth.strategy.plan import plan_key, snapshot_plan

CHECKPOINT_EVERY_S = 30.0
_DATA: dict[tuple, object] = {}  # per worker process: trials reusing an actor skip reloading


def objective_metric(multilabel: bool) -> str:
    return "val_micro_f1" if multilabel else "val_acc"


def _dataset(recipe, data_dir, device):
    opts = recipe.dataset_options or None
    key = (recipe.dataset, repr(sorted((opts or {}).items())), data_dir, recipe.seed, recipe.val_size, str(device))
    if key not in _DATA:
        if len(_DATA) >= 4:
            _DATA.clear()
        _DATA[key] = load_dataset(recipe.dataset, data_dir, seed=recipe.seed, val_size=recipe.val_size,
                                  device=device, options=opts)
    return _DATA[key]


def _covered(run: TicketRun, iters: set[int], grids: set[int]) -> bool:
    """Whether a trajectory with this plan holds every snapshot this recipe needs."""
    def held(i: int) -> bool:
        return i in iters or any(i % g == 0 for g in grids)

    if run.stop_iter is None:
        if run.eb_every not in grids:
            return False
    elif not held(run.stop_iter):
        return False
    return run.recipe.rewind_to == 0 or held(run.recipe.rewind_to)


def ticket_trainable(config: dict, *, space: dict, name: str, experiment: str, data_dir: str | None,
                     device: str, threads: int, checkpoint_every_s: float = 0.0) -> None:
    t_start = time.perf_counter()
    trial_id = tune.get_context().get_trial_id()
    # results depend on the thread count (reduction order): fixed per trial from its resources, recorded
    torch.set_num_threads(max(1, threads))
    base = {"trial_id": trial_id, "node": socket.gethostname(), "final": False, "layer_kinds": None, "restores": 0,
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__, "rewind_mode": "continue"}
    try:
        sp = SearchSpace.from_dict(space, "space")
        recipe = sp.recipe(config)
        dev = pick_device("cuda" if device == "auto" and ray.get_gpu_ids() else
                          ("cpu" if device == "auto" else device))
        data = _dataset(recipe, data_dir, dev)
    except UserError as exc:  # a bad recipe fails the same way on every retry: record it, go on
        tune.report({**base, "objective": 0.0, "val_acc": 0.0, "status": "failed", "message": str(exc),
                     "fidelity": 0.0, "final": True})
        return
    metric = objective_metric(data.multilabel)
    base["device"] = str(dev)
    loc = locate(experiment)

    resume, evals_done = None, []
    ckpt = tune.get_checkpoint()
    if ckpt is not None:  # a retry after a fault, or a resumed experiment: continue where it stopped
        with ckpt.as_directory() as d:
            saved = torch.load(Path(d) / "state.pt", map_location="cpu", weights_only=True)
        resume, evals_done = saved["ticket"], saved["evals"]
        base["restores"] = int(saved.get("restores", 0)) + 1

    pending_evals: list[dict] = []
    reported: list[dict] = list(evals_done)
    # the first report of every attempt replaces what the driver holds for this trial: an attempt
    # that starts over (no checkpoint yet) replays evaluations the driver may already have
    reset = [True]
    last = {"ckpt": time.monotonic(), "val": 0.0}
    # dense-trajectory iterations this trial trained for everyone / reused from another trial
    extra = {"computed": 0, "shared": 0}

    def on_eval(rnd: int, run_name: str, rec: dict) -> None:
        rec = {"round": rnd, "run": run_name, **{k: v for k, v in rec.items() if k != "eb_distance"}}
        pending_evals.append(rec)
        if metric in rec and math.isfinite(rec[metric]):
            last["val"] = rec[metric]

    def report(metrics: dict, state: dict | None) -> None:
        memo.record(metrics, reported + pending_evals)
        payload = {**base, **metrics, "evals": list(pending_evals), "evals_reset": reset[0]}
        if reset[0]:
            payload["evals"] = reported + payload["evals"]
        reported.extend(pending_evals)
        pending_evals.clear()
        reset[0] = False
        if state is None:
            tune.report(payload)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save({"ticket": state, "evals": list(reported), "restores": base["restores"]},
                       os.path.join(d, "state.pt"))
            tune.report(payload, checkpoint=tune.Checkpoint.from_directory(d))
        last["ckpt"] = time.monotonic()

    memo = Memo(loc, recipe, dev, trial_id)
    # The same recipe already ran to completion in this experiment (another trial, or this one before
    # its driver died: Tune's last snapshot may still show it running): replay, never retrain.
    if memo.replay(base, reset, before_final=lambda source: _copy_ticket(loc, source, trial_id)):
        return

    run = TicketRun(recipe, data, device=dev, on_eval=on_eval, eval_at_epoch_end=True)
    target = run.budget_iters
    base["layer_kinds"] = ",".join(sorted(set(run.kinds.values())))

    def on_checkpoint(state: dict, info) -> None:
        tr = info.trainer
        since = time.monotonic() - last["ckpt"]
        if tr is not None and info.final:
            if tr.iteration >= target:
                return  # the final report follows, with test metrics
            fidelity = tr.iteration / run.ipe
            keep = since >= checkpoint_every_s  # every epoch by default: the scheduler's fidelity step
        else:
            if tr is not None and since < max(CHECKPOINT_EVERY_S, checkpoint_every_s):
                return
            fidelity = 0.0
            keep = True
        report({metric: last["val"], "objective": last["val"], "fidelity": fidelity, "round": info.round,
                "weights_remaining": density(state["masks"]), "status": "running",
                "iterations_trained": state["cumulative"] + extra["computed"]
                + (tr.iteration if tr is not None else 0),
                "trajectory_iterations_trained": extra["computed"], "shared_iterations": extra["shared"]},
               state if keep else None)

    run.on_checkpoint = on_checkpoint
    traj_key = None
    if resume is None or resume["round"] == 0:
        iters, grids = snapshot_plan(sp, recipe, run.ipe)
        if _covered(run, iters, grids):
            traj_key = plan_key(recipe, iters, grids)
            broker = ray.get_actor(broker_name(name), namespace=NAMESPACE)

            def compute(beat):
                return compute_trajectory(recipe, data, snapshot_iters=iters, device=dev,
                                          grids=grids, key=traj_key, on_eval=lambda _r: beat())

            try:
                run.trajectory, computed_here = get_trajectory(traj_key, loc, trial_id, broker, compute)
            except Diverged as exc:  # the dense net itself diverged: a result of the recipe, not a fault
                report({metric: 0.0, "objective": 0.0, "fidelity": float(recipe.budget), "final": True,
                        "status": "diverged", "message": f"dense network: {exc}", "round": 0,
                        "weights_remaining": 1.0, "layer_kinds": base["layer_kinds"]}, None)
                return
            if computed_here:  # this trial trained the dense net for everyone: its curve goes with it
                extra["computed"] = run.trajectory.iterations
                pending_evals[:0] = [{"round": 0, "run": "dense", **rec} for rec in run.trajectory.curve]
            else:
                extra["shared"] = run.trajectory.iterations
    rows = run.run(resume=resume)

    final = [r for r in rows if r.round == recipe.rounds and r.variant in (recipe.reinit, "dense")]
    row = final[-1] if final else rows[-1]
    rec = row.record()
    value = rec.get(metric, 0.0)
    if row.status != "completed" or value is None or not math.isfinite(value):
        value = 0.0  # a diverged ticket is a bad ticket, not a missing value, for the searcher
    dense = next((r for r in rows if r.round == 0), None)
    if dense is None and run.trajectory is not None:
        dense_metrics, dense_early_stop = run.trajectory.metrics, run.trajectory.early_stop_iter
    elif dense is not None:
        dense_metrics, dense_early_stop = dense.metrics, dense.early_stop_iter
    else:
        dense_metrics, dense_early_stop = {}, None
    if row.status == "completed" and run.final_weights:
        try:
            _store_ticket(loc, run, data, row, trial_id, experiment_name=name)
        except OSError as exc:  # storage trouble costs the ticket file, not the trial's measured result
            rec["message"] = f"ticket not stored: {exc}"
    report({
        **rec, metric: value, "objective": value, "fidelity": float(recipe.budget), "final": True,
        "status": row.status, "epochs_trained": row.iterations / run.ipe,
        "iterations_trained": run.cumulative + extra["computed"], "shared_iterations": extra["shared"],
        "trajectory_iterations_trained": extra["computed"],
        **{f"dense_{k}": dense_metrics.get(k) for k in ("val_acc", "test_acc", "val_micro_f1", "test_micro_f1")},
        "dense_objective": dense_metrics.get(metric), "dense_early_stop_iter": dense_early_stop,
        "trajectory_key": traj_key, "trial_wall_seconds": time.perf_counter() - t_start,
        "layer_kinds": base["layer_kinds"],
    }, None)


def _store_ticket(loc, run: TicketRun, data, row, trial_id: str, experiment_name: str) -> None:
    """``<experiment>/tickets/<trial_id>.pt``: the trained ticket, exportable later without retraining."""
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
        "metrics": metrics, "nas_lth_version": nas_lth.__version__, "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(), "device": str(run.device), "rewind_mode": "continue",
    }
    spec = export.model_spec(rc.model, data.input_shape, data.num_classes, rc.model_options, data.meta)
    masks = {n: m.detach().cpu() for n, m in run.masks.items()}
    ticket = export.pack(spec, masks, run.final_weights, provenance, rc.model_dump(mode="json"))
    export.ticket_path(loc.uri, trial_id).write_bytes(export.to_bytes(ticket))


def _copy_ticket(loc, source: str, trial_id: str) -> None:
    """A replayed trial gets the ticket of the trial that trained its recipe (provenance says which)."""
    src = export.ticket_path(loc.uri, source)
    if source == trial_id or not src.exists():
        return
    ticket = export.from_bytes(src.read_bytes(), src.uri)
    ticket["provenance"] = {**ticket["provenance"], "trial_id": trial_id, "trained_in_trial": source}
    export.ticket_path(loc.uri, trial_id).write_bytes(export.to_bytes(ticket))
