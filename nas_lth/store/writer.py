"""Write one trial's row and its curve, each as a whole Parquet file named by the trial id.

The file name is the identity, and a stored row is final: a trial that Tune replays after a fault or a
resume (a stopped trial started again from an old snapshot, a finished one re-run) does not write again. The
one exception is a ``failed`` row, which a later run of the same trial that did not fail replaces: ``--resume``
re-runs errored trials on purpose. Rows lost from storage are written again by the caller with
``replace=True`` (``ResultsCallback.restore_missing``).
"""

from __future__ import annotations

from nas_lth.store.fs import Location
from nas_lth.store.schema import CURVE_SCHEMA, ROUND_SCHEMA, TRIAL_SCHEMA, to_table

FAILED = "failed"


def stored_row(experiment: Location, trial_id: str) -> dict | None:
    """The trial's stored row, or None when there is none or it cannot be read (a torn write)."""
    import pyarrow.parquet as pq

    path = experiment.join("trials", f"{trial_id}.parquet")
    try:
        if not path.exists():
            return None
        rows = pq.read_table(path.path, filesystem=path.fs).to_pylist()
    except Exception:  # noqa: BLE001 - an unreadable row is no row: it is written again
        return None
    return rows[0] if rows else None


def write_trial(experiment: Location, trial_id: str, row: dict, replace: bool = False) -> dict | None:
    """Store ``row`` unless the trial has a final row already; returns that stored row when it was kept."""
    if not replace:
        prior = stored_row(experiment, trial_id)
        if prior is not None and (prior.get("status") != FAILED or row.get("status") == FAILED):
            return prior
    experiment.join("trials", f"{trial_id}.parquet").write_parquet(to_table([row], TRIAL_SCHEMA))
    return None


def write_curve(experiment: Location, trial_id: str, records: list[dict]) -> None:
    if records:
        experiment.join("curves", f"{trial_id}.parquet").write_parquet(to_table(records, CURVE_SCHEMA))


def write_round(experiment: Location, trial_id: str, row: dict) -> bool:
    """Store one evaluated round of a ladder trial as ``rounds/<trial_id>-<round>.parquet``, once: a round
    reported again (a trial resumed before its checkpoint said the round was done) keeps the stored row.
    Returns whether it was written."""
    path = experiment.join("rounds", f"{trial_id}-{int(row['round'])}.parquet")
    if path.exists():
        return False
    path.write_parquet(to_table([{**row, "trial_id": trial_id}], ROUND_SCHEMA))
    return True
