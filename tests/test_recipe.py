"""The vocabulary's contract: every recipe field declares its roles, every key a space can search has
a column in the trials table, and the shared trajectory's key covers exactly the fields marked dense."""

from __future__ import annotations

import pytest

from nas_lth.recipe import LAYER_KINDS, Recipe, Training, dense_key_fields, recorded_columns, roles_of
from nas_lth.space.schema import NESTED_KEYS, RECIPE_KEYS
from nas_lth.store.schema import TRIAL_COLUMNS, TRIAL_SCHEMA

BASE = {"model": "lenet300_100", "dataset": "digits"}
# a second valid value for each field (to check which fields move the trajectory key)
OTHER = {
    "model": "conv2", "dataset": "mnist", "model_options": {"hidden": [10, 10]},
    "dataset_options": {"x": 1}, "val_size": 100, "criterion": "movement", "stop_at": 7, "eb_eps": 0.2,
    "eb_window": 3, "eb_every": 11, "rewind_to": 5, "reinit": "reshuffle", "prune_rate": {"fc": 0.5},
    "target_weights": 0.1, "rounds": 3, "scope": "global", "budget": 2.0, "seed": 1,
    "training": {"lr": 0.01}, "score_batches": 2, "grasp_temperature": 10.0, "samples_per_class": 3,
    "synflow_iterations": 5, "eval_rounds": "last", "granularity": "channel", "channel_norm": "l2",
}


def test_every_recipe_field_declares_its_roles():
    for model in (Recipe, Training):
        missing = sorted(set(model.model_fields) - set(roles_of(model)))
        assert missing == [], f"{model.__name__} fields without role(...): {missing}"
    assert set(OTHER) == set(Recipe.model_fields), "OTHER needs a value for every recipe field"


def test_every_searchable_key_has_a_column():
    cols = set(TRIAL_COLUMNS)
    for key in RECIPE_KEYS:
        if key == "prune_rate":
            assert {f"prune_rate_{k}" for k in LAYER_KINDS} <= cols
        elif key == "training":
            assert {f"training_{k}" for k in Training.model_fields} <= cols
        else:
            assert key in cols, f"recipe key {key!r} has no column in the trials table"
    assert {"model_options", "dataset_options"} <= cols and "model_options" in NESTED_KEYS
    types = {f.name: str(f.type) for f in TRIAL_SCHEMA}
    assert [(n, types[n]) for n, _ in recorded_columns()] == [
        (n, {"json": "string", "int64": "int64", "float64": "double", "string": "string"}[t])
        for n, t in recorded_columns()]


@pytest.mark.parametrize("field", sorted(OTHER))
def test_the_trajectory_key_moves_with_exactly_the_dense_fields(field):
    from nas_lth.estimation.trajectory import trajectory_key

    base = Recipe.model_validate(BASE)
    other = Recipe.model_validate({**BASE, field: OTHER[field]})
    assert getattr(other, field) != getattr(base, field)
    changed = trajectory_key(other) != trajectory_key(base)
    assert changed == (field in dense_key_fields()), (field, changed)


def test_columns_are_null_where_a_value_does_not_act():
    plain = Recipe.model_validate(BASE).columns({"fc", "output"})
    assert plain["eb_eps"] is None and plain["eb_every"] is None and plain["grasp_temperature"] is None
    assert plain["prune_rate_conv"] is None and plain["prune_rate_fc"] == 0.2
    assert plain["training_lr"] == 1.2e-3 and plain["model_options"] == "{}"
    eb = Recipe.model_validate({**BASE, "stop_at": "early_bird", "criterion": "grasp"}).columns()
    assert eb["eb_eps"] == 0.1 and eb["eb_window"] == 5 and eb["grasp_temperature"] == 200.0
    assert eb["stop_at"] == "early_bird"
    assert set(plain) == {n for n, _ in recorded_columns()}


# fields that name what is trained on: dense by definition (and another value needs other data)
_IDENTITY = {"model", "dataset", "dataset_options"}


@pytest.fixture(scope="module")
def digits():
    from nas_lth.data import load_dataset

    return load_dataset("digits")


@pytest.mark.parametrize("field", sorted(set(OTHER) - _IDENTITY))
def test_a_field_that_changes_the_dense_run_is_marked_dense(field, digits):
    """Ground truth for the roles: train the dense run (a few iterations) with the field at two values;
    if anything differs - initial weights, curve, metrics - the field must be marked dense."""
    import torch

    from nas_lth.data import load_dataset
    from nas_lth.estimation.trajectory import compute_trajectory

    tiny = {**BASE, "budget": 0.25, "training": {"eval_every": 2}, "model_options": {"hidden": [20, 10]}}
    other_value = OTHER[field]
    if field == "training":
        other_value = {**tiny["training"], **OTHER["training"]}
    if field == "budget":
        other_value = 0.5
    runs = []
    for rc in (Recipe.model_validate(tiny), Recipe.model_validate({**tiny, field: other_value})):
        data = digits if rc.val_size is None else load_dataset("digits", val_size=rc.val_size, seed=rc.seed)
        if rc.seed != 0:
            data = load_dataset("digits", seed=rc.seed)
        t = compute_trajectory(rc, data, snapshot_iters=set())
        runs.append((t.theta0, t.curve, t.metrics, t.budget_iters))
    (a0, ac, am, ab), (b0, bc, bm, bb) = runs
    same = (ab == bb and am == bm and all(torch.equal(a0[k], b0[k]) for k in a0)
            and [c["val_loss"] for c in ac] == [c["val_loss"] for c in bc])
    assert same == (field not in dense_key_fields()), (field, "changes the dense run" if not same else "does not")


def test_identity_fields_are_dense():
    assert _IDENTITY <= set(dense_key_fields())


def _bounds(field) -> set[str]:
    return {type(m).__name__ for m in field.metadata} & {"Ge", "Gt", "Le", "Lt"}


@pytest.mark.parametrize("model", [Recipe, Training])
def test_every_numeric_field_has_a_finite_range(model):
    """A number past any sensible value (budget 2**64, lr 1e308) is refused when the file is loaded; it
    used to pass, and every trial then hung counting to it or failed."""
    for name, f in model.model_fields.items():
        types = set(getattr(f.annotation, "__args__", (f.annotation,)))
        if types & {int, float} and str not in types:  # stop_at (int | str) has its own parser: tested below
            bounds = _bounds(f)
            assert bounds & {"Ge", "Gt"} and bounds & {"Le", "Lt"}, f"{model.__name__}.{name}: bounds {bounds}"


@pytest.mark.parametrize("key, value", [("budget", 2**64), ("budget", 1e308), ("score_batches", 2**64),
                                        ("val_size", 2**64), ("rewind_to", 2**64), ("stop_at", 2**64),
                                        ("training", {"lr": 1e308}), ("training", {"weight_decay": 1e308}),
                                        ("training", {"lr_milestones": [1e308]})])
def test_huge_values_are_refused_naming_their_key(key, value):
    from nas_lth.errors import UserError
    from nas_lth.recipe import recipe_from_dict

    with pytest.raises(UserError, match=f"r.yaml: {key}"):
        recipe_from_dict({**BASE, key: value}, "r.yaml")
