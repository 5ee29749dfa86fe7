"""The analysis of benchmarks/ladder_search.py (issue 26 item 6) on hand-made rows: what a method recommends after B
epochs, what confirmation makes of it, and what counts as reuse."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from benchmarks.ladder_search import confirmed_ticket, grid_in_random_orders, ordered_rounds, recommend, reuse_counts

DENSE = 0.97


def rows(*spec):
    """(ladder, round, weights, val_acc, cum_epochs) -> a run's rows."""
    return pd.DataFrame([{"ladder": lad, "round": r, "weights_remaining": w, "val_acc": v, "cum_epochs": e,
                          "dense_val_acc": DENSE} for lad, r, w, v, e in spec])


def test_a_method_recommends_its_sparsest_round_within_the_bound_finished_within_the_budget():
    df = rows(("a", 0, 1.0, DENSE, 2), ("a", 1, 0.5, 0.971, 4), ("a", 2, 0.25, 0.966, 6),
              ("b", 1, 0.4, 0.968, 8), ("b", 2, 0.1, 0.9651, 10), ("b", 3, 0.05, 0.90, 12))
    assert recommend(df, 5) == ("a", 1, 0.5)
    assert recommend(df, 6) == ("a", 2, 0.25)  # 0.966 is within 0.5 pp of 0.97
    assert recommend(df, 12) == ("b", 2, 0.1)  # the 5 % round is 7 pp below: out
    assert recommend(df, 1) is None


def test_the_confirmed_ticket_is_the_sparsest_round_whose_mean_over_the_seeds_is_within_the_bound():
    conf = pd.DataFrame([{"ladder": "a", "seed": s, "round": r, "weights_remaining": w, "test_acc": acc}
                         for s, accs in ((1, (0.980, 0.981, 0.977, 0.960)), (2, (0.978, 0.979, 0.976, 0.970)))
                         for r, (w, acc) in enumerate(zip((1.0, 0.5, 0.25, 0.125), accs, strict=True))])
    w, test, dense = confirmed_ticket(conf, "a", 3, [1, 2])
    assert (w, test, dense) == pytest.approx((0.25, 0.9765, 0.979))  # round 3's mean 0.965 is 1.4 pp below
    assert confirmed_ticket(conf, "a", 1, [1, 2])[0] == 0.5  # not past the recommended round
    assert math.isnan(confirmed_ticket(conf, "a", 3, [1, 2, 3])[0])  # seed 3 not confirmed yet: no answer


def test_the_grid_in_random_orders_pays_the_dense_run_once_and_finds_a_ladder_only_when_it_has_run():
    def ladder(tid, accs):
        return [{"trial_id": tid, "ladder": tid, "round": r, "weights_remaining": 0.5 ** r, "val_acc": a,
                 "cost_epochs": 2.0, "dense_val_acc": DENSE} for r, a in enumerate(accs)]

    # a: its round 2 (25 %) is within the bound; b: none of its pruned rounds is
    grid = pd.DataFrame(ladder("a", (DENSE, 0.97, 0.968)) + ladder("b", (DENSE, 0.90, 0.80)))
    got = grid_in_random_orders(grid, [6.0, 6.5, 10.0], orders=400, seed=1)
    at = got.groupby("budget_epochs").weights
    # dense (2) + a's two rounds (4) = 6 epochs when a runs first; b first spends those 6 on nothing within it
    first = got[got.budget_epochs == 6.0].weights
    assert set(first) == {0.25, 1.0} and 0.4 < (first == 0.25).mean() < 0.6
    assert (at.get_group(6.5).to_numpy() == first.to_numpy()).all()  # half an epoch more buys no round
    assert (at.get_group(10.0) == 0.25).all()  # both ran: 2 + 4 + 4, the second dense not paid again
    assert got.equals(grid_in_random_orders(grid, [6.0, 6.5, 10.0], orders=400, seed=1))


def test_reuse_counts_tell_a_replayed_recipe_from_a_continued_prefix():
    df = pd.DataFrame({"trial_id": ["x", "x", "y", "y", "z", "z", "z"], "round": [0, 1, 0, 1, 0, 1, 2],
                       "reused": [False, False, True, True, True, True, False]})
    assert reuse_counts(df) == {"replayed_ladders": 1, "reused_rounds": 1}  # y replayed x; z continued x's round 1


def test_rounds_are_charged_in_the_order_they_were_trained_reused_ones_for_nothing():
    trials = pd.DataFrame([
        {"trial_id": "t2", "finished_at": 2.0, "status": "completed", "iterations_per_epoch": 10,
         "iterations_trained": 20, "criterion": "random", "stop_at": "end", "rewind_to": 0, "prune_rate_fc": 0.2},
        {"trial_id": "t1", "finished_at": 1.0, "status": "stopped", "iterations_per_epoch": 10,
         "iterations_trained": 35, "criterion": "large_final", "stop_at": "200", "rewind_to": 100,
         "prune_rate_fc": 0.5}])
    rounds = pd.DataFrame([
        {"trial_id": "t1", "round": 0, "weights_remaining": 1.0, "val_acc": 0.9, "test_acc": 0.9, "reused": False,
         "iterations_trained": 10},
        {"trial_id": "t1", "round": 1, "weights_remaining": 0.5, "val_acc": 0.91, "test_acc": 0.9, "reused": False,
         "iterations_trained": 20},
        {"trial_id": "t2", "round": 0, "weights_remaining": 1.0, "val_acc": 0.9, "test_acc": 0.9, "reused": True,
         "iterations_trained": 10},
        {"trial_id": "t2", "round": 1, "weights_remaining": 0.8, "val_acc": 0.92, "test_acc": 0.9, "reused": False,
         "iterations_trained": 20}])
    out = ordered_rounds(trials, rounds)
    # t1 first (it finished first): 1 + 2 epochs, then the 0.5 epoch it trained beyond its rows; t2's dense is free
    assert list(zip(out.trial_id, out["round"], out.cum_epochs, strict=True)) == [
        ("t1", 0, 1.0), ("t1", 1, 3.0), ("t1", -1, 3.5), ("t2", 0, 3.5), ("t2", 1, 5.5)]
    assert json.loads(out.ladder.iloc[0]) == {"criterion": "large_final", "prune_rate.fc": 0.5, "rewind_to": 100,
                                              "stop_at": "200"}
    assert (out.dense_val_acc == 0.9).all()


def test_the_multi_objective_variant_asks_both_objectives_under_the_reference_points_constraint():
    from benchmarks.ladder_pareto import mo_space
    from benchmarks.ladder_search import SPACE
    from nas_lth.space import load_space

    strat = mo_space(load_space(SPACE), "tpe_rounds", 3, 66.0).spec.strategy
    assert (strat.searcher, strat.scheduler, strat.seed, strat.epoch_budget) == ("motpe", "asha", 3, 66.0)
    assert strat.sparsest_within is None and [(o.metric, o.mode) for o in strat.objectives] == [
        ("val_acc", "max"), ("weights_remaining", "min")]
    assert [(c.metric, c.min_vs_dense) for c in strat.constraints] == [("val_acc", -0.05)]
    assert mo_space(load_space(SPACE), "random_fifo", 0, 66.0).spec.strategy.share_rounds is False


def test_hypervolume_grows_round_by_round_and_counts_only_what_halves_the_network_within_5_pp():
    from benchmarks.ladder_pareto import epochs_to_reach, hv_at, hv_curve, reference

    refs = reference(DENSE)
    assert refs == pytest.approx({"val_acc": 0.92, "weights_remaining": 0.5})
    df = rows(("a", 0, 1.0, DENSE, 2), ("a", 1, 0.6, 0.975, 4), ("a", 2, 0.25, 0.96, 6), ("a", 3, 0.05, 0.90, 8),
              ("b", 1, 0.05, 0.95, 10))
    curve = hv_curve(df, refs)
    # 0.6 is above the weights' reference and 0.90 below the accuracy's: neither adds volume
    assert list(curve.cum_epochs) == [4, 6, 8, 10]
    one = 0.04 * (math.log10(0.5) - math.log10(0.25))  # (0.96 - 0.92) x one halving on the log10 scale
    assert list(curve.hypervolume[:3]) == pytest.approx([0.0, one, one])
    two = one + 0.03 * (math.log10(0.25) - math.log10(0.05))  # b's point: 3 pp above the reference, 5x sparser
    assert curve.hypervolume.iloc[3] == pytest.approx(two)
    assert hv_at(curve, 3) == 0.0 and hv_at(curve, 7) == pytest.approx(one) and hv_at(curve, 99) == pytest.approx(two)
    assert epochs_to_reach(curve, one) == 6 and epochs_to_reach(curve, two) == 10
    assert math.isnan(epochs_to_reach(curve, two + 0.01))


def test_confirmations_trained_side_by_side_equal_those_trained_one_by_one(tmp_path, monkeypatch):
    """``--jobs 2`` trains (ladder, seed) pairs in spawned 1-thread processes: the same rows as in this process,
    every pair once, and a rerun trains nothing."""
    import benchmarks.ladder_search as ls
    from nas_lth.space import load_space

    text = ls.SPACE.read_text().replace("dataset: mnist", "dataset: digits").replace("budget: 2 ", "budget: 1 ")
    text = text.replace("eval_every: 459", "eval_every: 10")
    (tmp_path / "s.yaml").write_text(text)
    space = load_space(tmp_path / "s.yaml")
    wanted = {json.dumps({"criterion": "large_final", "prune_rate.fc": 0.5, "rewind_to": 0, "stop_at": "end"},
                         sort_keys=True): 2,
              json.dumps({"criterion": "snip", "prune_rate.fc": 0.6, "rewind_to": 0, "stop_at": "10"},
                         sort_keys=True): 1}
    got = {}
    for jobs in (1, 2):
        monkeypatch.setattr(ls, "OUT", tmp_path / f"j{jobs}")
        (tmp_path / f"j{jobs}").mkdir()
        got[jobs] = ls.confirm(wanted, [1, 2], space, None, jobs=jobs)
        again = ls.confirm(wanted, [1, 2], space, None, jobs=jobs)  # nothing left to train: the stored rows
        pd.testing.assert_frame_equal(again, pd.read_parquet(tmp_path / f"j{jobs}" / "confirm.parquet"))
    key = ["ladder", "seed", "round"]
    one, two = (got[j].sort_values(key).reset_index(drop=True).drop(columns="wall_seconds") for j in (1, 2))
    assert len(one) == 2 * (3 + 2) and not one.duplicated(key).any()
    pd.testing.assert_frame_equal(one, two, check_dtype=False)


def test_the_page_shows_the_search_time_answers_and_only_the_confirmed_ones_as_confirmed():
    from benchmarks.ladder_search import render

    rows = [{"method": "grid", "searcher_seed": 0, "budget_epochs": 600.0, "recommended_weights": 0.0119,
             "confirmed_weights": 0.0148}]
    for s in range(5):
        rows += [{"method": "tpe_rounds", "searcher_seed": s, "budget_epochs": 200.0,
                  "recommended_weights": 0.0115 if s < 3 else 0.02, "confirmed_weights": 0.0148 if s < 2 else None},
                 {"method": "random_fifo", "searcher_seed": s, "budget_epochs": 200.0,
                  "recommended_weights": 0.02, "confirmed_weights": None}]
    per_run = pd.DataFrame(rows).assign(grid_epochs=600.0, reused_rounds=0, replayed_ladders=0, ladders=5)
    page = render(per_run, list(range(5)))
    assert "Every (method, searcher seed) run of seeds 0-4 is in" in page and "3 of 11" in page
    val, conf = page.split("## Confirmed")
    assert "| tpe_rounds | 200.0 | 0.33 | 5 | 1.15 (1.15-2.00) | 3 of 5 |" in val
    assert "tpe_rounds vs random_fifo: 5 seeds" in val
    assert "PARTIAL" in conf and "| tpe_rounds | 200.0 | 0.33 | 2 | 1.48 (1.48-1.48) | 2 of 2 |" in conf
    assert "random_fifo" not in conf.split("|---|")[1].split("Paired")[0]  # nothing of it confirmed: no row
    no_grid = render(per_run.assign(confirmed_weights=[None] + list(per_run.confirmed_weights[1:])), list(range(5)))
    assert "| tpe_rounds | 200.0 | 0.33 | 2 | 1.48 (1.48-1.48) | - (grid not yet) |" in no_grid
    none = render(per_run.assign(confirmed_weights=None), list(range(6)))
    assert none.startswith("# Ladder") and "PARTIAL: not every" in none and none.rstrip().endswith("Not confirmed yet.")


def test_the_grid_by_hand_reaches_its_own_hypervolume_only_once_every_ladder_has_run():
    from benchmarks.ladder_pareto import grid_hv_in_random_orders, hv_at, hv_curve, reference

    def ladder(tid, accs):
        return [{"trial_id": tid, "ladder": tid, "round": r, "weights_remaining": 0.5 ** (r + 1), "val_acc": a,
                 "cost_epochs": 2.0, "cum_epochs": 0.0, "dense_val_acc": DENSE} for r, a in enumerate(accs)]

    grid = pd.DataFrame(ladder("a", (DENSE, 0.96, 0.95)) + ladder("b", (DENSE, 0.965, 0.94)))
    refs = reference(DENSE)
    whole = hv_at(hv_curve(grid.assign(cum_epochs=range(1, 7)), refs), 99)
    got = grid_hv_in_random_orders(grid, refs, [2.0, 6.0, 10.0], orders=50, seed=3)
    assert (got[got.budget_epochs == 2.0].hypervolume == 0).all()  # only the dense run
    assert list(got[got.budget_epochs == 10.0].hypervolume) == pytest.approx([whole] * 50) and whole > 0
    one = got[got.budget_epochs == 6.0].hypervolume  # one ladder: a's front or b's, never both
    assert set(one.round(12)) == {round(hv_at(hv_curve(grid[grid.trial_id == t].assign(cum_epochs=range(1, 4)),
                                                        refs), 99), 12) for t in "ab"}
