"""The Parquet tables' columns and types (docs/design.md, "The experiment folder").

Every file of a table is written with the same explicit Arrow schema, whatever its row holds (a
stopped trial has no test metrics, a single-label run no F1), so any Parquet reader - pandas,
polars, DuckDB, Spark - reads a whole ``trials/`` or ``curves/`` folder as one table. The version
bumps when a column changes meaning.
"""

from __future__ import annotations

import math

import pyarrow as pa

from nas_lth.recipe import LATENCY_FORMS, recorded_columns

# 2: rewind_to continues the dense run's clock (late resetting as in OpenLTH; before: restarted at 0);
#    Early-Bird distances among the weights alive before the round; GraSP with its temperature
#    every recipe field has a column (training_*, model_options/dataset_options as JSON, ...)
# 3: stage (search | confirm) and confirm_of: rows of the confirmation stage (files without stage: search rows);
#    iterations_per_epoch
# 4: latency_ms (the fastest form), latency_form, latency_batch and latency_<form>_ms of a latency objective
# 5: training_precision (fp32 | bf16 autocast), training_bn_l1; conv models train channels-last (rounding only);
#    granularity (weight | channel) and channel_norm; latency_compact_ms
SCHEMA_VERSION = 5

_METRICS = ["loss", "acc", "micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall",
            "macro_f1"]
# val_/test_ metric, at the end of training and at the early-stop iteration (minimum validation loss)
METRIC_COLUMNS = [f"{split}_{m}{at}" for at in ("", "_at_early_stop") for split in ("val", "test")
                  for m in _METRICS]

# The recipe's columns come from the roles its fields declare (nas_lth/recipe.py): a field added there
# gets its column here without anyone copying a list (prune rates one per layer kind, training settings
# one per key, option mappings as JSON text).
_ARROW = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
          "json": pa.string()}
RECIPE_FIELDS: list[tuple[str, pa.DataType]] = [(name, _ARROW[typ]) for name, typ in recorded_columns()]
RECIPE_COLUMNS = [name for name, _ in RECIPE_FIELDS]

TRIAL_SCHEMA = pa.schema([
    ("experiment", pa.string()), ("trial_id", pa.string()), ("stage", pa.string()), ("confirm_of", pa.string()),
    *RECIPE_FIELDS, ("weights_remaining", pa.float64()),
    *[(c, pa.float64()) for c in METRIC_COLUMNS],
    ("early_stop_iter", pa.int64()), ("mask_iter", pa.int64()), ("early_bird_drawn", pa.bool_()),
    ("epochs_trained", pa.float64()), ("iterations_trained", pa.int64()),
    ("iterations_per_epoch", pa.int64()), ("shared_iterations", pa.int64()),
    ("trajectory_iterations_trained", pa.int64()),
    ("dense_val_acc", pa.float64()), ("dense_test_acc", pa.float64()), ("dense_val_micro_f1", pa.float64()),
    ("dense_test_micro_f1", pa.float64()), ("dense_objective", pa.float64()),
    ("dense_early_stop_iter", pa.int64()), ("objective", pa.float64()),
    ("latency_ms", pa.float64()), ("latency_form", pa.string()), ("latency_batch", pa.int64()),
    *[(f"latency_{f}_ms", pa.float64()) for f in LATENCY_FORMS], ("status", pa.string()),
    ("message", pa.string()), ("restores", pa.int64()), ("wall_seconds", pa.float64()),
    ("finished_at", pa.float64()),
    ("node", pa.string()), ("device", pa.string()), ("torch_threads", pa.int64()), ("torch_version", pa.string()),
    ("rewind_mode", pa.string()), ("mask_digest", pa.string()),
    ("trajectory_key", pa.string()), ("schema_version", pa.int64()),
])
TRIAL_COLUMNS = TRIAL_SCHEMA.names

CURVE_SCHEMA = pa.schema([
    ("experiment", pa.string()), ("trial_id", pa.string()), ("round", pa.int64()), ("run", pa.string()),
    ("iteration", pa.int64()), ("epoch", pa.float64()), ("train_loss", pa.float64()),
    *[(f"val_{m}", pa.float64()) for m in _METRICS], ("schema_version", pa.int64()),
])
CURVE_COLUMNS = CURVE_SCHEMA.names

# rounds/<trial_id>-<round>.parquet: one row per evaluated round of a ladder trial (strategy.fidelity: rounds);
# the recipe is the trial's row (join on trial_id)
ROUND_SCHEMA = pa.schema([
    ("experiment", pa.string()), ("trial_id", pa.string()), ("round", pa.int64()), ("variant", pa.string()),
    ("status", pa.string()), ("weights_remaining", pa.float64()), ("mask_digest", pa.string()),
    ("mask_iter", pa.int64()), ("early_stop_iter", pa.int64()), ("iterations_trained", pa.int64()),
    ("cumulative_iterations", pa.int64()), ("reused", pa.bool_()), ("wall_seconds", pa.float64()),
    *[(c, pa.float64()) for c in METRIC_COLUMNS], ("schema_version", pa.int64()),
])
ROUND_COLUMNS = ROUND_SCHEMA.names

STATUSES = ("completed", "stopped", "diverged", "failed")


def _coerce(value, typ: pa.DataType):
    if value is None or (isinstance(value, float) and math.isnan(value) and not pa.types.is_floating(typ)):
        return None
    if pa.types.is_integer(typ):
        return int(value)
    if pa.types.is_floating(typ):
        return float(value)
    if pa.types.is_boolean(typ):
        return bool(value)
    return str(value)


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows as a table of exactly ``schema``: missing columns are null, values are cast to the column
    type, keys outside the schema are dropped (the schema is the contract with every reader)."""
    rows = [{**r, "schema_version": SCHEMA_VERSION} for r in rows]
    cols = {f.name: [_coerce(r.get(f.name), f.type) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)
