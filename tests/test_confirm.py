"""The confirmation stage: its plan (top distinct recipes x fresh seeds), its statistics (95 % t intervals,
Welch's t-tests, the search-time gap), and a real search that runs it, is interrupted inside it and resumes."""

from __future__ import annotations

import math
import signal

import pandas as pd
import pytest
from scipy import stats

from nas_lth.errors import UserError
from nas_lth.experiment.stage import unwrap
from nas_lth.space import SearchSpace
from nas_lth.store import read
from nas_lth.store.confirmed import confirmation, confirmed, format_table, mean_ci, welch_p
from nas_lth.strategy.confirm import plan, top_recipes

BASE = {"name": "c", "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 2},
        "search": {"criterion": {"choice": ["large_final", "random", "snip"]}}}


def space(**strategy) -> SearchSpace:
    return SearchSpace.from_dict({**BASE, "strategy": strategy}, "c.yaml")


# ------------------------------------------------------------------ statistics


def test_mean_ci_is_the_student_t_interval():
    m, half, n = mean_ci([0.90, 0.92, 0.94])
    assert (m, n) == (pytest.approx(0.92), 3)
    assert half == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) * s / sqrt(n)
    assert math.isnan(mean_ci([0.9])[1]) and mean_ci([0.9])[0] == 0.9
    assert mean_ci([0.9, float("nan"), None])[2] == 1  # non-finite values do not count


def test_welch_p_is_scipys_unequal_variance_test_and_nan_without_spread():
    a, b = [0.90, 0.91, 0.95], [0.80, 0.86, 0.83, 0.84]
    assert welch_p(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert welch_p(a, b) != pytest.approx(stats.ttest_ind(a, b, equal_var=True).pvalue)
    assert math.isnan(welch_p([0.9], b))
    assert math.isnan(welch_p([0.9, 0.9], [0.8, 0.8]))


def _rows(of: str, criterion: str, vals: list[float], tests: list[float], dense=None, status="completed"):
    return [{"trial_id": f"{of}-{i}", "stage": "confirm", "confirm_of": of, "criterion": criterion, "seed": i + 1,
             "status": status, "weights_remaining": 0.05, "val_acc": v, "test_acc": t,
             "dense_val_acc": None if dense is None else dense[0][i],
             "dense_test_acc": None if dense is None else dense[1][i]}
            for i, (v, t) in enumerate(zip(vals, tests, strict=True))]


def test_confirmed_ranks_by_mean_validation_and_tests_best_against_runner_up_and_dense():
    search = pd.DataFrame([{"trial_id": "a", "val_acc": 0.99, "criterion": "snip"},
                           {"trial_id": "b", "val_acc": 0.97, "criterion": "large_final"}])
    dense = ([0.96, 0.97, 0.95], [0.950, 0.955, 0.945])
    confirm = pd.DataFrame(
        _rows("a", "snip", [0.93, 0.94, 0.92], [0.92, 0.93, 0.91], dense)  # the search's winner falls back
        + _rows("b", "large_final", [0.96, 0.97, 0.965], [0.96, 0.962, 0.958], dense)
        + _rows("b", "large_final", [0.1], [0.1], status="failed")[:1])
    v = confirmed(search, confirm, "val_acc")
    recipes = v.table[v.table.entry == "recipe"]
    assert recipes.confirm_of.tolist() == ["b", "a"]  # by confirmed mean validation, not search-time value
    best = recipes.iloc[0]
    assert best.seeds == 3 and best.not_completed == 1  # the failed replicate is counted, not averaged
    assert best.val_acc_mean == pytest.approx(0.965)
    assert best.val_acc_gap == pytest.approx(0.965 - 0.97)
    d = v.table[v.table.entry == "dense"].iloc[0]
    assert d.test_acc_mean == pytest.approx(0.95) and d.seeds == 3
    runner, vs_dense = v.comparisons
    assert runner.p == pytest.approx(stats.ttest_ind([0.96, 0.962, 0.958], [0.92, 0.93, 0.91],
                                                     equal_var=False).pvalue)
    assert vs_dense.p == pytest.approx(stats.ttest_ind([0.96, 0.962, 0.958], dense[1], equal_var=False).pvalue)
    lines = v.lines()
    assert "best vs runner-up (test_acc)" in lines[0] and "significant (best higher)" in lines[0]
    assert "search-time val_acc 0.9700 -> confirmed 0.9650" in lines[2]
    shown = format_table(v)
    assert shown["recipe of"].tolist() == ["b", "a", "dense"]
    assert shown["test_acc % (95% CI)"].iloc[0].startswith("96.00 ± ")


def test_confirmed_is_none_without_confirmation_rows():
    assert confirmed(pd.DataFrame({"trial_id": ["a"]}), pd.DataFrame(), "val_acc") is None


def _ladder(tid, seed, weights, vals, tests, dense=(0.97, 0.96)):
    """One confirm ladder's rounds: round 0 (dense), then its pruned rounds."""
    out = [{"trial_id": tid, "round": 0, "status": "completed", "weights_remaining": 1.0, "val_acc": dense[0],
            "test_acc": dense[1]}]
    return out + [{"trial_id": tid, "round": r, "status": "completed", "weights_remaining": w, "val_acc": v,
                   "test_acc": t} for r, (w, v, t) in enumerate(zip(weights, vals, tests, strict=True), start=1)]


def test_ladders_are_confirmed_round_by_round_and_ranked_by_the_sparsest_round_within_the_bound():
    search = pd.DataFrame([{"trial_id": "a", "val_acc": 0.968, "weights_remaining": 0.0625, "criterion": "snip"},
                           {"trial_id": "b", "val_acc": 0.969, "weights_remaining": 0.125, "criterion": "large_final"},
                           {"trial_id": "c", "val_acc": 0.969, "weights_remaining": 0.5, "criterion": "random"}])
    confirm = pd.DataFrame([{"trial_id": f"{of}{s}", "confirm_of": of, "seed": s, "status": "completed",
                             "criterion": crit, "weights_remaining": 0.25, "val_acc": 0.96, "test_acc": 0.95}
                            for of, crit in (("a", "snip"), ("b", "large_final"), ("c", "random")) for s in (1, 2, 3)])
    halves = (0.5, 0.25, 0.125, 0.0625)
    rounds = pd.DataFrame(
        # a: round 3 is within 0.01 of dense (0.97) on the mean (0.958 of seed 3 alone is not), round 4 is not
        _ladder("a1", 1, halves, (0.97, 0.965, 0.962, 0.95), (0.96, 0.95, 0.95, 0.94), dense=(0.97, 0.958))
        + _ladder("a2", 2, halves, (0.97, 0.963, 0.963, 0.95), (0.96, 0.955, 0.955, 0.94), dense=(0.97, 0.96))
        + _ladder("a3", 3, halves, (0.97, 0.962, 0.958, 0.95), (0.96, 0.951, 0.951, 0.94), dense=(0.97, 0.962))
        # b: within down to round 4 for seeds 1-2, but seed 3 never finished round 3: round 2 is what all reached
        + _ladder("b1", 1, halves, (0.97, 0.968, 0.965, 0.965), (0.96, 0.96, 0.96, 0.96))
        + _ladder("b2", 2, halves, (0.97, 0.968, 0.965, 0.965), (0.96, 0.96, 0.96, 0.96))
        + _ladder("b3", 3, halves[:2], (0.97, 0.968), (0.96, 0.96))
        # c: no pruned round within the bound: it answers with the dense network, ranked last
        + [r for s in (1, 2, 3) for r in _ladder(f"c{s}", s, halves[:1], (0.90,), (0.90,))])
    v = confirmation(search, confirm, rounds, "val_acc", within=0.01)
    recipes = v.table[v.table.entry == "recipe"]
    assert recipes.confirm_of.tolist() == ["a", "b", "c"]  # by the confirmed weights, not the search's
    assert recipes["round"].tolist()[:2] == [3, 2] and pd.isna(recipes["round"].iloc[2])
    assert recipes.weights_remaining.tolist() == pytest.approx([0.125, 0.25, 1.0])
    a = recipes.iloc[0]
    assert a.val_acc_mean == pytest.approx((0.962 + 0.963 + 0.958) / 3) and a.seeds == 3
    d = v.table[v.table.entry == "dense"].iloc[0]
    assert (d.val_acc_mean, d.test_acc_mean, d["round"]) == pytest.approx((0.97, 0.96, 0))
    (vs_dense,) = v.comparisons  # no runner-up test: it sits at another sparsity
    assert vs_dense.p == pytest.approx(stats.ttest_ind([0.95, 0.955, 0.951], [0.958, 0.96, 0.962],
                                                       equal_var=False).pvalue)
    assert v.lines()[-1] == "best recipe's search-time answer 6.25 % of the weights -> confirmed 12.50 % (round 3)"
    shown = format_table(v)
    assert shown["round"].tolist() == ["3", "2", "none within", "0"]
    assert shown["search-time weights %"].tolist() == ["6.25", "12.50", "50.00", "-"]
    assert "within 0.01 of the dense network's" in v.ranked_by
    assert confirmation(search, confirm, rounds, "val_acc").within is None  # no bound: per recipe, as before


# ------------------------------------------------------------------ the plan


def test_fresh_seeds_skip_every_seed_the_search_uses():
    assert space(confirm={"top": 1, "seeds": 3}).confirm_seeds() == [1, 2, 3]  # fixed seed 0 (default)
    s = SearchSpace.from_dict({**BASE, "search": {**BASE["search"], "seed": {"choice": [0, 2]}},
                               "strategy": {"confirm": {"top": 1, "seeds": 3}}}, "c.yaml")
    assert s.confirm_seeds() == [1, 3, 4]
    assert space(confirm={"top": 1, "seeds": [7, 5]}).confirm_seeds() == [7, 5]
    with pytest.raises(UserError, match=r"c.yaml: strategy.confirm.seeds: seed 0 is one the search runs with"):
        space(confirm={"top": 1, "seeds": [3, 0]})
    assert space().confirm_seeds() == []


def test_plan_takes_the_top_distinct_completed_recipes_times_the_seeds():
    search = pd.DataFrame([
        {"trial_id": "t1", "criterion": "snip", "status": "completed", "val_acc": 0.90, "weights_remaining": 0.1},
        {"trial_id": "t2", "criterion": "random", "status": "completed", "val_acc": 0.95, "weights_remaining": 0.1},
        {"trial_id": "t3", "criterion": "random", "status": "completed", "val_acc": 0.95, "weights_remaining": 0.1},
        {"trial_id": "t4", "criterion": "large_final", "status": "stopped", "val_acc": 0.99,
         "weights_remaining": 0.1},
    ])
    assert top_recipes(search, "val_acc", 5) == ["t2", "t1"]  # t3 repeats t2's recipe; t4 never finished
    configs = {t: {"criterion": c} for t, c in zip(search.trial_id, search.criterion, strict=True)}
    todo = plan(space(confirm={"top": 2, "seeds": 2}), search, configs, "val_acc")
    assert [(unwrap({"confirm": c})[0]["criterion"], unwrap({"confirm": c})[0]["seed"]) for c in todo] == \
        [("random", 1), ("random", 2), ("snip", 1), ("snip", 2)]
    assert {unwrap({"confirm": c})[1]["confirm_of"] for c in todo} == {"t2", "t1"}
    assert plan(space(), search, configs, "val_acc") == []


# ------------------------------------------------------------------ a real search with the stage


@pytest.mark.integration
def test_search_confirms_its_top_recipes_and_resumes_inside_the_stage(tmp_path):
    from test_search import interrupt_when, run, search_cmd, tiny_space, write_space

    data = tiny_space("tiny_confirm", 4, {"criterion": {"choice": ["large_final", "random", "snip",
                                                                   "magnitude_increase"]}},
                      scheduler="fifo", max_concurrent=1, confirm={"top": 2, "seeds": 3})
    space_file = write_space(tmp_path / "confirm.yaml", data)
    storage = tmp_path / "runs"
    exp = storage / "tiny_confirm"
    cmd = search_cmd(space_file, storage)

    def in_stage():  # one confirmation row written, the others still to come
        try:
            return len(read(str(exp)).confirm) >= 1
        except Exception:  # noqa: BLE001 - tables still being created
            return False

    interrupt_when(cmd, tmp_path, in_stage, signal.SIGINT)
    first = read(str(exp)).confirm
    assert 1 <= len(first) < 6, "the stage finished before SIGINT arrived: make its trials slower"
    proc = run([*cmd, "--resume"], tmp_path, "second")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    res = read(str(exp))
    search, conf = res.trials, res.confirm
    assert len(search) == 4 and (search.stage == "search").all()
    assert len(conf) == 6 and conf.trial_id.is_unique and (conf.status == "completed").all()
    # the two best distinct recipes by search-time validation, each with the fresh seeds 1, 2, 3
    assert set(conf.confirm_of) == set(top_recipes(search, "val_acc", 2))
    for of, rows in conf.groupby("confirm_of"):
        assert sorted(rows.seed) == [1, 2, 3]
        src = search.set_index("trial_id").loc[of]
        assert (rows.criterion == src.criterion).all()
    # each seed's dense network is trained once and shared by both recipes of that seed
    for _seed, rows in conf.groupby("seed"):
        assert rows.trajectory_key.nunique() == 1, rows[["trial_id", "trajectory_key"]]
        # (a trial resumed past round 0 does not count the dense run it trained before SIGINT again)
        assert (rows.trajectory_iterations_trained.fillna(0) > 0).sum() <= 1
        assert (rows.shared_iterations.fillna(0) > 0).sum() >= 1
        assert rows.dense_test_acc.nunique() == 1
    assert conf.trajectory_key.nunique() == 3 and set(conf.trajectory_key).isdisjoint(search.trajectory_key)
    # rows written before SIGINT were not rewritten; the verdict is printed and stored
    assert set(first.trial_id) <= set(conf.trial_id)
    for needle in ("confirmed: the top 2 recipes", "best vs runner-up (test_acc)", "best vs dense network",
                   "search-time val_acc"):
        assert needle in proc.stdout, (needle, proc.stdout[-3000:])
    stored = pd.read_parquet(exp / "confirmed.parquet")
    assert stored.entry.tolist() == ["recipe", "recipe", "dense"]
    assert set(stored.confirm_of.dropna()) == set(conf.confirm_of)
