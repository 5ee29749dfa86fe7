"""Results storage: Parquet tables (trials, curves, rounds of ladder trials) under ``<storage>/<experiment>/``.

Reads never need nas_lth: ``pandas.read_parquet("runs/x/trials")`` or DuckDB's
``read_parquet('runs/x/trials/*.parquet')`` give the same rows.
"""

from nas_lth.store.fs import Location, locate
from nas_lth.store.reader import Results, read
from nas_lth.store.schema import CURVE_COLUMNS, ROUND_COLUMNS, SCHEMA_VERSION, STATUSES, TRIAL_COLUMNS
from nas_lth.store.writer import write_curve, write_round, write_trial

__all__ = [
    "CURVE_COLUMNS", "Location", "ROUND_COLUMNS", "Results", "SCHEMA_VERSION", "STATUSES", "TRIAL_COLUMNS", "locate",
    "read", "write_curve", "write_round", "write_trial",
]
