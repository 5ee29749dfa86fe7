"""Tests for nas_lth.pruning: criteria on hand-made tensors, selection, the LTH sparsity ladder,
reinit variants, mask bookkeeping, Early-Bird and the gradient contexts of SNIP/GraSP/SynFlow."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from nas_lth import pruning
from nas_lth.errors import UserError
from nas_lth.models import build_model, get_masks, masked_layers, set_masks
from nas_lth.pruning import (
    CRITERIA,
    EarlyBird,
    digest,
    distance,
    layer_rates,
    next_masks,
    pack,
    reset_state,
    score,
    select_masks,
    unpack,
)
from nas_lth.pruning import context as ctx

# The 13 criteria of docs/design.md ("The recipe").
DESIGN_CRITERIA = {
    "large_final", "small_final", "large_init", "small_init", "large_init_large_final",
    "small_init_small_final", "magnitude_increase", "movement", "random", "large_final_same_sign",
    "snip", "grasp", "synflow",
}

# ------------------------------------------------------------------ hand-made criterion cases
#
#   index          0      1      2      3      4      5      6      7
W_INIT = [0.10, -0.90, 0.75, -0.20, 0.80, -0.05, 0.70, -0.30]
W_FINAL = [0.70, -0.15, -0.60, 0.10, 0.05, 0.90, -0.35, 0.25]
#   |w_i|        .10    .90    .75    .20    .80    .05    .70    .30
#   |w_f|        .70    .15    .60    .10    .05    .90    .35    .25
#   same sign?   yes    yes    no     no     yes    no     no     no
GRAD = [-1.0, 4.0, 0.1, 8.0, 10.0, 0.1, 1.0, 1.0]  # |g*w_f| = .70 .60 .06 .80 .50 .09 .35 .25
HESS_GRAD = [2.0, 3.0, 1.0, -5.0, 4.0, 0.5, -1.0, -3.0]  # w_f*Hg = 1.4 -.45 -.6 -.5 .2 .45 .35 -.75
SYNFLOW_GRAD = [0.1, 6.0, 0.5, 5.0, 2.0, 0.2, 1.0, 1.0]  # |sg*w_f| = .07 .9 .3 .5 .1 .18 .35 .25
KEEP3_RATE = 0.625  # 8 alive * (1 - 0.625) = 3 kept

# Expected kept index sets (keep k = 3), worked out by hand from the table above.
EXPECTED_KEEP3 = {
    "large_final": {0, 2, 5},  # |w_f| .90(5) .70(0) .60(2)
    "small_final": {1, 3, 4},  # |w_f| .05(4) .10(3) .15(1)
    "large_init": {1, 2, 4},  # |w_i| .90(1) .80(4) .75(2)
    "small_init": {0, 3, 5},  # |w_i| .05(5) .10(0) .20(3)
    # percentile ranks (0..7): |w_i| 5:0 0:1 3:2 7:3 6:4 2:5 4:6 1:7; |w_f| 4:0 3:1 1:2 7:3 6:4 2:5 0:6 5:7
    # min: 0:1 1:2 2:5 3:1 4:0 5:0 6:4 7:3 -> 2, 6, 7 (the largest |w_i| (1, 4) and |w_f| (5, 0) are out:
    # each is small in the other)
    "large_init_large_final": {2, 6, 7},
    # on -|.|: min ranks 0:1 1:0 2:2 3:5 4:1 5:0 6:3 7:4 -> 3, 7, 6
    "small_init_small_final": {3, 6, 7},
    "magnitude_increase": {0, 5, 7},  # |w_f|-|w_i| = .60 -.75 -.15 -.10 -.75 .85 -.35 -.05
    "movement": {2, 5, 6},  # |w_f-w_i| = .60 .75 1.35 .30 .75 .95 1.05 .55
    "large_final_same_sign": {0, 1, 4},  # only 0, 1, 4 keep their sign
    "snip": {0, 1, 3},  # |g*w_f| .80(3) .70(0) .60(1)
    # GraSP (Wang et al. 2020, Alg. 1) removes the highest S = -w*Hg, i.e. keeps the highest w*Hg:
    # 1.40(0) .45(5) .35(6)
    "grasp": {0, 5, 6},
    "synflow": {1, 3, 6},  # |sg*w_f| .90(1) .50(3) .35(6)
}

CONTEXT = {
    "snip": {"grad": torch.tensor(GRAD)},
    "grasp": {"hess_grad": torch.tensor(HESS_GRAD)},
    "synflow": {"synflow_grad": torch.tensor(SYNFLOW_GRAD)},
}


def kept(mask: torch.Tensor) -> set[int]:
    return set(torch.nonzero(mask.flatten(), as_tuple=True)[0].tolist())


def select_one(scores: torch.Tensor, rate: float, mask: torch.Tensor | None = None, seed: int = 0):
    mask = torch.ones_like(scores) if mask is None else mask
    g = torch.Generator().manual_seed(seed)
    return select_masks({"w": scores}, {"w": mask}, {"w": rate}, generator=g)["w"]


def test_registry_is_exactly_the_design_criteria():
    assert set(CRITERIA) == DESIGN_CRITERIA
    assert len(CRITERIA) == 13
    assert set(pruning.criterion_names()) == DESIGN_CRITERIA


def test_every_non_random_criterion_has_a_hand_made_case():
    assert set(EXPECTED_KEEP3) == DESIGN_CRITERIA - {"random"}
    # The cases are discriminating: no two criteria keep the same set on these tensors.
    sets = [frozenset(s) for s in EXPECTED_KEEP3.values()]
    assert len(set(sets)) == len(sets)


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_criterion_keeps_the_hand_computed_set(criterion):
    w_i, w_f = torch.tensor(W_INIT), torch.tensor(W_FINAL)
    if criterion == "random":
        s1 = score("random", w_i, w_f, generator=torch.Generator().manual_seed(3))
        s2 = score("random", w_i, w_f, generator=torch.Generator().manual_seed(3))
        s3 = score("random", w_i, w_f, generator=torch.Generator().manual_seed(4))
        assert torch.equal(s1, s2)
        assert not torch.equal(s1, s3)
        m1, m2 = select_one(s1, KEEP3_RATE, seed=3), select_one(s2, KEEP3_RATE, seed=3)
        assert torch.equal(m1, m2)
        assert int(m1.sum()) == 3
        return
    s = score(criterion, w_i, w_f, **CONTEXT.get(criterion, {}))
    assert s.shape == w_f.shape
    assert s.dtype == torch.float32
    mask = select_one(s, KEEP3_RATE)
    assert kept(mask) == EXPECTED_KEEP3[criterion]
    assert int(mask.sum()) == 3


def test_random_criterion_masks_by_seed_and_kept_count():
    w = torch.zeros(200)
    masks = []
    for seed in (0, 0, 1):
        g = torch.Generator().manual_seed(seed)
        s = score("random", w, w, generator=g)
        masks.append(select_masks({"w": s}, {"w": torch.ones(200)}, {"w": 0.3}, generator=g)["w"])
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])
    assert all(int(m.sum()) == 140 for m in masks)


@pytest.mark.parametrize("criterion", ["snip", "grasp", "synflow"])
def test_gradient_criteria_require_their_context(criterion):
    w = torch.ones(4)
    with pytest.raises(ValueError, match=criterion):
        score(criterion, w, w)


def test_large_init_large_final_ranks_only_surviving_weights():
    # Prune 2 and 6 first: among the 6 survivors, ranks (0..5) are
    # |w_i| 5:0 0:1 3:2 7:3 4:4 1:5, |w_f| 4:0 3:1 1:2 7:3 0:4 5:5 -> min 0:1 1:2 3:1 4:0 5:0 7:3
    mask = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1], dtype=torch.float32)
    s = score("large_init_large_final", torch.tensor(W_INIT), torch.tensor(W_FINAL), mask=mask)
    new = select_one(s, 0.625, mask=mask)  # round(6 * 0.375) = 2 kept
    assert kept(new) == {1, 7}


def test_small_init_small_final_keeps_weights_small_in_both():
    # 0..3: small in both; 4: small init, large final; 5: large init, small final; 6, 7: large in both
    w_i = torch.tensor([0.01, -0.02, 0.03, -0.04, 0.001, 0.9, 0.8, -0.7])
    w_f = torch.tensor([0.02, 0.01, -0.04, 0.03, 0.95, 0.002, 0.85, 0.75])
    s = score("small_init_small_final", w_i, w_f)
    assert kept(select_one(s, 0.5)) == {0, 1, 2, 3}
    s = score("large_init_large_final", w_i, w_f)
    assert kept(select_one(s, 0.75)) == {6, 7}


def test_pruned_weights_are_never_revived():
    # large_final on w_final where the pruned weights would score highest
    w_f = torch.tensor([9.0, 9.0, 1.0, 2.0, 3.0, 4.0])
    mask = torch.tensor([0, 0, 1, 1, 1, 1], dtype=torch.float32)
    new = select_masks({"w": score("large_final", w_f, w_f)}, {"w": mask}, {"w": 0.5})["w"]
    assert kept(new) == {4, 5}


# ------------------------------------------------------------------ selection: rates and scope


def test_rates_outside_unit_interval_raise_user_error():
    s = {"w": torch.arange(4.0)}
    m = {"w": torch.ones(4)}
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(UserError, match="rate"):
            select_masks(s, m, {"w": bad})
        with pytest.raises(UserError):
            next_masks("large_final", s, s, m, {"w": bad})
    # 0 is allowed and keeps everything
    assert torch.equal(select_masks(s, m, {"w": 0.0})["w"], torch.ones(4))


def test_unknown_criterion_lists_allowed_names():
    w = torch.ones(3)
    for call in (
        lambda: score("biggest", w, w),
        lambda: pruning.get_criterion("biggest"),
        lambda: next_masks("biggest", {"w": w}, {"w": w}, {"w": torch.ones(3)}, {"w": 0.2}),
    ):
        with pytest.raises(UserError) as info:
            call()
        msg = str(info.value)
        assert "biggest" in msg
        assert "\n" not in msg
        for name in DESIGN_CRITERIA:
            assert name in msg


def test_unknown_scope_is_a_user_error():
    with pytest.raises(UserError, match="scope"):
        select_masks({"w": torch.ones(2)}, {"w": torch.ones(2)}, {"w": 0.5}, scope="everywhere")


def test_tie_breaking_is_seeded_and_unbiased():
    scores = {"w": torch.zeros(100)}
    masks = {"w": torch.ones(100)}

    def sel(seed):
        return select_masks(scores, masks, {"w": 0.5}, generator=torch.Generator().manual_seed(seed))["w"]

    a, b, c = sel(1), sel(1), sel(2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert int(a.sum()) == int(c.sum()) == 50
    # not simply the first (or last) 50 positions
    assert kept(a) != set(range(50)) and kept(a) != set(range(50, 100))


def test_global_scope_ranks_layers_of_a_kind_together():
    scores = {
        "a": torch.tensor([10.0, 11.0, 12.0, 13.0]),  # fc: all larger than every score of b
        "b": torch.tensor([0.1, 0.4, 0.2, 0.3]),  # fc
        "c": torch.tensor([0.01, 0.04, 0.02, 0.03]),  # output: smallest scores overall
    }
    masks = {n: torch.ones(4) for n in scores}
    kinds = {"a": "fc", "b": "fc", "c": "output"}
    rates = layer_rates(kinds, {"fc": 0.5, "output": 0.25})
    assert rates == {"a": 0.5, "b": 0.5, "c": 0.25}

    glob = select_masks(scores, masks, rates, scope="global", kinds=kinds)
    assert kept(glob["a"]) == {0, 1, 2, 3}  # all 4 kept fc weights come from a
    assert kept(glob["b"]) == set()
    assert kept(glob["c"]) == {1, 2, 3}  # the output layer keeps 3 of 4 at its own rate

    # the output layer is its own group even when its rate equals the fc rate
    same = layer_rates(kinds, {"fc": 0.5, "output": 0.5})
    glob_same = select_masks(scores, masks, same, scope="global", kinds=kinds)
    assert kept(glob_same["a"]) == {0, 1, 2, 3} and kept(glob_same["c"]) == {1, 3}
    with pytest.raises(ValueError, match="kinds"):
        select_masks(scores, masks, rates, scope="global")

    lw = select_masks(scores, masks, rates, scope="layerwise")
    assert kept(lw["a"]) == {2, 3}
    assert kept(lw["b"]) == {1, 3}
    assert kept(lw["c"]) == {1, 2, 3}


def test_layer_rates_missing_kind_is_a_user_error():
    with pytest.raises(UserError, match="output"):
        layer_rates({"a": "fc", "b": "output"}, {"fc": 0.2})


def lenet_mnist(seed=0):
    return build_model("lenet300_100", (1, 28, 28), 10, seed=seed)


def test_lth_sparsity_ladder_lenet300_100():
    model = lenet_mnist()
    weights = {n: m.weight.detach().clone() for n, m in masked_layers(model)}
    assert [int(w.numel()) for w in weights.values()] == [784 * 300, 300 * 100, 100 * 10]
    rates = layer_rates({n: m.kind for n, m in masked_layers(model)}, {"fc": 0.2, "output": 0.1})
    assert list(rates.values()) == [0.2, 0.2, 0.1]
    masks = get_masks(model)
    expected = {3: 51.3, 7: 21.1, 9: 13.5, 12: 7.0, 15: 3.6, 18: 1.9}
    got = {}
    for r in range(1, 19):
        new = next_masks("large_final", weights, weights, masks, rates, generator=torch.Generator())
        for n in masks:  # nested: a pruned weight never comes back
            assert not (new[n].bool() & ~masks[n].bool()).any()
        masks = new
        if r in expected:
            got[r] = round(100 * pruning.density(masks), 1)
    assert got == expected
    # The output layer is pruned at its own (smaller) rate: after 18 rounds 1000*0.9^18 ~ 150 remain
    out_name = list(masks)[-1]
    assert int(masks[out_name].sum()) == 149
    assert int(masks[list(masks)[0]].sum()) == 4237


def test_only_weights_have_masks_biases_untouched():
    model = lenet_mnist()
    sd = model.state_dict()
    mask_keys = [k for k in sd if k.endswith(".mask")]
    assert len(mask_keys) == 3
    for k in mask_keys:
        prefix = k[: -len(".mask")]
        assert sd[k].shape == sd[f"{prefix}.weight"].shape
    with torch.no_grad():
        for _, m in masked_layers(model):
            m.bias.fill_(1.0)
    set_masks(model, {n: torch.zeros_like(m.weight) for n, m in masked_layers(model)})
    for _, m in masked_layers(model):
        assert (m.weight == 0).all()
        assert (m.bias == 1.0).all()


# ------------------------------------------------------------------ reinit variants


def tiny_model(seed=0):
    return build_model("lenet300_100", (1, 2, 3), 3, seed=seed, options={"hidden": (8,)})


def half_masks(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.rand(m.weight.shape, generator=g) < 0.5).float() for n, m in masked_layers(model)}


@pytest.fixture()
def states():
    model = tiny_model(0)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    rewind = {k: v.clone() for k, v in init.items()}
    g = torch.Generator().manual_seed(5)
    for k in rewind:  # a "trained" rewind point: every parameter moved, biases non-zero
        if not k.endswith(".mask"):
            rewind[k] = rewind[k] + 0.3 * torch.randn(rewind[k].shape, generator=g)
    fresh = {k: v.clone() for k, v in tiny_model(1).state_dict().items()}
    masks = half_masks(model)
    names = list(masks)
    assert len(names) == 2
    return init, rewind, fresh, masks


def _check_common(out, masks, source):
    for n, m in masks.items():
        w = out[f"{n}.weight"]
        assert (w[m == 0] == 0).all()
        assert torch.equal(out[f"{n}.mask"], m)
        assert torch.equal(out[f"{n}.bias"], source[f"{n}.bias"])


def test_reset_original_is_rewind_times_mask(states):
    init, rewind, fresh, masks = states
    before = {k: v.clone() for k, v in rewind.items()}
    out = reset_state("original", masks, rewind, init=init, fresh=fresh)
    _check_common(out, masks, rewind)
    for n, m in masks.items():
        assert torch.equal(out[f"{n}.weight"], rewind[f"{n}.weight"] * m)
    for k in before:  # inputs untouched
        assert torch.equal(before[k], rewind[k])


def test_reset_random_reinit_uses_fresh(states):
    init, rewind, fresh, masks = states
    out = reset_state("random_reinit", masks, rewind, init=init, fresh=fresh)
    _check_common(out, masks, fresh)
    for n, m in masks.items():
        assert torch.equal(out[f"{n}.weight"], fresh[f"{n}.weight"] * m)
        assert not torch.equal(out[f"{n}.weight"], rewind[f"{n}.weight"] * m)
    with pytest.raises(ValueError):
        reset_state("random_reinit", masks, rewind, init=init)


def test_reset_reshuffle_permutes_kept_values_within_each_layer(states):
    init, rewind, fresh, masks = states
    out = reset_state("reshuffle", masks, rewind, init=init, generator=torch.Generator().manual_seed(0))
    _check_common(out, masks, rewind)
    moved = False
    for n, m in masks.items():
        keep = m.bool()
        new_vals, old_vals = out[f"{n}.weight"][keep], rewind[f"{n}.weight"][keep]
        assert torch.equal(torch.sort(new_vals).values, torch.sort(old_vals).values)
        moved |= not torch.equal(new_vals, old_vals)
    assert moved
    again = reset_state("reshuffle", masks, rewind, init=init, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(again[k], out[k]) for k in out)


def test_reset_signed_constant_is_sign_times_init_std(states):
    init, rewind, fresh, masks = states
    out = reset_state("signed_constant", masks, rewind, init=init)
    _check_common(out, masks, rewind)
    for n, m in masks.items():
        keep = m.bool()
        std = float(init[f"{n}.weight"].std())
        vals = out[f"{n}.weight"][keep]
        assert torch.allclose(vals.abs(), torch.full_like(vals, std))
        assert torch.equal(torch.sign(vals), torch.sign(rewind[f"{n}.weight"][keep]))
        # the std is the init layer's, not the rewind point's
        assert abs(std - float(rewind[f"{n}.weight"].std())) > 1e-3


def test_reset_unknown_variant_is_user_error(states):
    init, rewind, fresh, masks = states
    with pytest.raises(UserError, match="original"):
        reset_state("shuffle", masks, rewind)


# ------------------------------------------------------------------ masks: distance, digest, packing


def test_mask_distance_normalised_hamming():
    a = {"x": torch.tensor([1.0, 1, 0, 0]), "y": torch.ones(6)}
    b = {"x": torch.tensor([1.0, 0, 1, 0]), "y": torch.ones(6)}
    c = {"x": torch.tensor([1.0, 1, 0, 0]), "y": torch.tensor([1.0, 1, 1, 1, 1, 0])}
    assert distance(a, a) == 0.0
    assert distance(a, b) == pytest.approx(2 / 10)
    assert distance(a, c) == pytest.approx(1 / 10)
    assert distance(b, c) == pytest.approx(3 / 10)
    with pytest.raises(ValueError):
        distance(a, {"x": a["x"]})


def test_mask_distance_among_alive_weights_ignores_weights_pruned_before():
    # 10 weights, 4 alive before the round; the candidates keep 2 of those 4 and differ in 2 bits
    alive = {"l": torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0, 0, 0])}
    a = {"l": torch.tensor([1.0, 1, 0, 0, 0, 0, 0, 0, 0, 0])}
    b = {"l": torch.tensor([1.0, 0, 1, 0, 0, 0, 0, 0, 0, 0])}
    assert distance(a, b) == pytest.approx(2 / 10)  # over all weights: diluted by the pruned ones
    assert distance(a, b, among=alive) == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        distance(a, b, among={"other": alive["l"]})


def eb_masks(bits):
    return {"l": torch.tensor(bits, dtype=torch.float32)}


def test_early_bird_fifo_of_five_compares_the_newest_with_the_four_before():
    # You et al.'s code: a FIFO of 5 masks; nothing fires before it is full
    eb = EarlyBird(eps=0.1, window=5)
    base = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert [eb.update(eb_masks(base)) for _ in range(4)] == [False] * 4
    assert eb.last_distance is None
    assert eb.update(eb_masks(base)) is True  # the 5th identical mask
    assert eb.last_distance == 0.0


def test_early_bird_fires_on_distance_equal_to_eps():
    eb = EarlyBird(eps=0.1, window=2)
    assert eb.update(eb_masks([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])) is False
    assert eb.update(eb_masks([1, 1, 1, 1, 0, 1, 0, 0, 0, 0])) is False  # 2 bits of 10 differ: 0.2
    assert eb.last_distance == pytest.approx(0.2)
    # one bit of ten differs from the previous mask: 0.1 <= eps fires (the reference tests `> 0.1` to refuse)
    assert eb.update(eb_masks([1, 1, 1, 1, 0, 0, 0, 0, 0, 1])) is False  # vs previous: 2 bits
    assert eb.update(eb_masks([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])) is False  # 2 bits again
    eb2 = EarlyBird(eps=0.1, window=2)
    eb2.update(eb_masks([1, 1, 1, 1, 1, 0, 0, 0, 0, 0]))
    assert eb2.update(eb_masks([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])) is True
    assert eb2.last_distance == pytest.approx(0.1)


def _random_candidates(alive: dict, rate: float, n: int, seed: int):
    """Masks a criterion with fresh random scores at every check would pick: keep (1 - rate) of
    the alive weights."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        scores = {k: torch.rand(v.shape, generator=g) for k, v in alive.items()}
        yield select_masks(scores, alive, {k: rate for k in alive})


@pytest.mark.parametrize("density", [0.01, 0.05, 0.2, 1.0])
def test_early_bird_never_fires_on_independent_random_masks_at_any_density(density):
    g = torch.Generator().manual_seed(1)
    n = 20_000
    alive = {"l": torch.zeros(n)}
    alive["l"][torch.randperm(n, generator=g)[: int(density * n)]] = 1.0
    eb = EarlyBird(eps=0.1, window=5, alive=alive)
    fired = [eb.update(m) for m in _random_candidates(alive, 0.2, 30, seed=2)]
    assert not any(fired)
    # two independent draws keeping 80 % differ in ~2 * 0.8 * 0.2 = 32 % of the alive weights
    assert eb.last_distance == pytest.approx(0.32, abs=0.05)
    # measured over all weights instead (the old definition) the same masks look settled when sparse
    diluted = EarlyBird(eps=0.1, window=5)
    old = [diluted.update(m) for m in _random_candidates(alive, 0.2, 30, seed=2)]
    assert any(old) == (density <= 0.25)


def test_early_bird_fires_at_the_expected_check_once_masks_settle():
    g = torch.Generator().manual_seed(0)
    alive = {"l": (torch.rand(5_000, generator=g) < 0.3).float()}
    settled = next(_random_candidates(alive, 0.2, 1, seed=9))
    seq = list(_random_candidates(alive, 0.2, 3, seed=4)) + [settled] * 6
    eb = EarlyBird(eps=0.1, window=5, alive=alive)
    fired = [eb.update(m) for m in seq]
    # checks 0-2 random, 3.. the settled mask: the FIFO holds 5 settled masks at check 7
    assert fired.index(True) == 7


def test_early_bird_rejects_bad_parameters():
    for kw in ({"eps": 0.0}, {"eps": 1.0}, {"window": 1}, {"window": 0}):
        with pytest.raises(ValueError):
            EarlyBird(**kw)


def test_digest_equal_for_equal_masks_and_sensitive_to_one_bit():
    g = torch.Generator().manual_seed(0)
    m = {"a": (torch.rand(7, 9, generator=g) < 0.5).float(), "b": (torch.rand(13, generator=g) < 0.5).float()}
    same = {k: v.clone() for k, v in m.items()}
    assert digest(m) == digest(same)
    assert digest(m) == digest(dict(reversed(list(m.items()))))  # order of the dict does not matter
    flipped = {k: v.clone() for k, v in m.items()}
    flipped["b"][12] = 1 - flipped["b"][12]
    assert digest(flipped) != digest(m)
    renamed = {"a": m["a"], "c": m["b"]}
    assert digest(renamed) != digest(m)
    reshaped = {"a": m["a"].reshape(9, 7), "b": m["b"]}
    assert digest(reshaped) != digest(m)


@pytest.mark.parametrize("shape", [(3, 5), (8,), (2, 3, 4, 1), (1,)])
def test_pack_unpack_round_trip(shape):
    g = torch.Generator().manual_seed(1)
    m = (torch.rand(shape, generator=g) < 0.5).float()
    data = pack(m)
    assert len(data) == (m.numel() + 7) // 8
    back = unpack(data, shape)
    assert back.shape == m.shape
    assert torch.equal(back, m)


def test_pack_bit_order_is_big_endian():
    assert pack(torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 1, 1])) == bytes([0b10000001, 0b10000000])


# ------------------------------------------------------------------ gradient contexts


def tiny_batches(seed=0, n=2, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(5, 1, 2, 3, generator=g).to(dtype), torch.randint(0, 3, (5,), generator=g))
            for _ in range(n)]


def masked_tiny_model():
    model = tiny_model(0)
    set_masks(model, half_masks(model, seed=3))
    return model


def test_snip_grads_match_manual_autograd():
    model = masked_tiny_model()
    batches = tiny_batches()
    got = ctx.snip_grads(model, batches)
    # the caller's model is not touched
    assert all(p.grad is None for p in model.parameters())
    ref = copy.deepcopy(model)
    weights = [m.weight for _, m in masked_layers(ref)]
    total = [torch.zeros_like(w) for w in weights]
    for x, y in batches:
        gs = torch.autograd.grad(F.cross_entropy(ref(x), y), weights)
        total = [a + b for a, b in zip(total, gs, strict=True)]
    names = [n for n, _ in masked_layers(model)]
    assert set(got) == set(names)
    for n, t in zip(names, total, strict=True):
        assert torch.allclose(got[n]["grad"], t, atol=1e-6)
        assert got[n]["grad"].abs().sum() > 0


def _grasp_reference_hg(model, x, y, temperature: float):
    """Hg by central finite differences of the (tempered) gradient along g, in float64."""
    ref = copy.deepcopy(model)
    names = [n for n, _ in masked_layers(ref)]
    weights = [m.weight for _, m in masked_layers(ref)]

    def grad():
        return torch.autograd.grad(F.cross_entropy(ref(x) / temperature, y), weights)

    g = [t.clone() for t in grad()]
    h = 1e-6 / max(float(t.abs().max()) for t in g)  # moves no weight by more than 1e-6 (ReLU kinks)
    with torch.no_grad():
        for w, d in zip(weights, g, strict=True):
            w.add_(h * d)
    plus = grad()
    with torch.no_grad():
        for w, d in zip(weights, g, strict=True):
            w.sub_(2 * h * d)
    minus = grad()
    return {n: (p - m) / (2 * h) for n, p, m in zip(names, plus, minus, strict=True)}


@pytest.mark.parametrize("temperature", [200.0, 1.0])
def test_grasp_hess_grads_match_finite_difference_hvp(temperature):
    model = masked_tiny_model().double()
    x, y = map(torch.cat, zip(*tiny_batches(dtype=torch.float64), strict=True))
    ref = _grasp_reference_hg(model, x, y, temperature)
    got = ctx.grasp_hess_grads(model, x, y, temperature=temperature)  # one chunk: the batch mean
    for n, fd in ref.items():
        hg = got[n]["hess_grad"]
        assert hg.shape == fd.shape and fd.abs().max() > 0
        assert torch.allclose(hg, fd, rtol=1e-4, atol=1e-6 * float(fd.abs().max())), (n, (hg - fd).abs().max())


def test_grasp_temperature_changes_the_ranking_not_just_the_scale():
    model = masked_tiny_model().double()
    x, y = map(torch.cat, zip(*tiny_batches(dtype=torch.float64), strict=True))
    hot = ctx.grasp_hess_grads(model, x, y, temperature=200.0)
    cold = ctx.grasp_hess_grads(model, x, y, temperature=1.0)
    a = torch.cat([hot[n]["hess_grad"].flatten() for n in hot])
    b = torch.cat([cold[n]["hess_grad"].flatten() for n in cold])
    cos = float(F.cosine_similarity(a, b, dim=0))
    assert cos < 0.999  # not proportional: T = 200 is a different score, not a rescaling


def test_class_balanced_indices_take_the_first_per_class_in_order():
    y = torch.tensor([0, 1, 1, 2, 0, 1, 0, 0, 2])
    order = torch.tensor([8, 7, 6, 5, 4, 3, 2, 1, 0])
    idx = ctx.class_balanced_indices(y, 2, order)
    assert idx.tolist() == [8, 7, 6, 5, 3, 2]  # class 0: 7, 6; class 1: 5, 2; class 2: 8, 3
    # a class with fewer examples than asked gives all it has
    assert sorted(ctx.class_balanced_indices(y, 5, order).tolist()) == list(range(9))
    multi = torch.tensor([[1.0, 0], [1, 1], [0, 1], [1, 0]])
    assert ctx.class_balanced_indices(multi, 1, torch.arange(4)).tolist() == [0, 1]


def test_synflow_grads_match_the_path_formula_and_prune_to_zero():
    model = masked_tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = ctx.synflow_grads(model, (1, 2, 3))
    for k, v in model.state_dict().items():  # the caller's weights keep their signs
        assert torch.equal(v, before[k])
    (n1, l1), (n2, l2) = list(masked_layers(model))
    assert (l1.bias == 0).all() and (l2.bias == 0).all()  # Glorot init: zero biases
    a1, a2 = l1.weight.detach().abs().double(), l2.weight.detach().abs().double()
    # R = 1^T |W2| |W1| 1 (all-ones input of 6 features; ReLU is the identity on positive values)
    exp1 = a2.sum(0)[:, None].expand_as(a1)  # dR/d|W1|_ij = sum_k |W2|_ki
    exp2 = (a1 @ torch.ones(6, dtype=torch.float64))[None, :].expand_as(a2)  # dR/d|W2|_ki = (|W1| 1)_i
    assert torch.allclose(got[n1]["synflow_grad"].double(), exp1, rtol=1e-5)
    assert torch.allclose(got[n2]["synflow_grad"].double(), exp2, rtol=1e-5)
    for n, m in masked_layers(model):
        sg = got[n]["synflow_grad"]
        assert (sg >= 0).all()
        s = score("synflow", m.weight.detach(), m.weight.detach(), synflow_grad=sg)
        assert (s >= 0).all()
        assert (s[m.mask == 0] == 0).all()
        assert (s[(sg > 0) & (m.weight != 0)] > 0).all()
        assert (s > 0).any()


def test_next_masks_synflow_iterates_and_reaches_the_rate():
    w = {"w": torch.tensor(W_FINAL)}
    calls = []

    def context_fn(current):
        calls.append(int(current["w"].sum()))
        return {"w": {"synflow_grad": torch.tensor(SYNFLOW_GRAD)}}

    new = next_masks("synflow", w, w, {"w": torch.ones(8)}, {"w": KEEP3_RATE}, context_fn=context_fn,
                     iterations=4)
    assert kept(new["w"]) == EXPECTED_KEEP3["synflow"]
    assert len(calls) == 4  # re-scored at each step
    assert calls[0] == 8 and calls == sorted(calls, reverse=True) and calls[-1] < 8
    with pytest.raises(ValueError, match="context"):
        next_masks("synflow", w, w, {"w": torch.ones(8)}, {"w": 0.5})


def test_next_masks_snip_uses_context_on_current_masks():
    w_i, w_f = {"w": torch.tensor(W_INIT)}, {"w": torch.tensor(W_FINAL)}
    seen = []

    def context_fn(current):
        seen.append({k: v.clone() for k, v in current.items()})
        return {"w": {"grad": torch.tensor(GRAD)}}

    new = next_masks("snip", w_i, w_f, {"w": torch.ones(8)}, {"w": KEEP3_RATE}, context_fn=context_fn)
    assert kept(new["w"]) == EXPECTED_KEEP3["snip"]
    assert len(seen) == 1 and torch.equal(seen[0]["w"], torch.ones(8))
