"""Channel tickets (nas_lth.pruning.channels) and compact export (nas_lth.export.compact)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from test_models import REGISTRY_SHAPES

from nas_lth.errors import UserError
from nas_lth.export.compact import compact, count_macs, example_input, load_program, parameters, save_program
from nas_lth.models import build_model, get_masks, masked_layers, set_masks
from nas_lth.pruning.channels import (
    alive_channels,
    channel_groups,
    channel_vectors,
    check_rates,
    next_channel_masks,
)
from nas_lth.pruning.masks import distance


def model_and_input(name, n=4):
    shape, classes, opts = REGISTRY_SHAPES[name]
    model = build_model(name, shape, classes, seed=0, options=opts)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, opts.get("vocab_size", 2), (n, *shape), generator=g) if name == "textcnn" \
        else torch.randn(n, *shape, generator=g)
    return model, x


def random_channels(model, x, rate=0.5, seed=0):
    groups = channel_groups(model, x)
    st = model.state_dict()
    masks = next_channel_masks("random", groups, st, st, get_masks(model), {"conv": rate, "fc": rate},
                               generator=torch.Generator().manual_seed(seed))
    return groups, masks


def test_groups_follow_the_layers_that_share_a_channel():
    # Conv-2 on 8x8: the last conv's 64 channels are 64 x (4x4) inputs of the first fc layer, in NCHW
    # flatten order; the output layer is never a root (its classes stay)
    model, x = model_and_input("conv2")
    groups = {g.name: g for g in channel_groups(model, x)}
    assert set(groups) == {"features.0", "features.2", "classifier.1", "classifier.3"}
    last = groups["features.2"]
    assert last.kind == "conv" and last.size == 64
    reader = next(s for s in last.slices if s.layer == "classifier.1")
    assert reader.axis == 1 and len(reader.index) == 64 * 16
    assert torch.equal(reader.index[reader.channel == 5], torch.arange(5 * 16, 6 * 16))
    assert {(s.layer, s.axis) for s in groups["classifier.3"].slices} == {("classifier.3", 0), ("classifier.5", 1)}
    # ResNet-20: a block's inner channels are its own group; the residual stream of a stage is one group with
    # every layer that writes it (stem or shortcut, each block's conv2) and reads it, BatchNorms included
    res = {g.name: g for g in channel_groups(*model_and_input("resnet20"))}
    inner = res["blocks.4.conv1"]
    assert {(s.layer, s.axis) for s in inner.slices} == {("blocks.4.conv1", 0), ("blocks.4.conv2", 1)}
    assert [n.layer for n in inner.norms] == ["blocks.4.bn1"]
    stream = res["blocks.3.shortcut.0"]
    writers = {s.layer for s in stream.writers}
    assert writers == {"blocks.3.shortcut.0", "blocks.3.conv2", "blocks.4.conv2", "blocks.5.conv2"}
    assert {"blocks.4.conv1", "blocks.5.conv1", "blocks.6.conv1", "blocks.6.shortcut.0"} <= \
        {s.layer for s in stream.slices if s.axis == 1}
    assert len(res) == 12  # 3 streams + 9 blocks
    # an embedding is no root: a model with nothing but an embedding and its output has no channels
    from nas_lth.models.layers import MaskedEmbedding, MaskedLinear

    class Bag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = MaskedEmbedding(20, 8), MaskedLinear(8, 3, kind="output")

        def forward(self, t):
            return self.out(self.emb(t).mean(1))

    assert channel_groups(Bag(), torch.zeros(2, 5, dtype=torch.long)) == []


def test_a_round_removes_whole_channels_from_every_layer_of_the_group():
    model, x = model_and_input("resnet20")
    groups, masks = random_channels(model, x, rate=0.5)
    for g in groups:
        alive = alive_channels(g, masks)
        assert int(alive.sum()) == round(g.size * 0.5), g.name
        for s in g.slices:
            m = masks[s.layer].movedim(s.axis, 0)
            for c in range(g.size):
                pos = s.index[s.channel == c]
                if not alive[c]:  # every slice of a removed channel is zero, in writers and readers
                    assert not m[pos].any(), (g.name, s.layer, c)
                elif s.axis == 0:  # a kept filter keeps weights (its inputs from removed channels are zero)
                    assert m[pos].any(), (g.name, s.layer, c)
    assert masks["fc"].shape[0] == 10 and masks["fc"].any(1).all()  # the classes stay
    # a second round compounds on the alive channels
    st = model.state_dict()
    again = next_channel_masks("random", groups, st, st, masks, {"conv": 0.5, "fc": 0.5},
                               generator=torch.Generator().manual_seed(1))
    for g in groups:
        assert int(alive_channels(g, again).sum()) == round(round(g.size * 0.5) * 0.5)
        assert not (alive_channels(g, again) & ~alive_channels(g, masks)).any()


def test_filter_norm_criteria_rank_channels_by_l1_or_l2_and_bn_gamma_by_scale():
    model, x = model_and_input("lenet300_100")
    groups = channel_groups(model, x)
    hidden = next(g for g in groups if g.name == "net.3")  # 100 neurons reading 300
    st = {k: v.clone() for k, v in model.state_dict().items()}
    w = torch.zeros_like(st["net.3.weight"])
    w[0, :] = 0.1  # L1 30, L2 1.73
    w[1, 0] = 2.0  # L1 2, L2 2
    st["net.3.weight"] = w
    masks = get_masks(model)
    rates = {"fc": 0.99, "conv": 0.0}  # keeps one neuron of each layer
    for norm, winner in (("l1", 0), ("l2", 1)):
        out = next_channel_masks("large_final", [hidden], st, st, masks, rates, norm=norm,
                                 generator=torch.Generator().manual_seed(0))
        assert alive_channels(hidden, out).nonzero().flatten().tolist() == [winner], norm
    # movement: the filter that moved most
    init = {k: v.clone() for k, v in st.items()}
    init["net.3.weight"] = w.clone()
    init["net.3.weight"][7] = -1.0
    out = next_channel_masks("movement", [hidden], init, st, masks, rates, generator=torch.Generator().manual_seed(0))
    assert alive_channels(hidden, out).nonzero().flatten().tolist() == [7]
    with pytest.raises(UserError, match="'bn_gamma': layer 'net.3' has no BatchNorm"):
        next_channel_masks("bn_gamma", [hidden], st, st, masks, rates)
    # VGG: the channels with the largest |gamma| of their BatchNorm stay
    vgg, vx = model_and_input("vgg11", n=2)
    g0 = next(g for g in channel_groups(vgg, vx) if g.name == "features.0")
    vst = {k: v.clone() for k, v in vgg.state_dict().items()}
    vst["features.1.weight"] = torch.linspace(-1, 0.5, 64)  # |gamma| largest at channel 0, then 1, ...
    out = next_channel_masks("bn_gamma", [g0], vst, vst, get_masks(vgg), {"conv": 0.75, "fc": 0.0})
    assert alive_channels(g0, out).nonzero().flatten().tolist() == list(range(16))


def test_rates_that_would_remove_a_layer_are_refused_with_the_key():
    model, x = model_and_input("conv2")
    groups = channel_groups(model, x)
    check_rates(groups, {"conv": 0.5, "fc": 0.5}, rounds=5)  # 64 -> 2 channels, 256 -> 8 neurons: fine
    # 64 -> 32 -> ... -> 1 -> round(0.5) = 0 at round 7
    with pytest.raises(UserError, match=r"prune_rate: conv rate 0.5 removes every channel of layer 'features.[02]' "
                                        r"\(64 channels\) by round 7"):
        check_rates(groups, {"conv": 0.5, "fc": 0.1}, rounds=8)
    st = model.state_dict()
    with pytest.raises(UserError, match="global selection .* removes every channel of layer"):
        # global ranking of conv channels: features.0's filters (9 weights) have far smaller norms than
        # features.2's (576), so the 90 % cut takes all of them
        next_channel_masks("large_final", groups, st, st, get_masks(model), {"conv": 0.9, "fc": 0.0},
                           scope="global")


def test_early_bird_compares_channels_for_channel_tickets():
    model, x = model_and_input("conv2")
    groups, a = random_channels(model, x, rate=0.5, seed=0)
    _, b = random_channels(model, x, rate=0.5, seed=1)
    va, vb = channel_vectors(groups, a), channel_vectors(groups, b)
    total = sum(g.size for g in groups)
    differ = sum(int((va[g.name] != vb[g.name]).sum()) for g in groups)
    assert distance(va, vb) == differ / total  # the fraction of channels that differ (You et al. 2020)
    assert distance(va, vb) != distance(a, b)  # not the fraction of weights


# one model per family (fc, plain conv, conv + BatchNorm, residual, text CNN over an embedding, text MLP)
FAMILIES = ["lenet300_100", "conv2", "vgg11", "resnet20", "textcnn", "bow_mlp"]


@pytest.mark.parametrize("name", FAMILIES)
def test_compact_model_computes_what_the_masked_ticket_computes(name, tmp_path):
    model, x = model_and_input(name)
    _, masks = random_channels(model, x, rate=0.5)
    set_masks(model, masks)
    model.eval()
    small = compact(model, x)
    assert not any(hasattr(m, "mask") for m in small.modules())  # plain torch layers
    kept = sum(int(m.count_nonzero()) for m in masks.values())
    others = sum(p.numel() for k, p in model.named_parameters() if not k.endswith("weight")
                 or k.rsplit(".", 1)[0] not in dict(masked_layers(model)))
    assert kept <= parameters(small) < kept + others  # every kept weight is there, the removed ones are gone
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)
    save_program(small, example_input(model, REGISTRY_SHAPES[name][0]), tmp_path / "p.pt2")
    program = load_program(tmp_path / "p.pt2")  # torch alone rebuilds it; batch size is free
    with torch.no_grad():
        torch.testing.assert_close(program(x[:1]), small(x[:1]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(program(x), small(x), rtol=1e-5, atol=1e-6)


def test_mac_count_by_hand():
    lenet = build_model("lenet300_100", (1, 28, 28), 10, seed=0)
    assert count_macs(lenet, torch.zeros(1, 1, 28, 28)) == 784 * 300 + 300 * 100 + 100 * 10
    conv = build_model("conv2", (1, 8, 8), 10, seed=0)  # 3x3 same convs 64, 64, pool to 4x4, fc 256, 256, 10
    want = 64 * 64 * 9 + 64 * 64 * 64 * 9 + 1024 * 256 + 256 * 256 + 256 * 10
    assert count_macs(conv, torch.zeros(1, 1, 8, 8)) == want
    model, x = model_and_input("conv2")
    _, masks = random_channels(model, x, rate=0.5)
    set_masks(model, masks)
    small = compact(model, x)
    kept = 32 * 64 * 9 + 32 * 64 * 32 * 9 + 512 * 128 + 128 * 128 + 128 * 10
    assert count_macs(small, x) == kept == count_macs(model, x, nonzero=True)


def test_channel_recipes_refuse_criteria_without_a_channel_form():
    from pydantic import ValidationError

    from nas_lth.recipe import Recipe

    with pytest.raises(ValidationError, match="criterion 'snip' has no channel form; with granularity: channel "
                                              "allowed: large_final, .*bn_gamma"):
        Recipe(model="conv2", dataset="digits", granularity="channel", criterion="snip")
    with pytest.raises(ValidationError, match="criterion 'bn_gamma' scores channels; it needs granularity: channel"):
        Recipe(model="vgg11", dataset="digits", criterion="bn_gamma")


def test_bn_l1_penalty_shrinks_batchnorm_scales():
    from nas_lth.data.base import Dataset, Split
    from nas_lth.estimation import Trainer, Training

    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g))

    data = Dataset("synthetic", split(32), split(8), split(8), 10, (3, 16, 16))
    l1 = {}
    for lam in (0.0, 0.05):
        model = build_model("resnet20", (3, 16, 16), 10, seed=0)
        Trainer(model, data, Training(optimizer="sgd", lr=0.05, batch_size=8, eval_every=100, bn_l1=lam),
                seed=0).run(8)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        l1[lam] = sum(float(m.weight.detach().abs().sum()) for m in bns)
    assert l1[0.05] < l1[0.0] - 1.0  # 8 steps of lr * lambda * sign(gamma) on ~700 scales: ~2.8 less


@pytest.mark.integration
def test_channel_search_exports_a_compact_ticket_that_matches(tmp_path):
    """search_spaces/digits_channel.yaml, a few trials on real Ray: channel tickets are searched against
    measured latency, and the best one exports as a compact program that --verify checks."""
    import yaml

    from nas_lth.store import read

    spec = yaml.safe_load(open("search_spaces/digits_channel.yaml"))
    spec["strategy"]["num_samples"] = 4
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump(spec))
    run = subprocess.run([sys.executable, "-m", "nas_lth.search", str(space), "--storage", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    trials = read(str(tmp_path / "runs" / "digits_channel")).trials
    done = trials[trials.status == "completed"]
    assert len(done) >= 1 and (done.granularity == "channel").all()
    assert done.latency_compact_ms.notna().all() and done.latency_dense_ms.notna().all()
    out = tmp_path / "best.pt2"
    exp = subprocess.run([sys.executable, "-m", "nas_lth.export", str(tmp_path / "runs" / "digits_channel"),
                          "--best", "--compact", "--verify", "-o", str(out)], capture_output=True, text=True,
                         timeout=600)
    assert exp.returncode == 0, exp.stdout + exp.stderr
    assert "verified: the compact program computes the masked ticket's outputs" in exp.stdout
    program = torch.export.load(str(out)).module()
    assert program(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_bad_channel_spaces_are_one_error_line_and_exit_2(tmp_path):
    import yaml

    base = yaml.safe_load(open("search_spaces/digits_channel.yaml"))
    cases = [
        ({"search": {**base["search"], "criterion": {"choice": ["large_final", "snip"]}}},
         "criterion 'snip' has no channel form"),
        ({"fixed": {**base["fixed"], "model": "lenet300_100"}, "search": {"rounds": {"int": [1, 12]},
                                                                          "target_weights": {"float": [0.001, 0.5]}}},
         "removes every channel of layer"),
        ({"fixed": {**base["fixed"], "criterion": "bn_gamma"}, "search": {"rounds": {"int": [1, 2]}}},
         "fixed.criterion: 'bn_gamma' needs a BatchNorm on every channel; 'conv2' has none"),
    ]
    for change, message in cases:
        space = tmp_path / "bad.yaml"
        space.write_text(yaml.safe_dump({**base, **change}))
        store = tmp_path / "runs"
        proc = subprocess.run([sys.executable, "-m", "nas_lth.search", str(space), "--storage", str(store)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], proc.stderr
        assert not (store / "digits_channel").exists()  # nothing stored


def test_scores_of_a_residual_stream_average_its_writers():
    """A stream channel is written by several layers (stem or shortcut and every block's conv2): its score is
    the mean over them, so a global ranking does not favour streams over a block's inner channels."""
    from nas_lth.pruning.channels import CHANNEL_CRITERIA

    model, x = model_and_input("resnet20")
    stream = next(g for g in channel_groups(model, x) if g.name == "conv")
    st = model.state_dict()
    masks = get_masks(model)
    gammas = torch.stack([st[f"{n.layer}.weight"].abs() for n in stream.norms])  # 4 BatchNorms x 16 channels
    got = CHANNEL_CRITERIA["bn_gamma"](stream, st, st, masks, "l1", None)
    torch.testing.assert_close(got, gammas.double().mean(0))
    l1 = torch.stack([st[f"{s.layer}.weight"].abs().flatten(1).sum(1) for s in stream.writers])
    torch.testing.assert_close(CHANNEL_CRITERIA["large_final"](stream, st, st, masks, "l1", None), l1.double().mean(0))


def test_channel_ticket_run_with_early_bird_on_bn_gamma():
    """The published Early-Bird recipe end to end (digits, ResNet-20): channels by |gamma| at a fixed global
    ratio, checked every few iterations; the FIFO holds channel vectors, so its distance is the fraction of
    channels that differ; the drawn ticket is a channel ticket whose BatchNorm-less readers stay consistent."""
    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun, recipe_from_dict

    data = load_dataset("digits", None, seed=0, val_size=200)
    rc = recipe_from_dict({"model": "resnet20", "dataset": "digits", "granularity": "channel", "criterion": "bn_gamma",
                           "scope": "global", "stop_at": "early_bird", "eb_every": 4, "eb_eps": 0.3, "rounds": 1,
                           "prune_rate": {"conv": 0.5, "output": 0.0}, "budget": 2, "seed": 0, "val_size": 200,
                           "training": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 64,
                                        "eval_every": 10, "bn_l1": 1e-4}}, "eb")
    run = TicketRun(rc, data)
    views = run.eb_view(run.masks)
    assert set(views) == {g.name for g in run.groups} and all(v.dim() == 1 for v in views.values())
    rows = run.run()
    final = rows[-1]
    assert final.round == 1 and final.early_bird_drawn is not None
    assert final.mask_iter is not None and final.mask_iter <= run.budget_iters
    kept = sum(int(alive_channels(g, run.masks).sum()) for g in run.groups)
    assert kept == round(sum(g.size for g in run.groups) * 0.5)  # the global ratio, in channels
    for g in run.groups:
        dead = ~alive_channels(g, run.masks)
        for s in g.slices:
            assert not run.masks[s.layer].movedim(s.axis, 0)[s.index[dead[s.channel]]].any()


def test_channel_masks_work_with_every_reinit_control_and_rewinding():
    """Channel tickets go through the same procedure as weight tickets: late resetting, and every reinit
    variant as a control of the same masks (each keeps the removed channels at exactly zero)."""
    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun, recipe_from_dict
    from nas_lth.pruning.reinit import REINIT_VARIANTS

    data = load_dataset("digits", None, seed=0, val_size=200)
    rc = recipe_from_dict({"model": "conv2", "dataset": "digits", "granularity": "channel", "criterion": "movement",
                           "channel_norm": "l2", "rewind_to": 5, "rounds": 1, "prune_rate": {"conv": 0.5, "fc": 0.5},
                           "budget": 1, "seed": 0, "val_size": 200, "training": {"batch_size": 64, "eval_every": 10}},
                          "controls")
    controls = tuple(v for v in REINIT_VARIANTS if v != "original")
    seen = {}
    run = TicketRun(rc, data, controls=controls,
                    on_round=lambda row: seen.setdefault(row.variant, row) if row.round == 1 else None)
    run.run()
    assert set(seen) == set(REINIT_VARIANTS)
    assert len({row.mask_digest for row in seen.values()}) == 1  # one mask, trained from each start
    assert all(row.status == "completed" for row in seen.values())
    for _, layer in masked_layers(run.model):  # the last control trained: pruned weights exactly zero
        assert not layer.weight[layer.mask == 0].any()


def test_compact_keeps_a_neuron_whose_bias_still_reaches_a_reader():
    """A weight ticket can prune every input of a neuron while the next layer still reads it (its output is
    relu(bias), not zero): such a neuron must stay; one that nothing reads goes."""
    model = build_model("lenet300_100", (1, 8, 8), 10, seed=0)
    with torch.no_grad():
        for _, layer in masked_layers(model):
            layer.bias.fill_(0.5)
    masks = get_masks(model)
    masks["net.1"][3] = 0  # neuron 3: no inputs, still read by net.3
    masks["net.1"][4] = 0  # neuron 4: no inputs and nobody reads it
    masks["net.3"][:, 4] = 0
    set_masks(model, masks)
    model.eval()
    x = torch.randn(4, 1, 8, 8)
    small = compact(model, x)
    assert small.net[1].out_features == 299  # only neuron 4 is gone
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)


def test_a_plain_pytorch_cnn_gets_a_channel_ticket_that_compacts(tmp_path):
    """Issue 29 item 3: a model written in plain PyTorch (no nas_lth layers) is pruned channel by channel as it
    is: whole filters go from its convolutions and the next layers' inputs, and the compact program computes
    the masked ticket's outputs."""
    from torch import nn

    import nas_lth
    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun, recipe_from_dict
    from nas_lth.models import MODELS

    @nas_lth.register_model("plain_channel_cnn", "a plain CNN for a channel ticket")
    def plain(input_shape, num_classes, width=8):
        return nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(2 * width * 16, 32), nn.ReLU(), nn.Linear(32, num_classes))

    try:
        data = load_dataset("digits", None, seed=0, val_size=200)
        rc = recipe_from_dict({"model": "plain_channel_cnn", "dataset": "digits", "granularity": "channel",
                               "criterion": "movement", "rounds": 1, "prune_rate": {"conv": 0.5, "fc": 0.5},
                               "budget": 1, "seed": 0, "val_size": 200, "training": {"batch_size": 64}})
        run = TicketRun(rc, data)
        row = run.run()[-1]
        assert row.status == "completed" and 0 < row.weights_remaining < 1
        convs = [layer for _, layer in masked_layers(run.model) if layer.weight.dim() == 4]
        assert len(convs) == 2
        for layer in convs:  # whole channels: a filter is gone or keeps the same input channels as the others
            per_filter = layer.mask.flatten(1)
            kept = per_filter[per_filter.sum(1) > 0]
            assert 0 < len(kept) < len(per_filter) and (kept == kept[0]).all()
        assert (convs[1].mask.sum((0, 2, 3)) > 0).sum() == (convs[0].mask.flatten(1).sum(1) > 0).sum()
        model = run.model.eval()
        x = data.test.x[:16]
        small = compact(model, x)
        assert parameters(small) < parameters(model)
        with torch.no_grad():
            torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)
    finally:
        MODELS._items.pop("plain_channel_cnn", None)
