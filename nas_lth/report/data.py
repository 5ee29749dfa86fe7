"""Load an experiment's Parquet tables for the report and normalise them.

Only the Parquet tables are read (``trials/`` and ``curves/``), through :mod:`nas_lth.store`, so the
report works on a copy pulled from a cluster and while a search is still writing rows.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from nas_lth.errors import UserError
from nas_lth.store import CURVE_COLUMNS, SCHEMA_VERSION, STATUSES, TRIAL_COLUMNS, locate, read
from nas_lth.store.analysis import ladder_tickets
from nas_lth.store.reader import finishing_times, trial_file_times
from nas_lth.store.schema import RECIPE_COLUMNS, TRIAL_SCHEMA

# columns of the trials table that hold numbers (coerced, so a column written as all-null still works)
_NUMERIC = [f.name for f in TRIAL_SCHEMA if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
_CURVE_NUMERIC = ["round", "iteration", "epoch", "train_loss", "val_loss", "val_acc"]

# the recipe parameters a reader cares about, in the order tables show them
RECIPE_ORDER = [c for c in RECIPE_COLUMNS if c not in ("seed", "model", "dataset")] + ["seed"]


@dataclass(frozen=True)
class Metric:
    """The quality measure of the experiment: accuracy, or micro-F1 for multi-label data."""

    key: str  # suffix after "val_"/"test_": "acc" or "micro_f1"
    label: str  # for axes and tables
    multilabel: bool

    def col(self, split: str) -> str:
        return f"{split}_{self.key}"


ACCURACY = Metric("acc", "accuracy", False)
MICRO_F1 = Metric("micro_f1", "micro-F1", True)


@dataclass
class ReportData:
    name: str
    location: str
    trials: pd.DataFrame  # every row, normalised, in finishing order (see ``order_note``)
    curves: pd.DataFrame
    metric: Metric
    ipe: float | None  # training iterations per epoch, from the curves (None if unknown)
    order_note: str  # how the finishing order of the trials was established
    notes: list[str] = field(default_factory=list)  # data-level caveats and missing pieces
    confirm: pd.DataFrame = field(default_factory=pd.DataFrame)  # rows of the confirmation stage
    rounds: pd.DataFrame = field(default_factory=pd.DataFrame)  # ladder trials: every evaluated round

    @property
    def completed(self) -> pd.DataFrame:
        """Full-fidelity rows: the only ones whose metrics are comparable with each other. For ladder trials
        (``fidelity: rounds``) every completed pruned round of every ladder is one: a ladder is a whole front."""
        if not self.rounds.empty:
            return ladder_tickets(self.trials, self.rounds)
        return self.trials[self.trials.status == "completed"]

    def dense(self, split: str) -> pd.Series:
        """The dense network's ``split`` metric, one value per seed (empty when not recorded)."""
        col = dense_column(self.trials, self.metric, split)
        if col is None:
            return pd.Series(dtype=float)
        df = self.trials.dropna(subset=[col])
        if df.empty:
            return pd.Series(dtype=float)
        by = "seed" if df["seed"].notna().any() else "trial_id"
        return df.groupby(by, dropna=False)[col].first().astype(float)

    def value_column(self, split: str) -> str | None:
        """``val_acc``/``test_acc`` (or micro-F1) if any completed row has it."""
        col = self.metric.col(split)
        if col in self.trials and self.completed[col].notna().any():
            return col
        return None


def dense_column(trials: pd.DataFrame, metric: Metric, split: str) -> str | None:
    """The trials-table column holding the dense reference for ``metric`` on ``split``.

    Single-label: ``dense_val_acc``/``dense_test_acc``. Multi-label: ``dense_<split>_micro_f1`` if the
    search recorded it, else ``dense_objective`` when the objective is the validation micro-F1 (checked on
    the rows, since the search's metric is configurable)."""
    direct = f"dense_{split}_{metric.key}"
    if direct in trials and trials[direct].notna().any():
        return direct
    if split == "val" and "dense_objective" in trials and trials["dense_objective"].notna().any():
        val, obj = trials.get(metric.col("val")), trials.get("objective")
        if val is not None and obj is not None:
            both = pd.concat([val, obj], axis=1).dropna()
            if not both.empty and np.allclose(both.iloc[:, 0], both.iloc[:, 1]):
                return "dense_objective"
    return None


def _read(experiment_dir: str, notes: list[str]):
    res = read(experiment_dir)  # skips unreadable or foreign files and names them
    notes += [f"skipped unreadable {s}" for s in res.skipped]
    return res


def _numeric(df: pd.DataFrame, cols) -> None:
    for c in cols:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)


def _text(s: pd.Series, default: str) -> pd.Series:
    return s.map(lambda v: default if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def _normalise_trials(trials: pd.DataFrame, mtimes: dict[str, float], notes: list[str]) -> tuple[pd.DataFrame, str]:
    df = trials.copy()
    for c in TRIAL_COLUMNS:
        if c not in df:
            df[c] = np.nan
    extra_metrics = [c for c in df if c.startswith(("val_", "test_", "dense_")) and c not in _NUMERIC]
    _numeric(df, _NUMERIC + extra_metrics)
    df["trial_id"] = _text(df["trial_id"], "?")
    df["status"] = _text(df["status"], "unknown").str.lower()
    df["criterion"] = _text(df["criterion"], "unknown")
    df["reinit"] = _text(df["reinit"], "original")
    df["stop_at"] = _text(df["stop_at"], "?")
    for c in ("experiment", "model", "dataset", "scope", "message"):
        df[c] = _text(df[c], "")
    # one dense run per trajectory key: a row that lacks its dense metrics (a ladder stopped before its test
    # evaluation) takes them from the rows that share the run
    dense_metrics = [c for c in df if c.startswith(("dense_val_", "dense_test_"))]
    keyed = df["trajectory_key"].notna() if "trajectory_key" in df else pd.Series(False, index=df.index)
    if keyed.any() and dense_metrics:
        shared = df[keyed].groupby("trajectory_key")[dense_metrics].transform("first")
        df.loc[keyed, dense_metrics] = df.loc[keyed, dense_metrics].fillna(shared)
    df["weights_pct"] = 100.0 * df["weights_remaining"]
    # weights level (%) shared by the figures; formed from the completed rows, the only ones they compare
    done = df["status"] == "completed"
    df["level"] = np.nan
    df.loc[done, "level"] = 100.0 * weight_levels(df.loc[done, "weights_remaining"])
    unknown = sorted(set(df.status) - set(STATUSES))
    if unknown:
        notes.append(f"rows with unknown status {unknown} are counted but not plotted as results")
    newer = df["schema_version"].dropna()
    if (newer > SCHEMA_VERSION).any():
        notes.append(f"some rows were written with schema version {int(newer.max())} (this report knows "
                     f"{SCHEMA_VERSION}); columns it does not know are ignored")

    # Finishing order: each row's finished_at. Rows written before it existed have none, and trial ids are random,
    # so for them the only record of *when* a trial ended is the modification time of its trials/<id>.parquet
    # file (written once, when the trial ends); a copy that did not preserve times (plain cp, some object-store
    # syncs) leaves the copy order instead, which we detect (all times within a second) and say so.
    recorded = pd.to_numeric(df["finished_at"], errors="coerce")
    df["finished_at"] = finishing_times(df, mtimes)
    known = df["finished_at"].dropna()
    if len(known) < len(df):
        order_note = ("trials without a recorded finishing time or a readable file time are placed last, in trial-id "
                      "order")
    else:
        order_note = ("trials ordered by the time they finished (finished_at, else the trials/*.parquet "
                      "modification time)")
    if recorded.isna().sum() > 2 and known.max() - known.min() < 1.0:
        order_note = ("the trials/*.parquet modification times are all within one second (a copy that did not "
                      "keep file times?), so the finishing order shown is arbitrary")
        notes.append(order_note)
    df = df.sort_values(["finished_at", "trial_id"], na_position="last", kind="stable").reset_index(drop=True)
    return df, order_note


def _normalise_curves(curves: pd.DataFrame) -> pd.DataFrame:
    if curves.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    df = curves.copy()
    for c in CURVE_COLUMNS:
        if c not in df:
            df[c] = np.nan
    _numeric(df, _CURVE_NUMERIC + [c for c in df if c.startswith("val_") and c not in _CURVE_NUMERIC])
    df["trial_id"] = _text(df["trial_id"], "?")
    df["run"] = _text(df["run"], "?")
    return df.dropna(subset=["iteration"])


def iterations_per_epoch(curves: pd.DataFrame) -> float | None:
    """Iterations per epoch from the curves (each row has both ``iteration`` and ``epoch``)."""
    if curves.empty:
        return None
    both = curves[(curves["epoch"] > 0) & (curves["iteration"] > 0)]
    if both.empty:
        return None
    return float((both["iteration"] / both["epoch"]).median())


def _multilabel(trials: pd.DataFrame) -> bool:
    """Every evaluation records micro-F1, but for single-label data it equals the accuracy (one
    prediction per example): the experiment is multi-label where the two differ."""
    if "val_micro_f1" not in trials or "val_acc" not in trials:
        return "val_micro_f1" in trials and bool(trials["val_micro_f1"].notna().any())
    both = trials[["val_micro_f1", "val_acc"]].dropna()
    return bool(((both.val_micro_f1 - both.val_acc).abs() > 1e-6).any())


def load(experiment_dir: str) -> ReportData:
    """Read and normalise an experiment directory; a :class:`UserError` if it is not one."""
    notes: list[str] = []
    res = _read(str(experiment_dir), notes)
    trials, curves, location, confirm = res.trials, res.curves, res.location, res.confirm.copy()
    _numeric(confirm, _NUMERIC)
    if trials.empty:
        raise UserError(f"{experiment_dir}: no trial rows yet (trials/ holds no readable Parquet files)")
    if "trial_id" not in trials or "status" not in trials:
        raise UserError(f"{experiment_dir}: trials/ does not hold nas_lth trial rows (no trial_id/status columns)")
    loc = locate(str(experiment_dir))
    trials, order_note = _normalise_trials(trials, trial_file_times(loc), notes)
    curves = _normalise_curves(curves)
    metric = MICRO_F1 if _multilabel(trials) else ACCURACY
    names = [n for n in trials["experiment"].unique() if n]
    name = names[0] if names else posixpath.basename(location.rstrip("/")) or "experiment"
    if len(names) > 1:
        notes.append(f"rows of several experiments in one folder: {', '.join(names)}")
    return ReportData(name=name, location=location, trials=trials, curves=curves, metric=metric,
                      ipe=iterations_per_epoch(curves), order_note=order_note, notes=notes, confirm=confirm,
                      rounds=res.rounds)


def weight_levels(weights: pd.Series, tol: float = 0.1) -> pd.Series:
    """Group weights-remaining values into levels: sorted from dense to sparse, a value joins the current
    level while it is within ``tol`` (relative) of the level's first value. Masks of the same prune schedule
    agree to many digits; 10 % keeps adjacent rounds of a 20 % schedule apart (they differ by 25 %).
    Returns the median of each level's values, aligned with ``weights`` (NaN stays NaN)."""
    vals = sorted({float(v) for v in weights.dropna() if v > 0}, reverse=True)
    groups: list[list[float]] = []
    for v in vals:
        if groups and v >= groups[-1][0] / (1.0 + tol):
            groups[-1].append(v)
        else:
            groups.append([v])
    level = {v: float(np.median(g)) for g in groups for v in g}
    return weights.map(lambda v: level.get(float(v), np.nan) if pd.notna(v) else np.nan)
