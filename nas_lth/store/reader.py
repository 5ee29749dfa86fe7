"""Read an experiment's Parquet tables into pandas (any Parquet reader works the same way).

Read tolerantly, in this one place: a table folder may hold a damaged file (truncated, empty, random
bytes, a dangling link) or a foreign Parquet file whose columns conflict with the store's schema. Such
files are skipped and named in ``Results.skipped``; every reader (report, export, summary, warm start)
says which, instead of failing on the first one.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nas_lth.errors import UserError
from nas_lth.store.fs import Location, locate
from nas_lth.store.schema import CURVE_SCHEMA, ROUND_SCHEMA, TRIAL_SCHEMA

SPACE_FILE = "space.json"  # the experiment's space, written by nas_lth.experiment.record


def recorded_space(experiment: str) -> dict:
    """The space the experiment was started with (``space.json``, as a mapping); empty for an experiment without
    a readable space file (older ones kept none)."""
    import json

    try:
        space = json.loads(locate(experiment).join(SPACE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    return space if isinstance(space, dict) else {}


def trial_file_times(loc) -> dict[str, float]:
    """Modification time (epoch seconds) of each visible ``trials/<trial_id>.parquet`` file of the experiment at
    ``loc``: when each trial's row was written, for rows older than their ``finished_at`` column."""
    out = {}
    for f in loc.join("trials").list(".parquet"):
        info = f.fs.get_file_info(f.path)
        stem = posixpath.basename(f.path)[: -len(".parquet")]
        if info.mtime is not None:
            out[stem] = info.mtime.timestamp()
    return out


def finishing_times(trials: pd.DataFrame, file_times: dict[str, float]) -> pd.Series:
    """Each row's ``finished_at``, else (a row written before the column existed) its trial file's time from
    ``file_times`` (:func:`trial_file_times`); NaN where neither is known."""
    recorded = pd.to_numeric(trials["finished_at"], errors="coerce") if "finished_at" in trials else None
    times = trials["trial_id"].map(file_times).astype(float)
    return times if recorded is None else recorded.astype(float).fillna(times)


def recorded_within(experiment: str) -> float | None:
    """The space's ``strategy.sparsest_within`` (the bound of a ladder search's objective), None without one."""
    strategy = recorded_space(experiment).get("strategy")
    within = strategy.get("sparsest_within") if isinstance(strategy, dict) else None
    return float(within) if isinstance(within, int | float) else None


def recorded_references(experiment: str) -> dict[str, float]:
    """The hypervolume reference values the experiment's space set (an objective's ``reference``), by metric."""
    strategy = recorded_space(experiment).get("strategy")
    objectives = strategy.get("objectives") if isinstance(strategy, dict) else None
    return {o["metric"]: float(o["reference"]) for o in objectives or [] if isinstance(o, dict)
            and isinstance(o.get("reference"), int | float) and isinstance(o.get("metric"), str)}


def recorded_constraints(experiment: str) -> list[dict]:
    """The constraints the experiment's space set (``strategy.constraints``), as plain mappings."""
    strategy = recorded_space(experiment).get("strategy")
    cons = strategy.get("constraints") if isinstance(strategy, dict) else None
    return [{k: v for k, v in c.items() if v is not None} for c in cons or [] if isinstance(c, dict)
            and isinstance(c.get("metric"), str)]


def recorded_plugins(experiment: str) -> list[str]:
    """The plugins the experiment's space named, for the report and the export to import."""
    found = recorded_space(experiment).get("plugins")
    return [p for p in found if isinstance(p, str)] if isinstance(found, list) else []


@dataclass
class Results:
    trials: pd.DataFrame  # the search's rows
    curves: pd.DataFrame
    location: str
    skipped: list[str] = field(default_factory=list)  # "<table>/<file>: why", for files that could not be read
    # rows of the confirmation stage (top recipes re-run with fresh seeds): kept apart, so that what
    # ranks the search's recipes (best tickets, fronts, search progress) never counts a recipe twice
    confirm: pd.DataFrame = field(default_factory=pd.DataFrame)
    # ladder trials (strategy.fidelity: rounds): one row per evaluated round, sorted by trial and round
    rounds: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def all_trials(self) -> pd.DataFrame:
        return pd.concat([self.trials, self.confirm], ignore_index=True) if len(self.confirm) else self.trials


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast the columns the store knows to its types (older files may differ where a cast is safe);
    a file without the key columns, or with a column that cannot be cast, is not a table of this store."""
    if "trial_id" not in table.column_names:
        raise ValueError("no trial_id column: not a nas_lth table")
    for name in table.column_names:
        if name in schema.names and not table.schema.field(name).type.equals(schema.field(name).type):
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(schema.field(name).type))
    return table


def _read_dir(loc: Location, schema: pa.Schema, skipped: list[str]) -> pd.DataFrame:
    tables = []
    sub = posixpath.basename(loc.path.rstrip("/"))
    for f in loc.list(".parquet"):
        try:
            tables.append(_conform(pq.read_table(f.path, filesystem=f.fs), schema))
        except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
            why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            skipped.append(f"{sub}/{posixpath.basename(f.path)}: {why}")
    if not tables:
        return pd.DataFrame()
    # one schema for all files since v1; permissive promotion still reads files of older versions
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def read(experiment_dir: str) -> Results:
    """``Results(trials, curves, location, skipped)`` of an experiment directory (local path or URI)."""
    loc = locate(str(experiment_dir))
    if not loc.is_dir():
        raise UserError(f"{experiment_dir}: no such experiment directory")
    if not loc.join("trials").is_dir():
        raise UserError(f"{experiment_dir}: not a nas_lth experiment (no trials/ folder of Parquet files)")
    skipped: list[str] = []
    trials = _read_dir(loc.join("trials"), TRIAL_SCHEMA, skipped)
    curves = _read_dir(loc.join("curves"), CURVE_SCHEMA, skipped)
    rounds = _read_dir(loc.join("rounds"), ROUND_SCHEMA, skipped) if loc.join("rounds").is_dir() else pd.DataFrame()
    if len(rounds):
        rounds = rounds.sort_values(["trial_id", "round"]).reset_index(drop=True)
    confirm = pd.DataFrame()
    if "stage" in trials:  # tables before schema 3 have no stage: all search rows
        is_confirm = trials["stage"] == "confirm"
        trials, confirm = trials[~is_confirm].reset_index(drop=True), trials[is_confirm].reset_index(drop=True)
    return Results(trials, curves, loc.uri, skipped, confirm, rounds)
