"""Tests for nas_lth.models: registry, shapes, layer kinds, seeded init, parameter counts."""

from __future__ import annotations

import pytest
import torch

from nas_lth.errors import UserError
from nas_lth.models import (
    LAYER_KINDS,
    MODELS,
    MaskedLinear,
    apply_masks_,
    build_model,
    layer_kinds,
    masked_layers,
    model_names,
    prunable_weights,
    set_masks,
)

# The image models of docs/design.md; others (e.g. text models) take token ids, not images.
IMAGE_MODELS = ["conv2", "conv4", "conv6", "lenet300_100", "resnet20", "vgg11", "vgg16", "vgg19"]
SHAPES = [(1, 28, 28), (3, 32, 32)]


def n_prunable(model) -> int:
    return sum(int(w.numel()) for w in prunable_weights(model).values())


def test_image_models_are_registered():
    assert set(IMAGE_MODELS) <= set(MODELS)
    assert model_names() == sorted(model_names())


@pytest.mark.parametrize("shape", SHAPES, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_builds_and_forward_shape(name, shape):
    num_classes = 7
    model = build_model(name, shape, num_classes, seed=0)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()

    kinds = layer_kinds(model)
    assert kinds, "a model without prunable layers"
    assert set(kinds.values()) <= set(LAYER_KINDS)
    outputs = [n for n, k in kinds.items() if k == "output"]
    assert len(outputs) == 1
    layers = dict(masked_layers(model))
    out_layer = layers[outputs[0]]
    assert isinstance(out_layer, MaskedLinear) and out_layer.out_features == num_classes
    assert list(kinds)[-1] == outputs[0]  # the output layer is the last prunable layer
    for _, m in masked_layers(model):
        assert m.mask.shape == m.weight.shape
        assert (m.mask == 1).all()
    expected_inner = "fc" if name == "lenet300_100" else "conv"
    assert expected_inner in set(kinds.values())


def test_same_seed_same_init_different_seed_differs():
    for name in ("lenet300_100", "resnet20", "conv2"):
        shape = (3, 32, 32) if name != "lenet300_100" else (1, 28, 28)
        a = build_model(name, shape, 10, seed=3).state_dict()
        b = build_model(name, shape, 10, seed=3).state_dict()
        c = build_model(name, shape, 10, seed=4).state_dict()
        assert a.keys() == b.keys() == c.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        weights = [k for k in a if k.endswith(".weight") and a[k].dim() > 1]
        assert weights and all(not torch.equal(a[k], c[k]) for k in weights)


def test_build_model_does_not_disturb_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("lenet300_100", (1, 28, 28), 10, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_unknown_model_is_a_user_error_listing_names():
    with pytest.raises(UserError) as info:
        build_model("lenet5", (1, 28, 28), 10)
    msg = str(info.value)
    assert "lenet5" in msg and "\n" not in msg
    for name in IMAGE_MODELS:
        assert name in msg


def test_bad_model_options_are_a_user_error():
    with pytest.raises(UserError, match="lenet300_100"):
        build_model("lenet300_100", (1, 28, 28), 10, options={"depth": 3})


def test_lenet300_100_prunable_weights():
    model = build_model("lenet300_100", (1, 28, 28), 10)
    assert n_prunable(model) == 266_200
    assert list(layer_kinds(model).values()) == ["fc", "fc", "output"]
    assert [tuple(w.shape) for w in prunable_weights(model).values()] == [(300, 784), (100, 300), (10, 100)]


def test_conv2_cifar_prunable_weights():
    model = build_model("conv2", (3, 32, 32), 10)
    # 3*64*9 + 64*64*9 + 16384*256 + 256*256 + 256*10
    assert n_prunable(model) == 4_300_992
    assert list(layer_kinds(model).values()) == ["conv", "conv", "fc", "fc", "output"]


def test_glorot_init_statistics_lenet():
    model = build_model("lenet300_100", (1, 28, 28), 10, seed=0)
    first = dict(masked_layers(model))["net.1"]
    std = float(first.weight.detach().std())
    assert std == pytest.approx((2 / (784 + 300)) ** 0.5, rel=0.02)
    assert (first.bias == 0).all()


def test_set_masks_zeroes_weights_and_apply_masks_keeps_them_zero():
    model = build_model("conv2", (1, 8, 8), 10, seed=0)
    g = torch.Generator().manual_seed(0)
    masks = {n: (torch.rand(m.weight.shape, generator=g) < 0.5).float() for n, m in masked_layers(model)}
    set_masks(model, masks)
    for n, m in masked_layers(model):
        assert (m.weight[masks[n] == 0] == 0).all()
        assert (m.weight[masks[n] == 1] != 0).all()
    with torch.no_grad():
        for _, m in masked_layers(model):
            m.weight.add_(1.0)
    apply_masks_(model)
    for n, m in masked_layers(model):
        assert (m.weight[masks[n] == 0] == 0).all()
    with pytest.raises(ValueError):
        set_masks(model, {"nope": torch.ones(1)})
    name = next(iter(masks))
    with pytest.raises(ValueError, match="shape"):
        dict(masked_layers(model))[name].set_mask(torch.ones(3))


def test_unknown_layer_kind_rejected():
    with pytest.raises(ValueError, match="kind"):
        MaskedLinear(3, 2, kind="dense")


# ------------------------------------------------------------------ every registered model


# a small input per registered model: a new model adds one line here (its test) and its own file
REGISTRY_SHAPES = {
    "lenet300_100": ((1, 8, 8), 10, {}), "conv2": ((1, 8, 8), 10, {}), "conv4": ((1, 8, 8), 10, {}),
    "conv6": ((1, 8, 8), 10, {}), "vgg11": ((3, 32, 32), 10, {}), "vgg16": ((3, 32, 32), 10, {}),
    "vgg19": ((3, 32, 32), 10, {}), "resnet20": ((3, 16, 16), 10, {}), "bow_mlp": ((200,), 8, {}),
    "textcnn": ((20,), 5, {"vocab_size": 50, "embed_dim": 8, "maps": 4}),
}


def test_every_registered_model_has_a_test_shape():
    from nas_lth.models import MODELS

    assert sorted(MODELS) == sorted(REGISTRY_SHAPES)


@pytest.mark.parametrize("name", sorted(REGISTRY_SHAPES))
def test_every_registered_model_trains_a_step_and_round_trips_through_export(name, tmp_path):
    from nas_lth import export
    from nas_lth.data.base import Dataset, Split
    from nas_lth.estimation import Trainer, Training

    shape, classes, opts = REGISTRY_SHAPES[name]
    g = torch.Generator().manual_seed(0)

    def split(n):
        x = (torch.randint(0, opts.get("vocab_size", 2), (n, *shape), generator=g) if name == "textcnn"
             else torch.randn(n, *shape, generator=g))
        return Split(x, torch.randint(0, classes, (n,), generator=g))

    data = Dataset("synthetic", split(16), split(8), split(8), classes, shape)
    model = build_model(name, shape, classes, seed=0, options=opts)
    masks = {n: (torch.rand(m.weight.shape, generator=g) < 0.5).float() for n, m in masked_layers(model)}
    set_masks(model, masks)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, data, Training(batch_size=8, eval_every=100), seed=0).run(2)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # it trained
    for n, m in masked_layers(model):
        assert (m.weight[masks[n] == 0] == 0).all(), n
    spec = export.model_spec(name, shape, classes, opts, None)
    ticket = export.pack(spec, masks, {"end": {k: v.clone() for k, v in model.state_dict().items()}},
                         {"model": name, "dataset": "synthetic", "seed": 0})
    conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert ticket["model"]["memory_format"] == ("channels_last" if conv else "contiguous")  # the trainer's layout
    path = tmp_path / "t.pt"
    path.write_bytes(export.to_bytes(ticket))
    loaded = export.load(path)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(data.test.x), model(data.test.x))
