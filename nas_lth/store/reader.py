"""Read an experiment's Parquet tables into pandas (any Parquet reader works the same way)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nas_lth.errors import UserError
from nas_lth.store.fs import Location, locate


@dataclass
class Results:
    trials: pd.DataFrame
    curves: pd.DataFrame
    location: str


def _read_dir(loc: Location) -> pd.DataFrame:
    files = loc.list(".parquet")
    if not files:
        return pd.DataFrame()
    tables = [pq.read_table(f.path, filesystem=f.fs) for f in files]
    # one schema for all files since v1; permissive promotion still reads files of older versions
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def read(experiment_dir: str) -> Results:
    """``Results(trials, curves)`` of an experiment directory (local path or URI)."""
    loc = locate(str(experiment_dir))
    if not loc.is_dir():
        raise UserError(f"{experiment_dir}: no such experiment directory")
    if not loc.join("trials").is_dir():
        raise UserError(f"{experiment_dir}: not a nas_lth experiment (no trials/ folder of Parquet files)")
    return Results(_read_dir(loc.join("trials")), _read_dir(loc.join("curves")), loc.uri)
