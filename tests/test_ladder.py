"""Ladder trials (issue 26 item 1): with ``strategy.fidelity: rounds`` a trial is an iterative-pruning ladder
down to ``strategy.min_weights``; every evaluated round is a row of ``<experiment>/rounds/`` (once, also across
SIGINT and --resume), and ASHA compares ladders at levels of weights remaining (halvings), not at round
indices. Real Ray, Optuna and Parquet."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from test_search import reap_session, search_cmd, search_env, write_space

import nas_lth
from nas_lth import export
from nas_lth.errors import UserError
from nas_lth.space import SearchSpace
from nas_lth.store import read
from nas_lth.store.pareto import ranking
from nas_lth.strategy.trial import sparsest_within

FLOOR = 0.05
LADDER = {
    "name": "ladder",
    "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 1, "seed": 0, "rounds": 8,
              "prune_rate": {"output": 0.2}, "training": {"eval_every": 10}},
    "search": {"criterion": {"choice": ["large_final", "random", "movement"]},
               "prune_rate.fc": {"float": [0.3, 0.7]}},
    "strategy": {"num_samples": 6, "searcher": "tpe", "scheduler": "asha", "grace_period": 1, "reduction_factor": 2,
                 "max_concurrent": 2, "fidelity": "rounds", "min_weights": FLOOR, "seed": 0},
}


def test_a_ticket_run_with_a_floor_ends_after_the_first_round_at_or_below_it():
    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun, recipe_from_dict

    rc = recipe_from_dict({"model": "lenet300_100", "dataset": "digits", "rounds": 10, "budget": 1, "seed": 0,
                           "prune_rate": {"fc": 0.5, "output": 0.25}, "training": {"eval_every": 10}})
    data = load_dataset("digits", seed=0, val_size=rc.val_size)
    seen = []
    run = TicketRun(rc, data, floor=0.1, on_round=seen.append)
    rows = run.run()
    w = [r.weights_remaining for r in rows]
    assert [r.round for r in rows] == list(range(len(rows))) and len(rows) < 11
    assert w[-1] <= 0.1 < w[-2]  # the first round at or below the floor is the last
    assert seen == rows and run.final_weights is not None  # the ladder's last ticket is exportable


def test_sparsest_within_ranks_every_ticket_within_the_bound_above_every_other():
    from nas_lth.strategy.trial import sparsest_within

    dense = 0.95
    assert sparsest_within([(0.5, 0.96), (0.1, 0.946), (0.05, 0.90)], dense, 0.005) == pytest.approx(1.0)
    assert sparsest_within([(1.0, 0.95)], dense, 0.0) == 0.0  # the dense network itself: within, no gain
    short = sparsest_within([(0.5, 0.93), (0.1, 0.80)], dense, 0.005)
    assert short == pytest.approx(0.93 - 0.945) and short < 0  # none within: its best shortfall, below all within
    assert sparsest_within([], dense, 0.01) < 0


@pytest.mark.parametrize(("strategy", "fixed", "message"), [
    ({"fidelity": "rounds"}, {}, "fidelity: rounds: give min_weights"),
    ({"min_weights": 0.1}, {}, "min_weights belongs to fidelity: rounds"),
    ({"fidelity": "rounds", "min_weights": 1.5}, {}, "strategy.min_weights: Input should be less than 1"),
    ({"fidelity": "rounds", "min_weights": 0.1}, {"eval_rounds": "last"}, "fixed.eval_rounds: fidelity: rounds"),
    ({"fidelity": "rounds", "min_weights": 0.1}, {"target_weights": 0.1}, "give prune_rate \\(a dimension\\)"),
    ({"fidelity": "rounds", "min_weights": 0.1}, {"rounds": 0}, "fixed.rounds: a ladder needs at least 1 round"),
    ({"sparsest_within": -0.01}, {}, "strategy.sparsest_within: Input should be greater than or equal to 0"),
    ({"sparsest_within": 1.0}, {}, "strategy.sparsest_within: Input should be less than 1"),
    ({"sparsest_within": 0.01, "objectives": [{"metric": "val_acc", "mode": "max"},
                                              {"metric": "weights_remaining", "mode": "min"}]}, {},
     "sparsest_within is the search's single objective"),
])
def test_bad_ladder_spaces_are_one_line_errors(strategy, fixed, message):
    space = {**LADDER, "strategy": strategy, "fixed": {**LADDER["fixed"], **fixed}}
    with pytest.raises(UserError, match=message) as err:
        SearchSpace.from_dict(space, "s.yaml")
    assert "\n" not in str(err.value)


def _rounds_once_and_whole(exp, floor=FLOOR):
    res = read(str(exp))
    rounds, trials = res.rounds, res.trials
    assert not rounds.duplicated(["trial_id", "round"]).any()
    for tid, g in rounds.groupby("trial_id"):
        assert list(g["round"]) == list(range(len(g))), (tid, list(g["round"]))  # 0..last, none missing
        assert g.weights_remaining.is_monotonic_decreasing
        assert (g.iloc[1:].weights_remaining > floor).sum() == len(g) - 1 - int(g.iloc[-1].weights_remaining <= floor)
    return rounds, trials


@pytest.mark.integration
def test_a_ladder_search_stores_every_round_once_and_schedules_at_matched_sparsity(tmp_path):
    """... and scores each ladder by its sparsest round within 0.1 of the dense network (sparsest_within); the
    confirmation stage retrains the best ladder with fresh seeds and confirms it round by round."""
    space = write_space(tmp_path / "ladder.yaml", {**LADDER, "strategy": {**LADDER["strategy"],
                                                                            "sparsest_within": 0.1,
                                                                            "confirm": {"top": 1, "seeds": 2}}})
    storage = tmp_path / "runs"
    proc = subprocess.run(search_cmd(space, storage), cwd=tmp_path, env=search_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rounds, trials = _rounds_once_and_whole(storage / "ladder")
    assert len(trials) == 6 and set(trials.status) <= {"completed", "stopped"}
    _check_ladder_confirmation(storage / "ladder", proc.stdout, rounds, trials)
    rounds = rounds[rounds.trial_id.isin(trials.trial_id)]
    assert set(rounds.trial_id) == set(trials.trial_id)
    last = rounds.groupby("trial_id").tail(1).set_index("trial_id")
    for row in trials.itertuples():
        end = last.loc[row.trial_id]
        if row.status == "completed":  # down to the floor (or the cap)
            assert end.weights_remaining <= FLOOR or end["round"] == 8
            pruned = rounds[(rounds.trial_id == row.trial_id) & (rounds["round"] >= 1)]
            want = sparsest_within(list(zip(pruned.weights_remaining, pruned.val_acc, strict=True)),
                                   row.dense_val_acc, 0.1)
            assert row.objective == pytest.approx(want)
            # the row and the stored ticket are the ladder's answer: its sparsest round within the bound (else its
            # last), so export --best gives the ticket the objective scored
            within = pruned[pruned.val_acc >= row.dense_val_acc - 0.1]
            answer = within.iloc[-1] if len(within) else end
            assert (row.weights_remaining, row.val_acc) == pytest.approx((answer.weights_remaining, answer.val_acc))
            ticket = export.from_bytes((storage / "ladder" / "tickets" / f"{row.trial_id}.pt").read_bytes(), "t")
            assert ticket["provenance"]["round"] == answer["round"]
            assert ticket["provenance"]["metrics"]["end"]["val_acc"] == pytest.approx(answer.val_acc)
        else:  # stopped by ASHA at a level of weights remaining above the floor
            assert end.weights_remaining > FLOOR
    # round 0 is the dense network: served to all but one trial by the shared trajectory
    dense = rounds[rounds["round"] == 0]
    assert dense.weights_remaining.eq(1.0).all() and dense.val_acc.nunique() == 1 and dense.reused.sum() == 5
    assert (trials.status == "stopped").any() and (trials.status == "completed").any()
    # every rung decision, recomputed from its log; each judged the ladder at the first round that reached the
    # rung's level of weights remaining (matched sparsity), and every stopped ladder has its STOP
    log = [json.loads(line) for line in (storage / "ladder" / "moasha.jsonl").read_text().splitlines()]
    assert log and {d["rung"] for d in log} <= {1, 2, 4}  # grace 1, factor 2, max_t ceil(log2(1 / 0.05)) = 5
    for d in log:
        ids = list(d["rung_state"])
        order = ranking(np.array([d["rung_state"][i] for i in ids], dtype=float))
        place = int(np.flatnonzero(order == ids.index(d["trial_id"]))[0])
        assert place == d["place"] and d["action"] == ("CONTINUE" if place < math.ceil(len(ids) / 2) else "STOP")
        ladder = rounds[rounds.trial_id == d["trial_id"]]
        at = ladder[-np.log2(ladder.weights_remaining) >= d["rung"]].iloc[0]  # the first round past the rung
        assert -d["vector"][0] == pytest.approx(at.val_acc)
    stopped = {d["trial_id"] for d in log if d["action"] == "STOP"}
    assert stopped == set(trials[trials.status == "stopped"].trial_id)
    # the console names each ladder's round (not its cap) and the best as the weights the objective's score means
    for row in trials[trials.stage == "search"].itertuples():
        line = next(x for x in proc.stdout.splitlines() if f"trial {row.trial_id} " in x and " round=" in x)
        assert f"weights={100 * row.weights_remaining:.2f}%" in line and "rounds=" not in line
    best = 10 ** -trials[trials.status == "completed"].objective.max()
    assert (f"best full-budget sparsest ticket within 0.1 of the dense network's val_acc: {100 * best:.2f} % of "
            "the weights") in proc.stdout


def test_the_progress_line_shows_a_sparsest_within_score_as_weights():
    from nas_lth.experiment.progress import TableReporter

    rep = TableReporter("x", within=0.01)
    assert rep._best(-math.log10(0.0254)) == "2.54 % of the weights"
    assert rep._best(-0.013) == "none within the bound yet (closest: 0.0130 short)"
    assert rep._best(None) == "-" and TableReporter("val_acc")._best(0.97) == "0.9700"


def test_a_multi_objective_progress_line_counts_tickets_instead_of_naming_a_best():
    import io
    from types import SimpleNamespace

    from nas_lth.experiment.progress import TableReporter

    def trial(rnd, status):
        return SimpleNamespace(status=status, trial_id=f"t{rnd}", config={},
                               last_result={"round": rnd, "objective": 0.9, "final": status == "TERMINATED",
                                            "status": "completed"})

    out = io.StringIO()
    TableReporter("val_acc", ladder=True, multi_objective=True, stream=out).report(
        [trial(3, "TERMINATED"), trial(5, "RUNNING")], done=False)
    head = out.getvalue().splitlines()[0]
    assert head.endswith("2 trials (1 running, 1 terminated); 8 pruned rounds reached (several objectives: the "
                         "front is in the summary)") and "best" not in head


@pytest.mark.integration
def test_ladders_share_round_prefixes_counted_once_across_an_interrupt_and_resume(tmp_path):
    """Two ladders that differ only in their round cap: the second continues from the first's stored rounds (marked
    reused in rounds/, bit-identical to computing them, counted once in the epochs spent); interrupted (SIGINT) and
    resumed, every round is still stored once and never rewritten."""
    space = write_space(tmp_path / "ladder.yaml", {
        **LADDER, "fixed": {**{k: v for k, v in LADDER["fixed"].items() if k != "rounds"},
                            "prune_rate": {"fc": 0.4, "output": 0.2}},
        "search": {"rounds": {"choice": [3, 8]}},
        "strategy": {"searcher": "grid", "scheduler": "fifo", "max_concurrent": 1, "fidelity": "rounds",
                     "min_weights": 0.03, "seed": 0}})
    storage = tmp_path / "runs"
    cmd = search_cmd(space, storage)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=search_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    folder = storage / "ladder" / "rounds"
    deadline = time.monotonic() + 300
    # the first ladder's rounds and the second's first three (its dense round and the two it reuses at least)
    while time.monotonic() < deadline and proc.poll() is None and len(list(folder.glob("*.parquet"))) < 7:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=300)
    reap_session(proc)
    before = {p.name: p.read_bytes() for p in folder.glob("*.parquet")}
    again = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=search_env(), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rounds, trials = _rounds_once_and_whole(storage / "ladder", 0.03)
    assert all((folder / name).read_bytes() == data for name, data in before.items())  # never rewritten
    assert len(trials) == 2 and (trials.status == "completed").all()
    # the ladder that ran second (either cap: the grid's order is the sampler's) reused the other's rounds
    mine = {t: rounds[rounds.trial_id == t].set_index("round") for t in trials.trial_id}
    later = [t for t, g in mine.items() if g.reused.loc[1:].any()]
    assert len(later) == 1, rounds[["trial_id", "round", "reused"]]
    by_id = trials.set_index("trial_id")
    second, first = by_id.loc[later[0]], by_id.drop(index=later[0]).iloc[0]
    a, b = mine[first.name], mine[second.name]
    shared = range(1, min(len(a), len(b)))  # the shorter ladder's pruned rounds
    assert b.reused.loc[list(shared)].all() and not b.reused.drop(index=[0, *shared]).any()
    cols = ["weights_remaining", "mask_digest", "val_acc", "test_acc", "early_stop_iter"]
    assert b.loc[list(shared), cols].equals(a.loc[list(shared), cols])
    # counted once: the second trained its own rounds only; the dense run and the shared rounds are reused
    own = b.drop(index=[0, *shared])
    assert second.iterations_trained == own.iterations_trained.sum()
    assert second.shared_iterations == b.loc[[0, *shared]].iterations_trained.sum()
    assert first.iterations_trained == a.iterations_trained.sum() and first.shared_iterations == 0
    # the stored state after the last shared round is the one computing that ladder here gives, to the bit
    _check_prefix_bits(storage / "ladder", space, max(shared))
    assert f"round prefixes: {len(shared)} rounds reused" in again.stdout, again.stdout[-2000:]


def _check_ladder_confirmation(exp, stdout, rounds, trials):
    """The best ladder by the search's objective, retrained with 2 fresh seeds to its floor; its confirmed ticket
    is the sparsest round whose 2-seed mean val_acc is within 0.1 of the dense network's 2-seed mean."""
    res = read(str(exp))
    conf = res.confirm
    best = trials[trials.status == "completed"].sort_values(["objective", "weights_remaining", "trial_id"],
                                                            ascending=[False, True, True]).iloc[0]
    assert len(conf) == 2 and set(conf.confirm_of) == {best.trial_id} and set(conf.seed) == {1, 2}
    mine = rounds[rounds.trial_id.isin(conf.trial_id)].merge(conf[["trial_id", "seed"]], on="trial_id")
    dense = mine[mine["round"] == 0].val_acc.mean()
    means = mine[mine["round"] >= 1].groupby("round").agg(n=("seed", "nunique"), val=("val_acc", "mean"),
                                                         w=("weights_remaining", "mean"))
    ok = means[(means.n == 2) & (means.val >= dense - 0.1)]
    assert "ranked by the sparsest round whose mean val_acc over the seeds is within 0.1" in stdout, stdout[-3000:]
    table = nas_lth.load_results(str(exp)).confirmed
    row = table[table.entry == "recipe"].iloc[0]
    if len(ok):
        assert row["round"] == ok.w.idxmin() and row.weights_remaining == pytest.approx(ok.w.min())
    else:
        assert pd.isna(row["round"]) and row.weights_remaining == 1.0


def _check_prefix_bits(exp, space, last):
    import torch

    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun
    from nas_lth.experiment.prefixes import ExperimentPrefixes
    from nas_lth.space.schema import load_space
    from nas_lth.store.fs import locate

    recipe = load_space(space).recipe({"rounds": last})
    stored = ExperimentPrefixes(locate(str(exp)), recipe, "cpu").load(last)
    assert stored is not None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trial trained (its thread count decides reduction order)
    try:
        run = TicketRun(recipe, load_dataset("digits", seed=0, val_size=recipe.val_size), eval_at_epoch_end=True,
                        floor=0.03)
        run.run()
    finally:
        torch.set_num_threads(threads)
    for name, mask in run.masks.items():
        assert torch.equal(stored["masks"][name], mask), name
    for which, state in run.final_weights.items():
        for k, v in state.items():
            assert torch.equal(stored["final_weights"][which][k], v), (which, k)
    assert stored["round"] == last and stored["rows"][-1]["metrics"] == run.rows[-1].metrics


FRAGILE = '''
"""A model that diverges (non-finite logits) once its hidden layer keeps less than half of its weights."""
from torch import nn

import nas_lth


class Fragile(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.head = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        out = self.head(self.hidden(x.flatten(1)).relu())
        mask = getattr(self.hidden, "mask", None)  # a buffer once nas_lth has made the layer prunable
        return out * float("nan") if mask is not None and float(mask.mean()) < 0.5 else out


@nas_lth.register_model("fragile", "diverges below half of its hidden weights")
def fragile(input_shape, num_classes):
    return Fragile()
'''


@pytest.mark.integration
def test_a_ladder_that_diverges_at_round_r_keeps_its_rounds_before_r(tmp_path):
    """At 30 %/round the hidden layer keeps 70 % after round 1 and 49 % after round 2, where the model's output
    becomes NaN: rounds 0-1 stay stored with their metrics beside the diverged round, the ladder ends at round 1
    (completed, its divergence in its message), its row and ticket are its answer among the rounds before 2, and
    the report's tickets include round 1."""
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "__init__.py").write_text("")
    (tmp_path / "lab" / "fragile.py").write_text(FRAGILE)
    space = write_space(tmp_path / "fragile.yaml", {
        "name": "fragile", "plugins": ["lab.fragile"],
        "fixed": {"model": "fragile", "dataset": "digits", "budget": 1, "seed": 0, "rounds": 6,
                  "prune_rate": {"fc": 0.3, "output": 0.2}, "training": {"eval_every": 10}},
        "search": {"criterion": {"choice": ["large_final", "random"]}},
        "strategy": {"searcher": "grid", "scheduler": "fifo", "max_concurrent": 1, "fidelity": "rounds",
                     "min_weights": 0.2, "sparsest_within": 0.5, "seed": 0}})
    storage = tmp_path / "runs"
    proc = subprocess.run(search_cmd(space, storage), cwd=tmp_path, env={**search_env(), "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = read(str(storage / "fragile"))
    trials, rounds = res.trials, res.rounds
    # ended at round 1 as at a floor (the searcher is told its value), the divergence said in its message
    assert len(trials) == 2 and (trials.status == "completed").all(), trials[["status", "message"]]
    assert trials.message.str.startswith("diverged at round 2 (").all(), list(trials.message)
    assert trials.message.str.endswith("the ladder ends at round 1").all(), list(trials.message)
    assert (trials.objective > 0).all()  # round 1's sparsest_within score (-log10 of ~0.7), not a failure's 0
    assert not rounds.duplicated(["trial_id", "round"]).any()
    for t in trials.itertuples():
        mine = rounds[rounds.trial_id == t.trial_id].set_index("round")
        good = mine[mine.status == "completed"]
        assert list(good.index) == [0, 1], mine[["status", "weights_remaining", "val_acc"]]
        assert good.val_acc.notna().all() and good.val_acc.gt(0.3).all()  # learnt (chance: 0.1) before the NaNs
        assert (mine.drop(index=[0, 1]).status == "diverged").all()
        # the ladder's answer is its round-1 ticket (the only pruned round, within 0.5 of dense)
        assert t.val_acc == pytest.approx(good.loc[1, "val_acc"])
        assert t.weights_remaining == pytest.approx(good.loc[1, "weights_remaining"])
        ticket = export.from_bytes((storage / "fragile" / "tickets" / f"{t.trial_id}.pt").read_bytes(), "t")
        assert ticket["provenance"]["round"] == 1
    from nas_lth.store.analysis import round_tickets

    tickets = round_tickets(trials, rounds)
    assert set(tickets[tickets.status == "completed"]["round"]) == {1}


@pytest.mark.integration
def test_a_multi_objective_ladder_search_answers_with_its_sparsest_feasible_round_and_fronts_every_round(tmp_path):
    """Objectives (val_acc, weights_remaining) with a constraint: each completed ladder tells the searcher its
    sparsest round that meets the constraint (its trials row and ticket too; none: its last round, infeasible),
    and the summary's front and hypervolume read every round of every ladder, the report's too."""
    from test_search import study_of

    from nas_lth.report import build_report
    from nas_lth.store.analysis import ladder_tickets
    from nas_lth.store.constraints import feasible_rows
    from nas_lth.store.pareto import hypervolume_of, reference_point

    objectives = [("val_acc", "max"), ("weights_remaining", "min")]
    strategy = {**LADDER["strategy"], "searcher": "motpe", "num_samples": 5,
                "objectives": [{"metric": m, "mode": mode} for m, mode in objectives],
                "constraints": [{"metric": "val_acc", "min_vs_dense": -0.1}]}
    space = write_space(tmp_path / "mo.yaml", {**LADDER, "name": "mo", "strategy": strategy})
    storage = tmp_path / "runs"
    proc = subprocess.run(search_cmd(space, storage), cwd=tmp_path, env=search_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = storage / "mo"
    res = read(str(exp))
    trials, rounds = res.trials, res.rounds
    told = {t.user_attrs["tune_trial_id"]: t for t in study_of(exp).trials if "tune_trial_id" in t.user_attrs}
    answered = 0
    for row in trials[trials.status == "completed"].itertuples():
        mine = rounds[(rounds.trial_id == row.trial_id) & (rounds["round"] >= 1)]
        ok = mine[mine.val_acc >= row.dense_val_acc - 0.1 - 1e-12]
        want = ok.iloc[-1] if len(ok) else mine.iloc[-1]
        assert (row.weights_remaining, row.val_acc) == pytest.approx((want.weights_remaining, want.val_acc))
        if str(row.message).startswith("same recipe"):
            continue
        t = told[row.trial_id]
        assert t.values == pytest.approx([want.val_acc, want.weights_remaining])
        assert t.user_attrs["constraints"] == pytest.approx([row.dense_val_acc - 0.1 - want.val_acc])
        answered += len(ok) > 0 and len(ok) < len(mine)  # a ladder that went past the bound answers before its end
    assert answered >= 1, rounds.groupby("trial_id").val_acc.min()
    # the front and the hypervolume: every completed round of every ladder, feasible ones only
    tickets = ladder_tickets(trials, rounds)
    ref = reference_point(tickets, objectives)
    hv = hypervolume_of(feasible_rows(tickets, strategy["constraints"]), objectives, references=ref)
    assert "(every round of every ladder):" in proc.stdout
    assert f"hypervolume {hv:.4f} (reference point: val_acc {ref['val_acc']:.4g}" in proc.stdout, proc.stdout[-2500:]
    assert ref["val_acc"] == pytest.approx(trials.dense_val_acc.dropna().iloc[0] - 0.05)
    curve_end = proc.stdout.split("hypervolume vs epochs spent: ")[1].splitlines()[0].rsplit("-> ", 1)[1]
    assert float(curve_end) == pytest.approx(hv, abs=1e-4)
    summary = build_report(exp, tmp_path / "report").markdown.read_text()
    assert f"hypervolume {hv:.4f}" in summary and f"-> {hv:.4f}." in summary
