"""Tests for the ticket procedure (nas_lth.estimation.ticket), recipes and the ``nas_lth.ticket`` CLI.

Everything runs LeNet-300-100 on the embedded digits data (1,150 training images: 20 iterations per
epoch at batch 60), one epoch per training run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas_lth.data import load_dataset
from nas_lth.errors import UserError
from nas_lth.estimation import TicketRun, load_recipe, recipe_from_dict, run_ticket

REPO = Path(__file__).resolve().parents[1]
IPE = 20  # ceil(1150 / 60)
# LeNet-300-100 on 8x8 inputs: fc 64x300, fc 300x100, output 100x10
LAYER_SIZES = (64 * 300, 300 * 100, 100 * 10)
TOTAL = sum(LAYER_SIZES)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    assert len(data.train) == 1150
    return data


def recipe(**kw):
    base = {"model": "lenet300_100", "dataset": "digits", "rounds": 2, "budget": 1,
            "training": {"eval_every": 5}}
    base.update(kw)
    return recipe_from_dict(base)


def by_round(rows, variant="original"):
    return {r.round: r for r in rows if r.variant == variant}


def _nan_free(d: dict) -> dict:
    return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def comparable(row):
    """Everything in a row but the wall time (NaN made comparable: the first train_loss is NaN)."""
    rec = row.record()
    rec.pop("wall_seconds")
    return _nan_free(rec), [_nan_free(c) for c in row.curve]


# ------------------------------------------------------------------ determinism and the ladder


def test_same_recipe_twice_is_identical(digits):
    rc = recipe()
    a, b = run_ticket(rc, digits), run_ticket(rc, digits)
    assert [(r.round, r.variant) for r in a] == [(0, "dense"), (1, "original"), (2, "original")]
    assert all(r.status == "completed" for r in a)
    for x, y in zip(a, b, strict=True):
        assert x.mask_digest == y.mask_digest
        assert comparable(x) == comparable(y)
    # each round has a new, smaller mask
    assert len({r.mask_digest for r in a}) == 3
    assert a[-1].metrics["val_acc"] > 0.5  # it learned something


def test_different_seed_gives_different_masks(digits):
    a = by_round(run_ticket(recipe(rounds=1, seed=0), digits))
    b = by_round(run_ticket(recipe(rounds=1, seed=1), digits))
    assert a[1].weights_remaining == b[1].weights_remaining
    assert a[1].mask_digest != b[1].mask_digest


def test_three_rounds_compound_the_rates(digits):
    rows = run_ticket(recipe(rounds=3, prune_rate={"fc": 0.2, "output": 0.1}), digits)
    got = {r.round: r.weights_remaining for r in rows}
    # fc 19200 -> 15360 -> 12288 -> 9830, fc 30000 -> 24000 -> 19200 -> 15360,
    # output 1000 -> 900 -> 810 -> 729
    expected = {0: 1.0, 1: 40260 / TOTAL, 2: 32298 / TOTAL, 3: 25919 / TOTAL}
    assert got == pytest.approx(expected, abs=1e-12)
    assert [r.mask_iter for r in rows] == [None, IPE, IPE, IPE]  # stop_at: end


def test_controls_share_the_masks_of_the_original_rows(digits):
    seen = []
    controls = ("random_reinit", "reshuffle", "signed_constant")
    rows = TicketRun(recipe(), digits, controls=controls, on_round=seen.append).run()
    assert seen == rows
    assert [(r.round, r.variant) for r in rows] == [
        (0, "dense"),
        *[(rnd, v) for rnd in (1, 2) for v in ("original", *controls)],
    ]
    original = by_round(rows)
    for r in rows:
        if r.round == 0:
            assert not r.control
            continue
        assert r.control == (r.variant != "original")
        assert r.mask_digest == original[r.round].mask_digest
        assert r.weights_remaining == original[r.round].weights_remaining
        assert r.status == "completed"
        if r.control:  # a control trains from other weights
            assert r.curve[0]["val_loss"] != original[r.round].curve[0]["val_loss"]


def test_reinit_recipe_without_original_still_prunes_from_the_original_trajectory(digits):
    base = run_ticket(recipe(), digits, controls=("random_reinit",))
    rows = run_ticket(recipe(reinit="random_reinit"), digits)
    assert [(r.round, r.variant, r.control) for r in rows] == [
        (0, "dense", False), (1, "random_reinit", False), (2, "random_reinit", False)]
    ref = {r.round: r for r in base if r.variant == "random_reinit"}
    for r in rows[1:]:
        assert r.mask_digest == ref[r.round].mask_digest
        assert r.metrics == ref[r.round].metrics
        assert comparable(r)[1] == comparable(ref[r.round])[1]  # the curves


# ------------------------------------------------------------------ stopping points


@pytest.mark.parametrize("stop_at, iteration", [(7, 7), ("7", 7), ("0.5ep", 10), ("end", IPE), (0, 0)])
def test_stop_at_sets_the_mask_iteration(digits, stop_at, iteration):
    rows = run_ticket(recipe(stop_at=stop_at), digits)
    assert [r.mask_iter for r in rows] == [None, iteration, iteration]
    assert all(r.early_bird_drawn is None for r in rows)
    assert all(r.iterations == IPE for r in rows)  # evaluated runs train the whole budget


def test_stop_at_changes_the_mask(digits):
    early = by_round(run_ticket(recipe(stop_at=3, rounds=1), digits))
    late = by_round(run_ticket(recipe(stop_at="end", rounds=1), digits))
    assert early[1].mask_digest != late[1].mask_digest


def test_early_bird_checks_once_per_epoch_by_default(digits):
    # window 2: the FIFO is full at the second check; eps 0.99 always passes. Checks at 0, 20, 40
    # (epoch starts), not at every evaluation (every 5 iterations here).
    rows = run_ticket(recipe(stop_at="early_bird", eb_window=2, eb_eps=0.99, budget=2), digits)
    assert rows[0].early_bird_drawn is None and rows[0].mask_iter is None
    assert [(r.mask_iter, r.early_bird_drawn) for r in rows[1:]] == [(IPE, True), (IPE, True)]


def test_early_bird_cadence_is_a_recipe_key(digits):
    rows = run_ticket(recipe(stop_at="early_bird", eb_window=3, eb_eps=0.99, eb_every=5), digits)
    # checks at 0, 5, 10: the FIFO of 3 is full at iteration 10
    assert [r.mask_iter for r in rows[1:]] == [10, 10]


def test_early_bird_that_never_settles_uses_the_last_weights(digits):
    rows = run_ticket(recipe(stop_at="early_bird", eb_eps=1e-4, eb_every=5), digits)
    for r in rows[1:]:
        assert r.early_bird_drawn is False
        assert r.mask_iter == IPE


def test_early_bird_measures_distance_among_the_weights_alive_before_the_round(digits, monkeypatch):
    from nas_lth.estimation import ticket as ticket_mod
    from nas_lth.pruning import EarlyBird

    seen = []

    class Recording(EarlyBird):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append(None if self.alive is None else sum(int(m.sum()) for m in self.alive.values()))

    monkeypatch.setattr(ticket_mod.pruning, "EarlyBird", Recording)
    rows = run_ticket(recipe(stop_at="early_bird", eb_every=5, rounds=3, prune_rate={"fc": 0.5, "output": 0.5}),
                      digits)
    kept = [round(r.weights_remaining * TOTAL) for r in by_round(rows).values()]
    # one detector per trajectory run (rounds 0, 1, 2), each over the weights alive at its start
    assert seen == [TOTAL, kept[0], kept[1]]


def test_early_bird_with_eval_rounds_last_stops_the_trajectory_early(digits):
    rows = run_ticket(recipe(stop_at="early_bird", eb_window=2, eb_eps=0.99, eb_every=5, eval_rounds="last"),
                      digits)
    assert [(r.round, r.variant) for r in rows] == [(2, "original")]
    assert rows[0].early_bird_drawn is True and rows[0].mask_iter == 5
    # dense and round 1 stop at the Early-Bird point (5), round 2 trains the whole budget
    assert rows[0].cumulative_iterations == 5 + 5 + IPE


def test_early_bird_replayed_from_a_shared_trajectory_matches_training_it(digits):
    from nas_lth.estimation.trajectory import compute_trajectory

    rc = recipe(stop_at="early_bird", eb_window=3, eb_eps=0.3, budget=4, rounds=1, rewind_to=20)
    own = run_ticket(rc, digits)
    traj = compute_trajectory(rc, digits, snapshot_iters={0, 20}, grids={IPE})
    assert traj.grid(IPE) == [0, 20, 40, 60, 80] and traj.grid(7) == []
    shared = TicketRun(rc, digits, trajectory=traj).run()
    assert [(r.mask_iter, r.early_bird_drawn, r.mask_digest) for r in shared if r.round == 1] == \
        [(r.mask_iter, r.early_bird_drawn, r.mask_digest) for r in own if r.round == 1]
    (a, a_curve), (b, b_curve) = comparable(shared[-1]), comparable(own[-1])
    assert a.pop("cumulative_iterations") == 4 * IPE - 20  # the dense run was paid for by the trajectory
    assert b.pop("cumulative_iterations") == 4 * IPE + 4 * IPE - 20
    assert (a, a_curve) == (b, b_curve)


@pytest.mark.parametrize("criterion, stop_at", [("large_final", 10), ("snip", 0), ("random", "end")])
def test_first_masks_are_the_masks_the_one_shot_ticket_trains(digits, criterion, stop_at):
    from nas_lth import pruning
    from nas_lth.estimation import first_masks
    from nas_lth.estimation.trajectory import compute_trajectory

    rc = recipe(criterion=criterion, stop_at=stop_at, rounds=1, budget=1, target_weights=0.2,
                prune_rate={"output": 0.1})
    traj = compute_trajectory(rc, digits, snapshot_iters={0, 10, IPE})
    rows = TicketRun(rc, digits, trajectory=traj).run()
    assert pruning.digest(first_masks(rc, digits, traj)) == by_round(rows)[1].mask_digest


def test_large_init_selects_the_same_masks_at_every_stopping_point(digits):
    # the grid in benchmarks/criteria_grid.py trains such cells once; this is why it may
    from nas_lth import pruning
    from nas_lth.estimation import first_masks
    from nas_lth.estimation.trajectory import compute_trajectory

    rcs = [recipe(criterion=c, stop_at=s, rounds=1, target_weights=0.2, prune_rate={"output": 0.1})
           for c, s in [("large_init", 0), ("large_init", 10), ("large_init", "end"), ("large_final", 0),
                        ("large_final", "end")]]
    traj = compute_trajectory(rcs[0], digits, snapshot_iters={0, 10, IPE})
    digests = [pruning.digest(first_masks(rc, digits, traj)) for rc in rcs]
    assert len(set(digests[:4])) == 1 and digests[4] != digests[0]


# ------------------------------------------------------------------ late resetting


def test_rewound_ticket_continues_the_dense_clock_from_k(digits):
    rows = run_ticket(recipe(rewind_to=7, rounds=1, budget=2), digits)
    dense, ticket = by_round(rows, "dense")[0], by_round(rows)[1]
    assert dense.iterations == 2 * IPE and dense.curve[0]["iteration"] == 0
    # trained from k = 7 to the budget (T - k steps); evaluations on the dense run's clock
    assert ticket.iterations == 2 * IPE - 7
    its = [c["iteration"] for c in ticket.curve]
    assert its[0] == 7 and its[1] == 10 and its[-1] == 2 * IPE
    assert 7 <= ticket.early_stop_iter <= 2 * IPE
    assert ticket.cumulative_iterations == 2 * IPE + 2 * IPE - 7


def test_the_reinit_control_of_a_rewound_ticket_starts_where_the_ticket_starts(digits):
    """Issue 28: the random-reinit control of a late-reset ticket is rewound to the same iteration k (the dense
    run's clock, data order and schedule from k, T - k steps) with random values, not trained from iteration 0."""
    rows = run_ticket(recipe(rewind_to=7, rounds=1, budget=2), digits, controls=("random_reinit",))
    ticket, reinit = by_round(rows)[1], by_round(rows, "random_reinit")[1]
    assert reinit.iterations == ticket.iterations == 2 * IPE - 7
    assert [c["iteration"] for c in reinit.curve] == [c["iteration"] for c in ticket.curve]
    assert reinit.curve[0]["iteration"] == 7
    assert reinit.curve[0]["val_loss"] != ticket.curve[0]["val_loss"]  # other values at the same point
    assert reinit.mask_digest == ticket.mask_digest  # a control of the same masks


def test_stop_before_the_rewind_point_selects_at_the_rewind_point_in_later_rounds(digits):
    rows = run_ticket(recipe(stop_at=3, rewind_to=7, rounds=3, eval_rounds="last"), digits)
    # round 0 (dense, from 0) stops at 3; the rounds that start at 7 cannot: their masks come from 7
    assert rows[-1].mask_iter == 7
    first = run_ticket(recipe(stop_at=3, rewind_to=7, rounds=1), digits)
    assert first[-1].mask_iter == 3


def test_stop_at_beyond_the_budget_is_a_user_error(digits):
    for stop_at in (IPE + 1, "2ep"):
        with pytest.raises(UserError, match="budget"):
            TicketRun(recipe(stop_at=stop_at), digits)
    with pytest.raises(UserError, match="rewind_to"):
        TicketRun(recipe(rewind_to=IPE + 1), digits)
    TicketRun(recipe(stop_at=IPE), digits)  # the last iteration is fine


# ------------------------------------------------------------------ eval_rounds


def test_eval_rounds_last_trains_less_and_yields_only_the_last_round(digits):
    all_rows = run_ticket(recipe(rounds=3, stop_at=5), digits, controls=("random_reinit",))
    last_rows = run_ticket(recipe(rounds=3, stop_at=5, eval_rounds="last"), digits,
                           controls=("random_reinit",))
    assert [(r.round, r.variant) for r in last_rows] == [(3, "original"), (3, "random_reinit")]
    assert {r.round for r in all_rows} == {0, 1, 2, 3}
    # the masks are the same (the trajectory up to the stopping point is the same)
    final_all = {r.variant: r for r in all_rows if r.round == 3}
    for r in last_rows:
        assert r.mask_digest == final_all[r.variant].mask_digest
        assert r.metrics == final_all[r.variant].metrics
    # dense + rounds 1, 2 train only to iteration 5; round 3 trains the budget for both variants
    assert last_rows[-1].cumulative_iterations == 3 * 5 + 2 * IPE
    assert all_rows[-1].cumulative_iterations == 4 * IPE + 3 * IPE
    assert last_rows[-1].cumulative_iterations < all_rows[-1].cumulative_iterations


def test_rounds_zero_is_the_dense_net_only(digits):
    for eval_rounds in ("all", "last"):
        rows = run_ticket(recipe(rounds=0, eval_rounds=eval_rounds), digits)
        assert [(r.round, r.variant, r.weights_remaining) for r in rows] == [(0, "dense", 1.0)]
        assert set(rows[0].metrics) >= {"val_acc", "test_acc", "val_loss", "test_loss"}


# ------------------------------------------------------------------ rewinding


NO_PRUNING = {"fc": 0.0, "output": 0.0}  # masks stay all-ones: a round starts exactly at theta_k


def test_rewind_to_starts_the_ticket_at_the_rewind_point(digits):
    rows = run_ticket(recipe(rounds=1, rewind_to=10, prune_rate=NO_PRUNING), digits)
    dense, ticket = rows
    assert ticket.status == "completed"
    dense_loss = {rec["iteration"]: rec["val_loss"] for rec in dense.curve}
    assert ticket.curve[0]["iteration"] == 10  # on the dense run's clock
    assert ticket.curve[0]["val_loss"] == dense_loss[10]
    assert ticket.curve[0]["val_loss"] != dense_loss[0]

    rows0 = run_ticket(recipe(rounds=1, rewind_to=0, prune_rate=NO_PRUNING), digits)
    assert rows0[1].curve[0]["val_loss"] == dense_loss[0]


def test_rewound_run_sees_the_dense_runs_batches_and_schedule_from_k(digits):
    # Plain SGD has no optimizer state, and nothing is pruned: a ticket rewound to k that continues
    # the dense run's data order and learning-rate schedule from k must retrace it bit for bit.
    sgd = {"optimizer": "sgd", "lr": 0.05, "eval_every": 5, "lr_milestones": [1.0], "lr_gamma": 0.5}
    rows = run_ticket(recipe(rounds=1, rewind_to=13, budget=2, prune_rate=NO_PRUNING, training=sgd), digits)
    dense, ticket = rows
    assert ticket.iterations == 2 * IPE - 13
    after_k = [c for c in dense.curve if c["iteration"] > 13]
    assert ticket.curve[0]["iteration"] == 13  # the ticket's first evaluation: its starting point
    assert [c["iteration"] for c in ticket.curve[1:]] == [c["iteration"] for c in after_k]
    assert [c["val_loss"] for c in ticket.curve[1:]] == [c["val_loss"] for c in after_k]
    assert ticket.metrics["test_loss"] == dense.metrics["test_loss"]


def test_rewind_with_pruning_completes(digits):
    rows = run_ticket(recipe(rounds=2, rewind_to=3, stop_at=12), digits)
    assert [r.status for r in rows] == ["completed"] * 3
    assert rows[2].weights_remaining < rows[1].weights_remaining < 1.0
    plain = run_ticket(recipe(rounds=2, rewind_to=0, stop_at=12), digits)
    assert plain[1].mask_digest == rows[1].mask_digest  # round 1's mask comes from the dense run
    assert plain[1].curve[0]["val_loss"] != rows[1].curve[0]["val_loss"]


def test_rewind_beyond_the_stopping_point_with_eval_rounds_last(digits):
    ref = run_ticket(recipe(rounds=1, rewind_to=10, stop_at=5, prune_rate=NO_PRUNING), digits)
    ref_loss_at_10 = {rec["iteration"]: rec["val_loss"] for rec in ref[0].curve}[10]
    try:
        rows = run_ticket(recipe(rounds=1, rewind_to=10, stop_at=5, eval_rounds="last",
                                 prune_rate=NO_PRUNING), digits)
    except UserError:
        return  # refusing the combination would also be a fix
    assert rows[0].curve[0]["val_loss"] == ref_loss_at_10


# ------------------------------------------------------------------ gradient criteria end to end


@pytest.mark.parametrize("criterion", ["snip", "grasp", "synflow"])
def test_gradient_criteria_run_end_to_end(digits, criterion):
    rows = run_ticket(recipe(criterion=criterion, synflow_iterations=5, score_batches=2), digits)
    assert [r.status for r in rows] == ["completed"] * 3
    assert [r.weights_remaining for r in rows] == pytest.approx([1.0, 40260 / TOTAL, 32298 / TOTAL])
    magnitude = run_ticket(recipe(criterion="large_final"), digits)
    assert rows[1].mask_digest != magnitude[1].mask_digest
    again = run_ticket(recipe(criterion=criterion, synflow_iterations=5, score_batches=2), digits)
    assert [r.mask_digest for r in again] == [r.mask_digest for r in rows]


def test_global_scope_runs_and_differs_from_layerwise(digits):
    glob = by_round(run_ticket(recipe(rounds=1, scope="global"), digits))
    lw = by_round(run_ticket(recipe(rounds=1, scope="layerwise"), digits))
    # both fc layers share the 0.2 rate: the total count is the same, the split differs
    assert glob[1].weights_remaining == pytest.approx(lw[1].weights_remaining, abs=2 / TOTAL)
    assert glob[1].mask_digest != lw[1].mask_digest


def test_divergence_is_a_row_and_ends_the_procedure(digits):
    rows = run_ticket(recipe(training={"optimizer": "sgd", "lr": 1e6, "eval_every": 2}), digits)
    assert len(rows) == 1
    assert rows[0].status == "diverged" and rows[0].message
    assert rows[0].metrics == {}


# ------------------------------------------------------------------ recipe validation

BASE = {"model": "lenet300_100", "dataset": "digits"}


@pytest.mark.parametrize(
    "extra, key",
    [
        ({"colour": "red"}, "colour"),
        ({"training": {"lr": 0.1, "nesterov": True}}, "training.nesterov"),
        ({"criterion": "largest"}, "criterion"),
        ({"stop_at": "soon"}, "stop_at"),
        ({"stop_at": -3}, "stop_at"),
        ({"stop_at": 1.5}, "stop_at"),
        ({"prune_rate": {"fc": 1.0}}, "prune_rate"),
        ({"prune_rate": {"fc": -0.1}}, "prune_rate"),
        ({"prune_rate": {"dense": 0.2}}, "prune_rate"),
        ({"reinit": "shuffle"}, "reinit"),
        ({"scope": "everywhere"}, "scope"),
        ({"eval_rounds": "some"}, "eval_rounds"),
        ({"rounds": -1}, "rounds"),
        ({"budget": 0}, "budget"),
        ({"training": {"lr": 0}}, "training.lr"),
    ],
)
def test_recipe_errors_are_one_line_and_name_the_key(extra, key):
    with pytest.raises(UserError) as info:
        recipe_from_dict({**BASE, **extra}, source="r.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"r.yaml: {key}")


def test_recipe_error_messages_list_allowed_values():
    with pytest.raises(UserError, match="unknown key"):
        recipe_from_dict({**BASE, "colour": "red"})
    with pytest.raises(UserError) as info:
        recipe_from_dict({**BASE, "criterion": "largest"})
    assert "large_final" in str(info.value) and "synflow" in str(info.value)
    with pytest.raises(UserError) as info:
        recipe_from_dict({**BASE, "model": "lenet5"})
    msg = str(info.value)
    assert "\n" not in msg and "lenet5" in msg and "lenet300_100" in msg and "conv2" in msg
    with pytest.raises(UserError, match="expected a mapping"):
        recipe_from_dict(["model", "lenet300_100"])
    with pytest.raises(UserError, match="model"):
        recipe_from_dict({"dataset": "digits"})  # missing required key


def test_unknown_model_error_names_the_key():
    with pytest.raises(UserError) as info:
        recipe_from_dict({**BASE, "model": "lenet5"}, source="r.yaml")
    assert str(info.value).startswith("r.yaml: model:")


def test_boolean_stop_at_is_rejected():
    with pytest.raises(UserError, match="stop_at"):
        recipe_from_dict({**BASE, "stop_at": True})


@pytest.mark.parametrize("value, kind, iters", [
    (0, "iterations", 0), ("15", "iterations", 15), ("0.5ep", "epochs", 10), ("1 epochs", "epochs", 20),
    (".25 ep", "epochs", 5), ("end", "end", 20), ("early_bird", "early_bird", None)])
def test_stop_at_forms(value, kind, iters):
    stop = recipe_from_dict({**BASE, "stop_at": value}).stop
    assert stop.kind == kind
    assert stop.iteration(IPE, 20) == iters


def test_load_recipe_errors(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [lenet\n  dataset: digits\n")
    with pytest.raises(UserError, match="malformed YAML"):
        load_recipe(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(UserError, match="mapping"):
        load_recipe(empty)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**BASE, "rounds": 3, "prune_rate": {"fc": 0.5, "output": 0.2}}))
    rc = load_recipe(good)
    assert rc.rounds == 3 and rc.prune_rate == {"fc": 0.5, "output": 0.2, "conv": 0.15, "embedding": 0.1}


# ------------------------------------------------------------------ CLI


def run_cli(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("NAS_LTH_DATA", None)
    return subprocess.run([sys.executable, "-m", "nas_lth.ticket", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd or REPO, timeout=120)


def test_cli_json_prints_one_record_per_round(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**BASE, "rounds": 2, "budget": 0.5, "training": {"eval_every": 5}}))
    proc = run_cli(path, "--json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    keys = ["round", "weights_remaining", "val_acc", "test_acc", "early_stop_iter", "mask_digest"]
    for rec in records:
        assert list(rec)[: len(keys)] == keys
        assert 0.0 <= rec["val_acc"] <= 1.0 and 0.0 <= rec["test_acc"] <= 1.0
        assert isinstance(rec["early_stop_iter"], int)
        assert rec["status"] == "completed"
    assert [r["round"] for r in records] == [0, 1, 2]
    assert records[0]["weights_remaining"] == 1.0
    assert records[2]["weights_remaining"] < records[1]["weights_remaining"] < 1.0
    assert len({r["mask_digest"] for r in records}) == 3


@pytest.mark.parametrize(
    "content",
    [
        yaml.safe_dump({**BASE, "criterion": "largest"}),
        yaml.safe_dump({**BASE, "colour": "red"}),
        yaml.safe_dump({**BASE, "dataset": "imagenet"}),
        yaml.safe_dump({**BASE, "stop_at": 10_000}),  # beyond the budget
        "model: [lenet\n  dataset: digits\n",  # malformed YAML
    ],
    ids=["criterion", "unknown_key", "dataset", "stop_beyond_budget", "malformed_yaml"],
)
def test_cli_bad_recipe_is_one_error_line_exit_2(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    proc = run_cli(path, "--json")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith("error:")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_diverged_run_exits_1_with_a_diverged_record(tmp_path):
    path = tmp_path / "hot.yaml"
    path.write_text(yaml.safe_dump({**BASE, "rounds": 1, "training": {"optimizer": "sgd", "lr": 1e6}}))
    proc = run_cli(path, "--json", "--device", "cpu")
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stdout.strip().splitlines()
    rec = json.loads(line)
    assert rec["status"] == "diverged" and rec["round"] == 0
    assert rec["val_acc"] is None and rec["test_acc"] is None


def test_cli_missing_file_exit_2(tmp_path):
    proc = run_cli(tmp_path / "nope.yaml")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_controls_do_not_change_the_masks_of_the_recipe(digits):
    rc = recipe(criterion="random", rounds=2, budget=0.5)
    plain = [r.mask_digest for r in run_ticket(rc, digits)]
    with_control = [r.mask_digest for r in run_ticket(rc, digits, controls=("reshuffle",))
                    if r.variant != "reshuffle"]
    assert with_control == plain
