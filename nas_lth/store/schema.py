"""The Parquet tables' columns (DESIGN.md "Results"). Version bumps when a column changes meaning."""

from __future__ import annotations

SCHEMA_VERSION = 1

# recipe parameters stored as columns of the trials table (prune rates flattened per kind)
RECIPE_COLUMNS = [
    "criterion", "stop_at", "eb_eps", "eb_window", "rewind_to", "reinit", "prune_rate_fc",
    "prune_rate_conv", "prune_rate_output", "prune_rate_embedding", "target_weights", "rounds", "scope",
    "budget", "seed",
]

TRIAL_COLUMNS = [
    "experiment", "trial_id", *RECIPE_COLUMNS, "model", "dataset",
    "weights_remaining", "val_acc", "val_loss", "test_acc", "test_loss",
    "val_acc_at_early_stop", "test_acc_at_early_stop", "early_stop_iter", "mask_iter",
    "early_bird_drawn", "epochs_trained", "iterations_trained", "shared_iterations", "dense_val_acc",
    "dense_test_acc", "dense_objective", "objective", "status", "message", "wall_seconds", "node", "device",
    "mask_digest", "trajectory_key", "schema_version",
]
# multi-label data adds val_/test_ {micro,macro}_{precision,recall,f1}

CURVE_COLUMNS = [
    "experiment", "trial_id", "round", "run", "iteration", "epoch", "train_loss", "val_loss", "val_acc",
    "schema_version",
]

STATUSES = ("completed", "stopped", "diverged", "failed")
