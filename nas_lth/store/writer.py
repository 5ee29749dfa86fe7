"""Write one trial's row and its curve, each as a whole Parquet file named by the trial id.

The file name is the identity: a trial retried after a fault, or re-reported after a resume,
overwrites its own file, so no trial ever appears twice.
"""

from __future__ import annotations

from nas_lth.store.fs import Location
from nas_lth.store.schema import CURVE_SCHEMA, TRIAL_SCHEMA, to_table


def write_trial(experiment: Location, trial_id: str, row: dict) -> None:
    experiment.join("trials", f"{trial_id}.parquet").write_parquet(to_table([row], TRIAL_SCHEMA))


def write_curve(experiment: Location, trial_id: str, records: list[dict]) -> None:
    if records:
        experiment.join("curves", f"{trial_id}.parquet").write_parquet(to_table(records, CURVE_SCHEMA))
