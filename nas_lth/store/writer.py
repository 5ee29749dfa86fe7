"""Write one trial's row and its curve, each as a whole Parquet file named by the trial id.

The file name is the identity: a trial retried after a fault, or re-reported after a resume,
overwrites its own file, so no trial ever appears twice.
"""

from __future__ import annotations

import pyarrow as pa

from nas_lth.store.fs import Location
from nas_lth.store.schema import SCHEMA_VERSION


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{**r, "schema_version": SCHEMA_VERSION} for r in rows])


def write_trial(experiment: Location, trial_id: str, row: dict) -> None:
    experiment.join("trials", f"{trial_id}.parquet").write_parquet(_table([row]))


def write_curve(experiment: Location, trial_id: str, records: list[dict]) -> None:
    if records:
        experiment.join("curves", f"{trial_id}.parquet").write_parquet(_table(records))
