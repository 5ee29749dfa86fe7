"""Checkpoints that Tune's last snapshot names but storage no longer holds.

Tune keeps a trial's newest ``num_to_keep`` checkpoints and deletes older ones as new ones arrive, while its
experiment snapshot is saved only every few seconds. A driver killed between the two leaves a snapshot that
names a checkpoint deleted since (or one whose copy to storage was cut short); Tune's restore of that trial
then raises ``Could not recover from checkpoint as it does not exist on storage anymore`` and a trial that
was running would be recorded as failed. Before the restored experiment's first step, each such trial falls
back to the newest checkpoint of its kept list that is still whole, or starts over from nothing.

Reads and writes Tune's ``Trial.run_metadata.checkpoint_manager`` (Ray 2.x internals): where they differ,
the guard does nothing and Tune's own error stands.
"""

from __future__ import annotations

import logging

from ray.tune import Callback

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"  # what nas_lth's trial writes into every checkpoint (strategy.trial uses this name)


def whole(result) -> bool:
    """Whether a checkpoint result's folder and its state file exist on its storage."""
    import pyarrow.fs as pafs

    ckpt = getattr(result, "checkpoint", None)
    if ckpt is None:
        return False
    try:
        info = ckpt.filesystem.get_file_info(f"{ckpt.path.rstrip('/')}/{STATE_FILE}")
    except Exception:  # noqa: BLE001 - storage that cannot answer holds nothing we can restore from
        return False
    return info.type == pafs.FileType.File and info.size > 0


def _name(result) -> str:
    return result.checkpoint.path.rstrip("/").rsplit("/", 1)[-1]


def fall_back(trial) -> str | None:
    """Drop the checkpoints ``trial`` kept that are gone (Tune would fail deleting them later) and point it
    at its latest when whole, else the newest whole one it kept, else none (the trial starts over). Returns
    what changed for the trial's restore, or None."""
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    if manager is None:
        return None
    latest = manager._latest_checkpoint_result
    results = list(manager._checkpoint_results)
    kept = [r for r in results if whole(r)]
    latest_whole = latest is None or whole(latest)
    if latest_whole and len(kept) == len(results):
        return None
    manager._checkpoint_results = kept
    if hasattr(trial, "invalidate_json_state"):
        trial.invalidate_json_state()  # Tune caches the trial's saved form
    if latest_whole:
        return None
    manager._latest_checkpoint_result = kept[-1] if kept else None
    if kept:
        return f"its checkpoint {_name(latest)} is gone; continues from {_name(kept[-1])}"
    return f"its checkpoint {_name(latest)} is gone and no earlier one is kept; starts over"


class CheckpointGuard(Callback):
    """Runs :func:`fall_back` over the restored trials once, before Tune schedules any of them."""

    def __init__(self):
        self.checked = False

    def on_step_begin(self, iteration, trials, **info):
        if self.checked:
            return
        self.checked = True
        for trial in trials:
            if trial.status in ("TERMINATED",):
                continue
            try:
                what = fall_back(trial)
            except Exception as exc:  # noqa: BLE001 - Ray internals changed: Tune's own error stands
                log.warning("checkpoint check of trial %s skipped: %s", trial.trial_id, exc)
                continue
            if what:
                print(f"trial {trial.trial_id}: {what}", flush=True)
