"""Tickets carry their input transform (issue 29 item 5): ``nas_lth.export.load`` returns a module on raw
inputs that predicts exactly as the trial did on its standardised split; old ticket files load bare with a
warning; a transform that does not fit the model is one error line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from nas_lth import export
from nas_lth.data import load_dataset, load_raw
from nas_lth.data.arrays import register_arrays
from nas_lth.data.registry import DATASETS
from nas_lth.errors import UserError
from nas_lth.estimation import TicketRun, recipe_from_dict
from nas_lth.estimation.metrics import evaluate
from nas_lth.export.transform import RawInput, checked, input_record


def _ticket(tmp_path, dataset: str, seed: int = 3, record: bool = True):
    rc = recipe_from_dict({"model": "lenet300_100", "dataset": dataset, "rounds": 2, "budget": 2, "seed": seed,
                           "training": {"eval_every": 10}})
    data = load_dataset(dataset, None, seed=seed, val_size=rc.val_size)
    run = TicketRun(rc, data)
    row = run.run()[-1]
    spec = export.model_spec(rc.model, data.input_shape, data.num_classes, rc.model_options, data.meta)
    prov = {"model": rc.model, "dataset": dataset, "seed": seed, "val_size": rc.val_size}
    ticket = export.pack(spec, run.masks, run.final_weights, prov, None,
                         input_record(data.meta, data.input_shape, True) if record else None)
    export.save(ticket, tmp_path / "t.pt")
    return tmp_path / "t.pt", data, row


def test_a_loaded_ticket_on_raw_digits_reproduces_the_recorded_accuracy(tmp_path):
    path, data, row = _ticket(tmp_path, "digits")
    model = export.load(path)
    assert isinstance(model, RawInput) and not model.training
    raw = export.raw_test_split(export.read(path), None)
    assert raw.x.dtype == torch.float32 and not torch.equal(raw.x, data.test.x)  # really not standardised
    assert evaluate(model, raw)["acc"] == row.metrics["test_acc"]
    bare = export.load(path, raw=False)
    assert not isinstance(bare, RawInput) and evaluate(bare, data.test)["acc"] == row.metrics["test_acc"]
    with torch.no_grad():  # the same float32 steps as the data pipeline: bit-identical inputs and logits
        assert torch.equal(model.prepare(raw.x), data.test.x)
        assert torch.equal(model(raw.x), bare(data.test.x))
    assert evaluate(bare, raw)["acc"] < row.metrics["test_acc"]  # what issue 29 saw: raw digits, no transform


@pytest.fixture
def uint8_images():
    name = "tiny_uint8_images"

    @register_arrays(name, num_classes=3, input_shape=(1, 4, 4), val_size=10)
    def images():
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (60, 1, 4, 4)).astype(np.uint8)
        y = np.arange(60) % 3
        return x[:40], y[:40], x[40:], y[40:]

    yield name
    DATASETS._items.pop(name)


def test_uint8_images_are_scaled_then_standardised_exactly_as_the_pipeline_does(uint8_images):
    data = load_dataset(uint8_images, seed=0)
    raw = load_raw(uint8_images)
    assert raw.x_test.dtype == np.uint8
    net = torch.nn.Identity()
    wrapped = RawInput(net, checked(input_record(data.meta, data.input_shape, True), data.input_shape, "t"),
                       data.input_shape)
    assert wrapped.mean.shape == (1, 1, 1)
    assert torch.equal(wrapped(torch.from_numpy(raw.x_test)), data.test.x)


def test_an_old_ticket_loads_bare_with_a_warning(tmp_path):
    path, data, row = _ticket(tmp_path, "digits", record=False)
    with pytest.warns(UserWarning, match=r"does not record the input transform .* takes standardised inputs"):
        model = export.load(path)
    assert not isinstance(model, RawInput) and evaluate(model, data.test)["acc"] == row.metrics["test_acc"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export.load(path, raw=False)  # asked for the bare network: nothing to warn about


def test_a_transform_that_does_not_fit_the_model_is_one_error(tmp_path):
    path, _, _ = _ticket(tmp_path, "digits")
    ticket = export.read(path)
    for bad, message in [
        ({"kind": "standardize", "mean": [0.0, 0.0], "std": [1.0, 1.0]}, r"2 channel\(s\) .* input shape \[1, 8, 8\]"),
        ({"kind": "standardize", "mean": [0.0], "std": [0.0]}, r"std > 0"),
        ({"kind": "whiten"}, r"input transform kind 'whiten'; allowed: standardize, tokens, identity"),
        ({"kind": "tokens", "max_len": 8}, r"8 token ids where the model's input shape is \[1, 8, 8\]"),
    ]:
        export.save({**ticket, "input": bad}, tmp_path / "bad.pt")
        with pytest.raises(UserError, match=rf"^{tmp_path}/bad.pt: .*{message}"):
            export.load(tmp_path / "bad.pt")


def test_a_text_ticket_carries_its_vocabulary_and_encodes_new_texts():
    from nas_lth.data.text import build_vocab, encode, tokenize

    texts = ["Oil prices rose sharply", "wheat exports fell", "oil and wheat"]
    vocab = build_vocab([tokenize(t) for t in texts], max_vocab=20, min_count=1)
    record = input_record({"representation": "tokens", "vocab": vocab}, (6,), False)
    assert record["kind"] == "tokens" and record["vocab"].dtype == torch.uint8  # compressed, weights-only safe
    model = RawInput(torch.nn.Identity(), checked(record, [6], "t"), [6])
    new = ["OIL prices, and corn!"]
    assert torch.equal(model.encode(new), torch.from_numpy(encode([tokenize(t) for t in new], vocab, 6)))
    assert model.encode(new)[0, 3].item() == 1  # "corn": unknown
    ids = torch.tensor([[2, 3, 0, 0, 0, 0]])
    assert torch.equal(model(ids), ids)  # token ids pass as they are
    image = RawInput(torch.nn.Identity(), {"kind": "identity"}, [4])
    with pytest.raises(UserError, match=r"this ticket's inputs are 'identity', not token ids"):
        image.encode(["x"])
