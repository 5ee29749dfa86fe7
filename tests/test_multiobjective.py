"""Multi-objective search: non-dominated sorting, crowding and hypervolume; multi-objective ASHA's rung
decisions on hand-made results; and a real search (Ray Tune + Optuna's MOTPE + MO-ASHA) whose study, rows and
logged rung decisions agree."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from optuna._hypervolume.wfg import compute_hypervolume
from ray.tune.schedulers import TrialScheduler

from nas_lth.errors import UserError
from nas_lth.space import SearchSpace
from nas_lth.store.pareto import crowding, hypervolume, nondominated_ranks, ranking
from nas_lth.strategy.moasha import MultiObjectiveASHA, rung_order

REPO = Path(__file__).resolve().parents[1]

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
# A multi-objective search whose trials are single recipes (fidelity: epochs; the sparsity searched as
# target_weights): what search_spaces/digits_pareto.yaml was before it searched ladders, with fewer trials.
EPOCHS_PARETO = """
name: mo
fixed:
  model: lenet300_100
  dataset: digits
  budget: 8
  seed: 0
  prune_rate: {output: 0.3}
  eval_rounds: last
  training: {optimizer: adam, lr: 1.2e-3, batch_size: 60, eval_every: 20}
search:
  criterion: {choice: [large_final, large_init, magnitude_increase, movement, random, snip, synflow]}
  stop_at: {choice: [0, 20, 60, end]}
  rewind_to: {choice: [0, 10]}
  rounds: {int: [1, 3]}
  target_weights: {float: [0.005, 0.5], log: true}
strategy:
  objectives: [{metric: val_acc, mode: max}, {metric: weights_remaining, mode: min}]
  constraints: [{metric: val_acc, min_vs_dense: -0.03}]
  num_samples: 12
  max_concurrent: 2
  searcher: motpe
  seed: 0
  scheduler: asha
  grace_period: 2
  reduction_factor: 2
  checkpoint_every_s: 5
resources: {cpus_per_trial: 1}
"""


def test_nondominated_ranks_and_crowding():
    pts = [[1, 5], [2, 2], [5, 1], [3, 3], [6, 6]]  # to minimise
    assert nondominated_ranks(pts).tolist() == [0, 0, 0, 1, 2]
    d = crowding([[1, 5], [2, 2], [5, 1]])
    assert math.isinf(d[0]) and math.isinf(d[2]) and d[1] == pytest.approx((5 - 1) / 4 + (5 - 1) / 4)
    assert ranking(pts).tolist()[:3] == [0, 2, 1]  # front 0; its extremes (infinite crowding) first
    assert ranking(pts).tolist()[3:] == [3, 4]


def test_hypervolume_by_hand_and_against_optuna():
    assert hypervolume([[1, 1]], [2, 3]) == pytest.approx(2.0)
    assert hypervolume([[1, 2], [2, 1]], [3, 3]) == pytest.approx(3.0)  # 2 + 2 - overlap 1
    assert hypervolume([[4, 0]], [3, 3]) == 0.0  # not better than the reference: nothing
    for d in (2, 3):
        pts = np.random.default_rng(d).random((30, d))
        assert hypervolume(pts, [1.1] * d) == pytest.approx(compute_hypervolume(pts, np.array([1.1] * d)))


def test_moasha_promotes_by_nondominated_sorting_at_each_rung():
    s = MultiObjectiveASHA([("objective", "max"), ("weights_remaining", "min")], max_t=8, grace_period=1,
                           reduction_factor=2)
    assert s.rungs == [8, 4, 2, 1]
    r = lambda acc, w: {"objective": acc, "weights_remaining": w}  # noqa: E731
    assert s.decide("a", 1, r(0.90, 0.1)) == CONTINUE  # alone at the rung
    assert s.decide("b", 1, r(0.80, 0.2)) == STOP  # dominated by a; keeps ceil(2/2) = 1
    assert s.decide("c", 1, r(0.95, 0.5)) == CONTINUE  # not dominated: front {a, c}, keeps 2 of 3
    assert s.decide("d", 1.5, r(0.50, 0.9)) == STOP  # dominated; the 1.5-epoch result counts for rung 1
    assert s.decide("a", 1.7, r(0.91, 0.1)) == CONTINUE  # a's rung-1 decision was made: nothing new
    assert s.decide("a", 2, r(0.91, 0.1)) == CONTINUE  # the next rung
    # rung 2: a and c are both non-dominated with infinite crowding (the extremes of a front of two); ceil(2/2)
    # = 1 goes on, the tie going to the one recorded first
    assert s.decide("c", 2, r(0.96, 0.5)) == STOP


def test_moasha_rung_with_two_nondominated_trials_keeps_one(tmp_path):
    log = tmp_path / "log.jsonl"
    s = MultiObjectiveASHA([("objective", "max"), ("weights_remaining", "min")], max_t=4, grace_period=1,
                           reduction_factor=2, log_path=str(log))
    assert s.decide("a", 1, {"objective": 0.9, "weights_remaining": 0.1}) == CONTINUE
    assert s.decide("c", 1, {"objective": 0.95, "weights_remaining": 0.5}) == STOP  # a tie on crowding: a first
    assert s.decide("e", 1, {"objective": 0.97, "weights_remaining": 0.05}) == CONTINUE  # dominates both
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["trial_id"], x["place"], x["keep"], x["action"]) for x in recs] == \
        [("a", 0, 1, CONTINUE), ("c", 1, 1, STOP), ("e", 0, 2, CONTINUE)]


def test_moasha_leaves_out_an_objective_a_result_does_not_carry():
    s = MultiObjectiveASHA([("objective", "max"), ("mask_iter", "min")], max_t=4, grace_period=1, reduction_factor=2)
    assert s.decide("a", 1, {"objective": 0.9}) == CONTINUE
    assert s.decide("b", 1, {"objective": 0.8}) == STOP  # compared on the objective alone
    assert s.on_trial_result(None, type("T", (), {"trial_id": "c"})(), {"fidelity": 0, "objective": 1.0}) == CONTINUE
    assert "c" not in s.recorded[1]  # earlier rounds (fidelity 0) are not rung results


def dashboard_api(journal) -> dict:
    """Start optuna-dashboard on 127.0.0.1 (a free port) against ``journal``; its studies and the first study's
    trials, read from its HTTP API."""
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or "optuna-dashboard"
    server = subprocess.Popen([exe, str(journal), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"optuna-dashboard did not serve: {server.stdout.read()[-2000:]!r}") from None
                time.sleep(0.5)
        sid = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}?after=0", timeout=10) as r:
            trials = json.load(r)["trials"]
    finally:
        server.terminate()
        server.wait(10)
    return {"studies": studies, "trials": trials}


BASE = {"name": "x", "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 2},
        "search": {"criterion": {"choice": ["large_final", "random"]}}}


@pytest.mark.parametrize(("objectives", "extra", "message"), [
    ([{"metric": "val_loss", "mode": "min"}], {}, "strategy.objectives.0.metric: Input should be"),
    ([{"metric": "val_acc", "mode": "up"}], {}, "strategy.objectives.0.mode: Input should be 'max' or 'min'"),
    ([{"metric": "val_acc", "mode": "max"}] * 2, {}, "each metric once"),
    ([{"metric": "val_acc", "mode": "max"}], {"metric": "val_acc"}, "give either metric or objectives"),
    ([{"metric": "val_acc", "mode": "max"}, {"metric": "latency_ms", "mode": "min"}], {},
     "latency_ms: give batch_size"),
    ([{"metric": "val_acc", "mode": "max"}, {"metric": "latency_ms", "mode": "max", "batch_size": 8}], {},
     "latency_ms: mode must be min"),
    ([{"metric": "val_acc", "mode": "max", "batch_size": 8}], {}, "batch_size and forms belong to a latency_ms"),
    ([{"metric": "val_acc", "mode": "max"}, {"metric": "latency_ms", "mode": "min", "batch_size": 8,
                                             "forms": ["csr", "gpu"]}], {}, "strategy.objectives.1.forms.1: Input"),
    ([{"metric": "weights_remaining", "mode": "min"}], {}, "a single objective must be a validation metric"),
    (None, {"metric": "val_loss"}, "strategy.metric: Input should be 'val_acc', 'val_micro_f1' or 'val_macro_f1'"),
    ([{"metric": "val_acc", "mode": "max", "reference": 1.5}, {"metric": "weights_remaining", "mode": "min"}], {},
     "strategy.objectives.0: reference 1.5: val_acc lies in 0..1"),
    ([{"metric": "val_acc", "mode": "max"}, {"metric": "weights_remaining", "mode": "min", "reference": 0}], {},
     "reference 0.0: weights_remaining lies in \\(0, 1\\]"),
    ([{"metric": "val_acc", "mode": "max"}, {"metric": "iterations_trained", "mode": "min", "reference": -3}], {},
     "reference -3.0: iterations_trained is positive"),
])
def test_bad_objectives_are_one_line_errors(objectives, extra, message):
    with pytest.raises(UserError, match=message) as err:
        SearchSpace.from_dict({**BASE, "strategy": {"objectives": objectives, **extra}}, "s.yaml")
    assert "\n" not in str(err.value)


def test_the_hypervolume_reference_is_dense_minus_5_points_and_half_the_weights_or_the_spaces():
    """Issue 26 item 4(c): a near-useless, very sparse ticket no longer holds the front's volume. Default
    reference: the dense network's validation metric minus 0.05 and 50 % of the weights; an objective's
    ``reference`` replaces it; points that do not beat it add nothing."""
    import pandas as pd

    from nas_lth.store.pareto import hypervolume_of, reference_point

    objectives = [("val_acc", "max"), ("weights_remaining", "min")]
    df = pd.DataFrame({"val_acc": [0.95, 0.36, 0.97], "weights_remaining": [0.1, 0.01, 0.6],
                       "dense_val_acc": [0.97, 0.97, 0.97]})
    assert reference_point(df, objectives) == pytest.approx({"val_acc": 0.92, "weights_remaining": 0.5})
    # only the first ticket beats (0.92, 0.5): volume (0.95 - 0.92) * (log10 0.5 - log10 0.1)
    want = 0.03 * (math.log10(0.5) - math.log10(0.1))
    assert hypervolume_of(df, objectives) == pytest.approx(want)
    mine = {"val_acc": 0.3, "weights_remaining": 1.0}  # the old reference point: the 36 % ticket dominates
    assert reference_point(df, objectives, mine) == mine
    assert hypervolume_of(df, objectives, references=mine) > 10 * want
    no_dense = df.drop(columns="dense_val_acc")
    assert reference_point(no_dense, objectives)["val_acc"] == 0.0
    space = SearchSpace.from_dict({**BASE, "strategy": {"objectives": [
        {"metric": "val_acc", "mode": "max", "reference": 0.9}, {"metric": "weights_remaining", "mode": "min"}]}},
        "s.yaml")
    assert space.spec.strategy.objectives[0].reference == 0.9


def test_the_search_metric_is_the_first_validation_objective():
    def strategy(**kw):
        return SearchSpace.from_dict({**BASE, "strategy": kw}, "s.yaml").spec.strategy

    assert strategy().search_metric is None  # the dataset's default
    assert strategy(metric="val_macro_f1").search_metric == "val_macro_f1"
    assert strategy(objectives=[{"metric": "val_macro_f1", "mode": "max"}]).search_metric == "val_macro_f1"
    lat = strategy(objectives=[{"metric": "weights_remaining", "mode": "min"},
                               {"metric": "latency_ms", "mode": "min", "batch_size": 4}])
    assert lat.search_metric is None and lat.latency.batch_size == 4 and lat.multi_objective


def test_latency_is_measured_for_every_form_that_applies():
    import torch

    from nas_lth.export.latency import example_batch, measure_latency, runnable
    from nas_lth.models import build_model, masked_layers

    lenet = build_model("lenet300_100", (1, 8, 8), 10, seed=0)
    conv = build_model("conv2", (1, 28, 28), 10, seed=0)
    for _, layer in masked_layers(lenet):
        layer.set_mask((torch.rand_like(layer.weight) < 0.1).float())
    x = example_batch(torch.randn(5, 1, 8, 8), 16)
    assert x.shape == (16, 1, 8, 8)
    before = torch.get_rng_state()
    out = measure_latency(lenet, x, forms=("dense", "masked", "csr", "csr_fc"), budget_s=0.05)
    assert torch.equal(torch.get_rng_state(), before)  # the training stream is untouched
    assert runnable(lenet, "csr_fc", x) is None and "latency_csr_fc_ms" not in out  # no convolutions: csr_fc = csr
    timed = {k: v for k, v in out.items() if k.endswith("_ms") and k != "latency_ms"}
    assert set(timed) == {"latency_dense_ms", "latency_masked_ms", "latency_csr_ms"}
    assert all(v > 0 for v in timed.values()) and out["latency_batch"] == 16
    assert out["latency_ms"] == min(timed.values()) == timed[f"latency_{out['latency_form']}_ms"]
    # each form computes what the ticket computes
    with torch.inference_mode():
        want = lenet.eval()(x)
        for form in ("masked", "csr", "compact"):
            torch.testing.assert_close(runnable(lenet, form, x)(x), want, rtol=1e-4, atol=1e-5)
    assert set(measure_latency(conv, torch.randn(2, 1, 28, 28), forms=("dense", "csr_fc"), budget_s=0.02)) >= \
        {"latency_dense_ms", "latency_csr_fc_ms"}
    with pytest.raises(ValueError, match="latency form 'gpu'; allowed: dense, masked, csr, csr_fc, compact"):
        runnable(lenet, "gpu", x)


@pytest.mark.integration
def test_a_multiobjective_search_agrees_with_its_study_and_its_rung_decisions(tmp_path):
    from test_search import run, search_cmd, study_of, write_space

    from nas_lth.store import read

    data = yaml.safe_load(EPOCHS_PARETO)
    assert data["strategy"]["objectives"] == [{"metric": "val_acc", "mode": "max"},
                                              {"metric": "weights_remaining", "mode": "min"}]
    cons = data["strategy"]["constraints"]
    assert cons == [{"metric": "val_acc", "min_vs_dense": -0.03}]
    space = write_space(tmp_path / "mo.yaml", data)
    proc = run(search_cmd(space, tmp_path / "runs"), tmp_path, "mo")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "runs" / "mo"
    trials = read(str(exp)).trials.set_index("trial_id")
    assert "Pareto front of the objectives val_acc (max), weights_remaining (min)" in proc.stdout
    assert "hypervolume " in proc.stdout and "hypervolume vs epochs spent" in proc.stdout
    assert trials.weights_remaining.nunique() > 3  # sparsity is searched, not fixed

    # the study: two directions; a completed row is COMPLETE with (val_acc, weights_remaining), a stopped one PRUNED
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    study = study_of(exp)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    told = {t.user_attrs["tune_trial_id"]: t for t in study.trials if "tune_trial_id" in t.user_attrs}
    for tid, row in trials.iterrows():
        t = told[tid]
        if row.status == "completed" and not str(row.message).startswith("same recipe"):
            assert t.state == TrialState.COMPLETE and t.values == pytest.approx([row.val_acc, row.weights_remaining])
            # what constrained MOTPE learns: the ticket's violation, <= 0 within 3 pp of the dense network
            assert t.user_attrs["constraints"] == pytest.approx([row.dense_val_acc - 0.03 - row.val_acc])
            assert t.constraints == pytest.approx({"0: val_acc >= dense -0.03": row.dense_val_acc - 0.03 - row.val_acc})
        elif row.status == "stopped":
            assert t.state == TrialState.PRUNED
            assert t.constraints == {"0: val_acc >= dense -0.03": 1.0}  # not known: counted violated
    assert "constraints_func" not in proc.stderr  # Optuna 5's set_constraint, not its deprecated argument

    # the live view: the journal file optuna-dashboard reads holds the same trials in the same states
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    live = optuna.load_study(study_name="mo", storage=JournalStorage(JournalFileBackend(str(exp / "optuna.journal"))))
    assert live.directions == study.directions and live.metric_names == ["val_acc", "weights_remaining"]
    assert sorted((t.user_attrs["tune_trial_id"], t.state, tuple(t.values or ())) for t in live.trials) == \
        sorted((k, t.state, tuple(t.values or ())) for k, t in told.items())
    # ... and optuna-dashboard serves it, with the command the search printed, on loopback only
    command = next(line for line in proc.stdout.splitlines() if line.startswith("live study: "))
    assert f"optuna-dashboard {exp / 'optuna.journal'} --host 127.0.0.1 --port 8080" in command
    served = dashboard_api(exp / "optuna.journal")
    assert [s["study_name"] for s in served["studies"]] == ["mo"]
    assert sorted(t["state"] for t in served["trials"]) == sorted(t.state.name.capitalize() for t in live.trials)

    # every stopped trial was stopped by a logged rung decision that recomputes from that rung's state
    log = [json.loads(line) for line in (exp / "moasha.jsonl").read_text().splitlines()]
    stops = {d["trial_id"]: d for d in log if d["action"] == STOP}
    assert set(stops) == set(trials.index[trials.status == "stopped"])
    for d in log:  # feasible tickets first (constrained domination), then by non-dominated sorting and crowding
        ids = list(d["rung_state"])
        viol = [d["rung_violation"][i] for i in ids]
        order = rung_order(np.array([d["rung_state"][i] for i in ids]), viol)
        place = int(np.flatnonzero(order == ids.index(d["trial_id"]))[0])
        assert place == d["place"] and d["keep"] == math.ceil(d["recorded"] / 2)
        assert (d["action"] == STOP) == (place >= d["keep"])
        assert all(v is not None for v in viol)  # the dense network's value is known at every rung
    for d in stops.values():  # infeasible, dominated at its rung, or in the first front but behind on crowding
        if d["rung_violation"][d["trial_id"]] > 0:
            continue
        ok = [i for i, v in d["rung_violation"].items() if not v]
        pts = np.array([d["rung_state"][i] for i in ok])
        me = np.array(d["vector"])
        dominated = any(np.all(p <= me) and np.any(p < me) for p in pts)
        assert dominated or d["keep"] < int((nondominated_ranks(pts) == 0).sum())
    # the front the summary printed leaves out every ticket that misses the constraint
    assert "constraints val_acc >= dense -0.03:" in proc.stdout
    done = trials[trials.status == "completed"]
    infeasible = done[done.val_acc < done.dense_val_acc - 0.03]
    front_lines = proc.stdout.split("Pareto front of the objectives")[1].split("hypervolume ")[0]
    for tid in infeasible.index:
        assert tid not in front_lines


@pytest.mark.integration
def test_a_latency_objective_is_measured_by_each_trial_and_known_at_every_rung(tmp_path):
    from test_search import run, search_cmd, study_of, tiny_space, write_space

    from nas_lth.store import read

    objectives = [{"metric": "val_acc", "mode": "max"}, {"metric": "weights_remaining", "mode": "min"},
                  {"metric": "latency_ms", "mode": "min", "batch_size": 64, "forms": ["dense", "csr"]}]
    data = tiny_space("lat", 6, {"criterion": {"choice": ["large_final", "random"]},
                                 "target_weights": {"float": [0.01, 0.5], "log": True}},
                      searcher="motpe", scheduler="asha", grace_period=1, reduction_factor=2, objectives=objectives)
    data["fixed"].pop("target_weights")
    space = write_space(tmp_path / "lat.yaml", data)
    proc = run(search_cmd(space, tmp_path / "runs"), tmp_path, "lat")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "runs" / "lat"
    trials = read(str(exp)).trials.set_index("trial_id")
    done = trials[trials.status == "completed"]
    assert len(done) >= 1 and "latency_ms (min)" in proc.stdout
    for _, row in trials[trials.status.isin(["completed", "stopped"])].iterrows():
        assert row.latency_batch == 64 and row.latency_form in ("dense", "csr")
        assert row.latency_ms == min(row.latency_dense_ms, row.latency_csr_ms) > 0
        assert np.isnan(row.latency_masked_ms)  # not asked for
    told = {t.user_attrs["tune_trial_id"]: t for t in study_of(exp).trials if "tune_trial_id" in t.user_attrs}
    for tid, row in done.iterrows():
        if not str(row.message).startswith("same recipe"):
            assert told[tid].values == pytest.approx([row.val_acc, row.weights_remaining, row.latency_ms])
    # the scheduler compared all three objectives at every rung: the mask (and so the latency) is fixed
    # from the first epoch of the measured run on
    log = [json.loads(line) for line in (exp / "moasha.jsonl").read_text().splitlines()]
    assert log and all(len(d["vector"]) == 3 and all(v is not None for v in d["vector"]) for d in log)


# -- constraints (issue 26 item 4b) -------------------------------------------------------------------------


def test_constraint_violations_follow_optunas_sign_and_say_when_unknown():
    from nas_lth.store.constraints import feasible_rows, total_violation, violations

    cons = [{"metric": "val_acc", "min_vs_dense": -0.02}, {"metric": "weights_remaining", "max": 0.1}]
    assert violations(cons, {"val_acc": 0.95, "dense_val_acc": 0.96, "weights_remaining": 0.05}) == \
        pytest.approx([0.96 - 0.02 - 0.95, 0.05 - 0.1])  # both <= 0: feasible
    assert total_violation(cons, {"val_acc": 0.36, "dense_val_acc": 0.96, "weights_remaining": 0.2}) == \
        pytest.approx(0.58 + 0.1)
    assert violations(cons, {"val_acc": 0.95, "weights_remaining": 0.05}) is None  # dense value not known yet
    assert violations([{"metric": "val_acc", "min": 0.9}], {"val_acc": 0.95}) == pytest.approx([-0.05])
    import pandas as pd

    df = pd.DataFrame({"val_acc": [0.95, 0.36, 0.97], "dense_val_acc": 0.96, "weights_remaining": [0.05, 0.01, 0.5]})
    assert list(feasible_rows(df, cons).index) == [0]



def test_moasha_ranks_every_feasible_ticket_of_a_rung_above_every_infeasible_one():
    pts = np.array([[-0.36, -2.0], [-0.95, -1.0], [-0.96, -0.5], [-0.40, -1.8]])  # (-val_acc, log10 weights)
    # the sparse 36 % and 40 % tickets are non-dominated, but infeasible: last, the smaller violation first
    assert list(rung_order(pts, [0.58, 0.0, None, 0.54])) == [1, 2, 3, 0]
    assert list(rung_order(pts, [None] * 4)) == list(ranking(pts))  # no constraints: as before
    cons = [{"metric": "val_acc", "min_vs_dense": -0.03}]
    s = MultiObjectiveASHA([("val_acc", "max"), ("weights_remaining", "min")], max_t=4, grace_period=1,
                           reduction_factor=2, constraints=cons)
    good = {"val_acc": 0.95, "dense_val_acc": 0.96, "weights_remaining": 0.2}
    bad = {"val_acc": 0.40, "dense_val_acc": 0.96, "weights_remaining": 0.01}
    assert s.decide("a", 1, good) == TrialScheduler.CONTINUE
    assert s.decide("b", 1, bad) == TrialScheduler.STOP  # sparser, but 56 pp below the dense network
