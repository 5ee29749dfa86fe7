"""The trials-table row the driver writes for a trial: recipe columns (no Ray session needed)."""

from nas_lth.experiment.callback import recipe_columns
from nas_lth.space import SearchSpace

SPACE = SearchSpace.from_dict({
    "name": "t",
    "fixed": {"model": "lenet300_100", "dataset": "digits", "target_weights": 0.05, "rounds": 3},
    "search": {"stop_at": {"choice": [20, "early_bird"]}, "eb_eps": {"float": [0.01, 0.2],
                                                                      "when": {"stop_at": "early_bird"}}},
}, "t.yaml")


def test_rates_are_the_effective_per_round_rates_and_absent_kinds_are_null():
    cols = recipe_columns(SPACE, {"stop_at": 20}, "fc,output")
    assert abs(cols["prune_rate_fc"] - (1 - 0.05 ** (1 / 3))) < 1e-12
    assert cols["prune_rate_output"] == 0.1
    assert cols["prune_rate_conv"] is None and cols["prune_rate_embedding"] is None
    assert cols["model"] == "lenet300_100" and cols["rounds"] == 3 and cols["stop_at"] == "20"


def test_early_bird_parameters_only_when_early_bird_stops():
    plain = recipe_columns(SPACE, {"stop_at": 20}, "fc,output")
    assert plain["eb_eps"] is None and plain["eb_window"] is None
    eb = recipe_columns(SPACE, {"stop_at": "early_bird", "eb_eps": 0.05}, "fc,output")
    assert eb["eb_eps"] == 0.05 and eb["eb_window"] == 5


def test_without_reported_kinds_every_rate_is_kept():
    cols = recipe_columns(SPACE, {"stop_at": 20})
    assert cols["prune_rate_conv"] is not None
