"""Tests for search spaces (nas_lth.space): loading and validating the YAML file, the Optuna
define-by-run function, recipes built from sampled parameters, and the CLI's handling of bad spaces.

No Ray: the CLI is only run on spaces that fail validation, before Ray starts.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

from nas_lth.errors import UserError
from nas_lth.recipe import Recipe
from nas_lth.space import SearchSpace, define_by_run, load_space
from nas_lth.space.optuna_space import distribution
from nas_lth.space.sample import build_recipe

REPO = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)

# A valid space that exercises every kind of dimension, a condition on a sampled key, conditions on
# fixed keys (always / never true), dotted keys merged into fixed mappings, steps and log scales.
SPACE = {
    "name": "unit_space",
    "description": "test space",
    "fixed": {
        "model": "lenet300_100",
        "dataset": "digits",
        "budget": 2,
        "prune_rate": {"output": 0.05},
        "training": {"batch_size": 60, "eval_every": 10},
    },
    "search": {
        "criterion": {"choice": ["large_final", "random", "snip"]},
        "stop_at": {"choice": [0, 20, "end", "early_bird"]},
        "eb_eps": {"float": [0.02, 0.2], "log": True, "when": {"stop_at": "early_bird"}},
        "eb_window": {"int": [2, 8], "when": {"stop_at": ["early_bird"]}},
        "score_batches": {"int": [1, 3], "when": {"criterion": ["snip", "grasp"]}},
        "rounds": {"int": [1, 6]},
        "rewind_to": {"int": [0, 40], "step": 10},
        "prune_rate.fc": {"float": [0.1, 0.5]},
        "prune_rate.conv": {"float": [0.1, 0.3], "step": 0.05},
        "training.lr": {"float": [1e-4, 1e-2], "log": True},
        "synflow_iterations": {"int": [10, 1000], "log": True, "when": {"model": "lenet300_100"}},
        "reinit": {"choice": ["original", "random_reinit"], "when": {"dataset": "mnist"}},
    },
    "strategy": {"num_samples": 4, "searcher": "random", "scheduler": "asha", "grace_period": 1},
}
N_SAMPLES = 300


def write_space(tmp_path: Path, data, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def sample(space: SearchSpace, n: int, sampler=None) -> list[dict]:
    """Parameters of ``n`` trials asked from a real Optuna study through ``define_by_run``."""
    fn = define_by_run(space)
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        returned = fn(trial)  # None, or the decoded values of choices of lists
        assert returned is None or all(space.dims[k].encoded for k in returned), returned
        out.append(dict(trial.params))
    return out


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> SearchSpace:
    return load_space(write_space(tmp_path_factory.mktemp("space"), SPACE))


@pytest.fixture(scope="module")
def samples(space) -> list[dict]:
    return sample(space, N_SAMPLES)


# ------------------------------------------------------------------ loading


def test_valid_space_loads(space):
    assert space.name == "unit_space"
    assert list(space.dims) == list(SPACE["search"])  # file order is the sampling order
    assert space.dims["criterion"].kind == "choice"
    assert space.dims["rounds"].kind == "int"
    assert space.dims["eb_eps"].kind == "float" and space.dims["eb_eps"].log
    assert space.spec.strategy.num_samples == 4
    assert space.spec.strategy.searcher == "random"
    assert space.fixed_flat()["prune_rate.output"] == 0.05
    assert space.source.endswith("space.yaml")


def test_the_embedded_default_space_loads():
    sp = load_space(REPO / "search_spaces" / "digits_quick.yaml")
    assert sp.name == "digits_quick"
    assert sp.spec.fixed["dataset"] == "digits"
    params = sample(sp, 20)
    for p in params:
        sp.recipe(p)


def test_to_dict_round_trips(space):
    again = SearchSpace.from_dict(space.to_dict(), "again")
    assert list(again.dims) == list(space.dims)
    assert again.to_dict() == space.to_dict()


# ------------------------------------------------------------------ define-by-run


def test_every_unconditional_dimension_is_sampled_every_time(samples):
    always = ["criterion", "stop_at", "rounds", "rewind_to", "prune_rate.fc", "prune_rate.conv", "training.lr",
              "synflow_iterations"]  # synflow_iterations: its condition is on a fixed key that holds
    for params in samples:
        for key in always:
            assert key in params, (key, params)
    # every choice value shows up over many samples
    assert set(p["criterion"] for p in samples) == {"large_final", "random", "snip"}
    assert set(p["stop_at"] for p in samples) == {0, 20, "end", "early_bird"}
    assert set(p["rounds"] for p in samples) == set(range(1, 7))


def test_when_conditions_on_sampled_keys(samples):
    eb = [p for p in samples if p["stop_at"] == "early_bird"]
    other = [p for p in samples if p["stop_at"] != "early_bird"]
    assert len(eb) > 20 and len(other) > 20
    assert all("eb_eps" in p and "eb_window" in p for p in eb)
    assert not any("eb_eps" in p or "eb_window" in p for p in other)
    snip = [p for p in samples if p["criterion"] == "snip"]
    assert snip and all("score_batches" in p for p in snip)
    assert not any("score_batches" in p for p in samples if p["criterion"] != "snip")


def test_when_condition_on_a_fixed_key_that_does_not_hold_is_never_sampled(samples):
    assert not any("reinit" in p for p in samples)  # when: {dataset: mnist}, fixed dataset: digits


def test_numeric_bounds_steps_and_types(samples):
    for p in samples:
        assert isinstance(p["rounds"], int) and 1 <= p["rounds"] <= 6
        assert isinstance(p["rewind_to"], int) and p["rewind_to"] in {0, 10, 20, 30, 40}
        assert 0.1 <= p["prune_rate.fc"] <= 0.5
        conv = p["prune_rate.conv"]
        assert 0.1 - 1e-9 <= conv <= 0.3 + 1e-9
        assert math.isclose(round(conv / 0.05) * 0.05, conv, abs_tol=1e-9), conv
        assert 1e-4 <= p["training.lr"] <= 1e-2
        assert isinstance(p["synflow_iterations"], int) and 10 <= p["synflow_iterations"] <= 1000
        if "eb_eps" in p:
            assert 0.02 <= p["eb_eps"] <= 0.2
            assert isinstance(p["eb_window"], int) and 2 <= p["eb_window"] <= 8
        if "score_batches" in p:
            assert 1 <= p["score_batches"] <= 3


def test_log_scale_spreads_over_decades(samples):
    """A log-uniform lr in [1e-4, 1e-2] lands below 1e-3 about half the time (uniform: ~9 %)."""
    low = sum(p["training.lr"] < 1e-3 for p in samples) / len(samples)
    assert 0.3 < low < 0.7, low
    iters = sum(p["synflow_iterations"] < 100 for p in samples) / len(samples)
    assert 0.3 < iters < 0.7, iters


def test_sampled_parameters_make_valid_recipes(space, samples):
    for p in samples:
        rc = space.recipe(p)
        assert isinstance(rc, Recipe)
        assert rc.criterion == p["criterion"] and rc.stop_at == p["stop_at"] and rc.rounds == p["rounds"]
        assert rc.prune_rate["fc"] == pytest.approx(p["prune_rate.fc"])
        assert rc.prune_rate["conv"] == pytest.approx(p["prune_rate.conv"])
        assert rc.prune_rate["output"] == 0.05  # from fixed, merged with the dotted keys
        assert rc.prune_rate["embedding"] == 0.1  # the default for kinds given nowhere
        assert rc.training.lr == pytest.approx(p["training.lr"])
        assert rc.training.batch_size == 60 and rc.training.eval_every == 10  # fixed training keys kept
        assert rc.eb_eps == pytest.approx(p.get("eb_eps", 0.1))
        assert rc.model == "lenet300_100" and rc.dataset == "digits" and rc.budget == 2


def test_recipe_does_not_leak_between_trials(space):
    before = copy.deepcopy(space.spec.fixed)
    space.recipe({"prune_rate.fc": 0.45, "training.lr": 0.005, "criterion": "random"})
    rc = space.recipe({})
    assert space.spec.fixed == before
    assert rc.prune_rate["fc"] == 0.2 and rc.training.lr == 1.2e-3 and rc.criterion == "large_final"


def test_recipe_with_a_bad_value_is_a_user_error(space):
    with pytest.raises(UserError, match="prune_rate"):
        space.recipe({"prune_rate.fc": 1.5})


def test_same_seed_samples_the_same_parameters(space):
    assert sample(space, 15) == sample(space, 15)


def test_define_by_run_pickles(space):
    """Tune pickles the searcher (with this function) into its experiment checkpoint."""
    fn = pickle.loads(pickle.dumps(define_by_run(space)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    fn(trial)
    assert "criterion" in trial.params


def test_tpe_handles_the_conditional_space(space):
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=5)
    fn = define_by_run(space)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for _ in range(15):
        trial = study.ask()
        fn(trial)
        study.tell(trial, trial.params["prune_rate.fc"])  # any objective
        params = trial.params
        assert ("eb_eps" in params) == (params["stop_at"] == "early_bird")
        space.recipe(params)
    counts = Counter(t.state for t in study.trials)
    assert counts[optuna.trial.TrialState.COMPLETE] == 15


# ------------------------------------------------------------------ list-valued choices

# LeNet's hidden-layer widths searched as a choice of lists; a later dimension conditioned on one of them.
LIST_SPACE = """\
name: lists
fixed: {model: lenet300_100, dataset: digits, budget: 1}
search:
  model_options.hidden: {choice: [[32], [64, 16]]}
  rounds: {int: [1, 3], when: {model_options.hidden: [64, 16]}}
strategy: {searcher: random}
"""
HIDDEN = "model_options.hidden"


@pytest.fixture
def list_space(tmp_path) -> SearchSpace:
    return load_space(write_space(tmp_path, LIST_SPACE))


def test_list_valued_choice_reaches_the_recipe_as_a_list(list_space):
    fn = define_by_run(list_space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        returned = fn(trial)
        assert isinstance(trial.params[HIDDEN], str)  # what Optuna holds: JSON text
        assert isinstance(returned[HIDDEN], list)  # what Ray lays over it in the trial's config
        config = {**trial.params, **returned}  # as OptunaSearch builds the config
        for rc in (build_recipe(list_space.spec.fixed, config, "config"),  # a trial: the config as it is
                   list_space.recipe(trial.params)):  # Optuna's parameters, decoded by the space
            hidden = rc.model_options["hidden"]
            assert isinstance(hidden, list) and hidden in ([32], [64, 16])
            assert json.loads(rc.columns()["model_options"]) == {"hidden": hidden}  # the trials-table cell
        seen.add(tuple(hidden))
        assert ("rounds" in trial.params) == (hidden == [64, 16])  # the condition compares the list itself
    assert seen == {(32,), (64, 16)}
    assert list_space.values_of(HIDDEN) == [[32], [64, 16]]


def test_list_valued_choice_is_a_valid_optuna_distribution(list_space):
    dim = list_space.dims[HIDDEN]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns about choices it could not store
        d = distribution(dim)
    assert all(isinstance(c, str) for c in d.choices)
    again = optuna.distributions.json_to_distribution(optuna.distributions.distribution_to_json(d))
    assert again == d
    for value in ([32], [64, 16]):
        assert d._contains(d.to_internal_repr(dim.encode(value)))
        assert dim.decode(dim.encode(value)) == value
    # a trial recorded with this distribution (what a warm start adds to the study)
    trial = optuna.trial.create_trial(params={HIDDEN: dim.encode([64, 16])}, distributions={HIDDEN: d}, value=0.5)
    assert dim.decode(trial.params[HIDDEN]) == [64, 16]
    # scalar choices are handed to Optuna as they are
    assert distribution(list_space.dims["rounds"]).low == 1
    plain = SearchSpace.from_dict(BASE).dims["criterion"]
    assert not plain.encoded and distribution(plain).choices == ("large_final", "random")


def test_list_valued_choice_in_a_grid(tmp_path):
    text = LIST_SPACE.replace("  rounds: {int: [1, 3], when: {model_options.hidden: [64, 16]}}\n", "") \
        .replace("searcher: random", "searcher: grid")
    space = load_space(write_space(tmp_path, text))
    assert space.grid() == {HIDDEN: ["[32]", "[64, 16]"]} and space.num_samples() == 2
    params = sample(space, 2, optuna.samplers.GridSampler(space.grid(), seed=0))
    assert sorted(space.recipe(p).model_options["hidden"] for p in params) == [[32], [64, 16]]


# ------------------------------------------------------------------ bad spaces

BASE = {
    "name": "bad",
    "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 2},
    "search": {"criterion": {"choice": ["large_final", "random"]}},
}


def _with(edit) -> str:
    data = copy.deepcopy(BASE)
    edit(data)
    return yaml.safe_dump(data, sort_keys=False)


def _search(**dims):
    return lambda d: d["search"].update({k.replace("__", "."): v for k, v in dims.items()})


# (id, file content, substrings the one-line message must contain besides the file name)
BAD_SPACES = [
    ("malformed_yaml", "name: bad\nfixed: {model: [lenet300_100\nsearch: {}\n", ["malformed YAML", "line"]),
    ("top_level_list", "- name\n- fixed\n", ["expected a mapping", "list"]),
    ("top_level_scalar", "just a string\n", ["expected a mapping"]),
    ("unknown_top_level_key", _with(lambda d: d.update(colour="red")), ["colour", "unknown key"]),
    ("missing_fixed", _with(lambda d: d.pop("fixed")), ["fixed"]),
    ("unknown_key_in_dimension", _with(lambda d: d["search"]["criterion"].update(colour="red")),
     ["search.criterion.colour", "unknown key"]),
    ("dimension_without_kind", _with(_search(rounds={"log": True})), ["search.rounds", "exactly one of"]),
    ("dimension_with_two_kinds", _with(_search(rounds={"int": [1, 2], "choice": [1, 2]})),
     ["search.rounds", "exactly one of"]),
    ("empty_choice", _with(_search(rounds={"choice": []})), ["search.rounds"]),
    ("unknown_criterion", _with(_search(criterion={"choice": ["large_final", "largest"]})),
     ["search.criterion", "largest"]),
    ("rate_1_in_float_range", _with(_search(prune_rate__fc={"float": [0.1, 1.0]})),
     ["search.prune_rate.fc", "rate"]),
    ("int_low_above_high", _with(_search(rounds={"int": [5, 1]})), ["search.rounds", "low bound"]),
    ("float_low_above_high", _with(_search(eb_eps={"float": [0.2, 0.1]})), ["search.eb_eps", "low bound"]),
    ("log_low_zero", _with(_search(eb_eps={"float": [0.0, 0.2], "log": True})), ["search.eb_eps", "log"]),
    ("log_low_negative_int", _with(_search(rewind_to={"int": [-1, 10], "log": True})),
     ["search.rewind_to", "log"]),
    ("int_above_recipe_limit", _with(_search(rounds={"int": [1, 1000]})), ["search.rounds"]),
    ("empty_search", _with(lambda d: d.update(search={})), ["search", "empty"]),
    ("search_not_a_mapping", _with(lambda d: d.update(search=["criterion"])), ["search"]),
    ("search_key_not_in_recipe", _with(_search(learning_rate={"float": [0.1, 0.2]})),
     ["search.learning_rate", "not a recipe key"]),
    ("dotted_key_under_flat_key", _with(_search(criterion__x={"choice": [1]})),
     ["search.criterion.x", "not a recipe key"]),
    ("key_fixed_and_searched", _with(lambda d: d["fixed"].update(criterion="random")),
     ["search.criterion", "fixed"]),
    ("when_unknown_key", _with(_search(eb_eps={"float": [0.02, 0.2], "when": {"stopping": "early_bird"}})),
     ["search.eb_eps.when", "stopping"]),
    ("when_later_key", _with(_search(eb_eps={"float": [0.02, 0.2], "when": {"stop_at": "early_bird"}},
                                     stop_at={"choice": ["end", "early_bird"]})),
     ["search.eb_eps.when", "stop_at"]),
    ("when_itself", _with(_search(rounds={"int": [1, 2], "when": {"rounds": 1}})), ["search.rounds.when"]),
    ("bad_stop_at_word", _with(_search(stop_at={"choice": ["end", "sometime"]})), ["search.stop_at", "sometime"]),
    ("unknown_model_in_fixed", _with(lambda d: d["fixed"].update(model="lenet5")), ["fixed.model", "lenet5"]),
    ("unknown_key_in_fixed", _with(lambda d: d["fixed"].update(colour="red")), ["fixed.colour", "unknown key"]),
    ("bad_fixed_rate", _with(lambda d: d["fixed"].update(prune_rate={"fc": 1.0})), ["fixed.prune_rate", "rate"]),
    ("unknown_scheduler", _with(lambda d: d.update(strategy={"scheduler": "hyperband"})),
     ["strategy.scheduler", "asha"]),
    ("unknown_searcher", _with(lambda d: d.update(strategy={"searcher": "bohb"})), ["strategy.searcher"]),
    ("unknown_strategy_key", _with(lambda d: d.update(strategy={"num_sample": 3})),
     ["strategy.num_sample", "unknown key"]),
    ("zero_num_samples", _with(lambda d: d.update(strategy={"num_samples": 0})), ["strategy.num_samples"]),
    ("bad_name", _with(lambda d: d.update(name="a b/c")), ["name"]),
    ("unknown_resources_key", _with(lambda d: d.update(resources={"cpu": 1})), ["resources.cpu", "unknown key"]),
    ("choice_of_a_mapping", _with(_search(model_options__hidden={"choice": [[32], {"a": 1}]})),
     ["search.model_options.hidden.choice", "{'a': 1}", "not a choice value", "lists of those"]),
    ("choice_of_nested_lists", _with(_search(model_options__hidden={"choice": [[[32, 16]]]})),
     ["search.model_options.hidden.choice", "[[32, 16]]", "not a choice value"]),
    ("choice_not_a_list", _with(_search(criterion={"choice": "random"})), ["search.criterion.choice", "a list"]),
    ("choice_mixing_lists_and_values", _with(_search(model_options__hidden={"choice": [[32], 64]})),
     ["search.model_options.hidden.choice", "[[32], 64]", "mixes lists and single values"]),
]


@pytest.mark.parametrize("content, needles", [c[1:] for c in BAD_SPACES], ids=[c[0] for c in BAD_SPACES])
def test_bad_space_is_a_one_line_user_error_naming_file_and_key(tmp_path, content, needles):
    path = write_space(tmp_path, content, "bad.yaml")
    with pytest.raises(UserError) as info:
        load_space(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_missing_space_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: cannot read"):
        load_space(tmp_path / "nope.yaml")


# A bad value in a *searched* dimension must be blamed on search.<key>, with that value. The extremes
# are validated one dimension at a time against a base made of every dimension's first extreme, and
# an error raised by the base value of another dimension is attributed to fixed.<key>, with the value
# of the dimension being varied.
MISLABELLED = [
    ("bad_stop_at_first_choice", _with(_search(stop_at={"choice": ["sometime", "end"]})),
     "search.stop_at", "'sometime'"),
    ("negative_stop_at_range", _with(_search(stop_at={"int": [-5, 3]})), "search.stop_at", "-5"),
    ("stop_at_float_range", _with(_search(stop_at={"float": [0.5, 2.0]})), "search.stop_at", "0.5"),
    ("bad_searched_lr", _with(_search(training__lr={"float": [0.0, 0.1]})), "search.training.lr", "0.0"),
    ("unknown_layer_kind", _with(_search(prune_rate__attention={"float": [0.1, 0.2]})),
     "search.prune_rate.attention", "'attention'"),
    ("unknown_model_in_fixed", _with(lambda d: d["fixed"].update(model="lenet5")), "fixed.model", "'lenet5'"),
]


@pytest.mark.parametrize("content, key, value", [c[1:] for c in MISLABELLED], ids=[c[0] for c in MISLABELLED])
def test_error_names_the_section_and_the_value_that_failed(tmp_path, content, key, value):
    path = write_space(tmp_path, content, "bad.yaml")
    with pytest.raises(UserError) as info:
        load_space(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert "'large_final'" not in msg, msg  # the criterion dimension has nothing to do with it
    assert value in msg, msg


def test_dotted_key_both_fixed_and_searched_is_rejected(tmp_path):
    def edit(d):
        d["fixed"]["prune_rate"] = {"fc": 0.2, "output": 0.1}
        d["search"]["prune_rate.fc"] = {"float": [0.1, 0.5]}

    path = write_space(tmp_path, _with(edit), "bad.yaml")
    with pytest.raises(UserError, match=r"search\.prune_rate\.fc: also given under fixed"):
        load_space(path)


def test_dotted_key_next_to_other_fixed_kinds_is_allowed(tmp_path):
    def edit(d):
        d["fixed"]["prune_rate"] = {"output": 0.1}
        d["search"]["prune_rate.fc"] = {"float": [0.1, 0.5]}

    sp = load_space(write_space(tmp_path, _with(edit)))
    assert sp.recipe({"prune_rate.fc": 0.3}).prune_rate["fc"] == 0.3


def test_float_range_on_an_integer_key_is_rejected(tmp_path):
    path = write_space(tmp_path, _with(_search(rounds={"float": [1, 3]})), "bad.yaml")
    with pytest.raises(UserError, match="search.rounds"):
        load_space(path)


def test_unknown_dataset_in_fixed_is_rejected(tmp_path):
    path = write_space(tmp_path, _with(lambda d: d["fixed"].update(dataset="imagenet")), "bad.yaml")
    with pytest.raises(UserError, match="fixed.dataset"):
        load_space(path)


# ------------------------------------------------------------------ the CLI on bad spaces

CLI_CASES = ["malformed_yaml", "unknown_criterion", "unknown_scheduler", "choice_of_a_mapping"]


def run_search_cli(*args, cwd: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nas_lth.search", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_space_exits_2_with_one_error_line(tmp_path, case):
    content = dict((c[0], c[1]) for c in BAD_SPACES)[case]
    path = write_space(tmp_path, content, "bad.yaml")
    storage = tmp_path / "runs"
    storage.mkdir()
    proc = run_search_cli(path, "--storage", storage, "--no-dashboard", "--num-cpus", "1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and str(path) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert list(storage.iterdir()) == []  # no experiment folder was created
    assert not (tmp_path / "bad").exists()


def test_cli_missing_space_file_exits_2(tmp_path):
    proc = run_search_cli(tmp_path / "nope.yaml", "--storage", tmp_path / "runs", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope.yaml" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "search_spaces").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_space_loads(path):
    space = load_space(path)
    assert space.name == path.stem and space.num_samples() >= 1


def test_tpe_is_sized_to_the_budget_and_models_conditional_dimensions_jointly(space):
    """Issue 26 item 5: TPE's random start is a fifth of the budget (4..10, or strategy.startup_trials),
    multivariate and grouped unless the space says multivariate: false; it samples this space's conditional
    dimensions and learns from told values (ask/tell, as Tune's searcher does)."""
    from nas_lth.strategy.tuner import startup_trials, tpe_sampler

    assert [startup_trials(n) for n in (1, 20, 30, 50, 100, 1000)] == [4, 4, 6, 10, 10, 10]
    strat = space.spec.strategy
    sampler = tpe_sampler(strat, 30, seed=0)
    assert sampler._n_startup_trials == 6 and sampler._multivariate and sampler._group and sampler._constant_liar
    off = tpe_sampler(strat.model_copy(update={"multivariate": False, "startup_trials": 3}), 30, seed=0)
    assert off._n_startup_trials == 3 and not off._multivariate and not off._group
    fn = define_by_run(space)
    study = optuna.create_study(sampler=tpe_sampler(strat, 20, seed=0), direction="maximize")
    for i in range(12):  # past the random start: the multivariate model proposes, conditions still hold
        trial = study.ask()
        fn(trial)
        study.tell(trial, float(i % 5))
    assert len(study.trials) == 12 and all(t.state.is_finished() for t in study.trials)
    with pytest.raises(UserError, match=r"strategy.startup_trials"):
        SearchSpace.from_dict({**SPACE, "strategy": {"startup_trials": 0}}, "x.yaml")
