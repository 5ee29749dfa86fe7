"""Ticket files (nas_lth.export): round trip, CSR execution, integrity checks, compression.

The search's own use (a stored ticket per completed trial, ``python -m nas_lth.export --verify``)
is tested end to end in test_search.py.
"""

from __future__ import annotations

import io
import lzma
import math
import subprocess
import sys
import tracemalloc

import pytest
import torch

from nas_lth import export, pruning
from nas_lth.data import load_dataset
from nas_lth.errors import UserError
from nas_lth.estimation import TicketRun, recipe_from_dict
from nas_lth.estimation.metrics import evaluate
from nas_lth.export.format import decode_mask, encode_mask
from nas_lth.models import build_model, masked_layers, set_masks

SHAPES = {  # small inputs: every architecture family, conv1d/embedding included
    "lenet300_100": ((1, 28, 28), 10, {}),
    "conv2": ((1, 8, 8), 10, {}),
    "conv4": ((3, 16, 16), 10, {}),
    "vgg11": ((3, 32, 32), 10, {}),
    "resnet20": ((3, 16, 16), 10, {}),
    "bow_mlp": ((500,), 8, {}),
    "textcnn": ((20,), 5, {"vocab_size": 50, "embed_dim": 16, "maps": 8}),
}


def pruned(name: str, density: float, seed: int = 0):
    """A model of ``name`` with random masks at about ``density`` and random trained-looking weights."""
    shape, classes, opts = SHAPES[name]
    model = build_model(name, shape, classes, seed=seed, options=opts)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
        for buf_name, buf in model.named_buffers():
            if buf_name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=g))
            elif buf_name.endswith("running_var"):
                buf.copy_(1 + torch.rand(buf.shape, generator=g))
    masks = {n: (torch.rand(m.weight.shape, generator=g) < density).float() for n, m in masked_layers(model)}
    set_masks(model, masks)
    return model.eval(), masks, shape, classes, opts


def ticket_of(model, masks, shape, classes, opts, name, **prov):
    spec = export.model_spec(name, shape, classes, opts, None)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return export.pack(spec, masks, {"end": state}, {"model": name, "dataset": "synthetic", "seed": 0, **prov})


def sample_input(shape, n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    if len(shape) == 1 and shape[0] == 20:  # token ids for the text CNN
        return torch.randint(0, 50, (n, *shape), generator=g)
    return torch.randn(n, *shape, generator=g)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_round_trip_rebuilds_identical_weights_and_predictions(tmp_path, name):
    model, masks, shape, classes, opts = pruned(name, 0.1)
    path = tmp_path / "t.pt"
    export.save(ticket_of(model, masks, shape, classes, opts, name), path)
    loaded = export.load(path)
    assert not loaded.training
    want, got = model.state_dict(), loaded.state_dict()
    assert set(want) == set(got)
    for k in want:
        assert torch.equal(want[k], got[k]), k
    x = sample_input(shape)
    assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("density", [1.0, 0.2, 0.02])
def test_csr_execution_matches_dense(name, density):
    model, masks, shape, *_ = pruned(name, density)
    sparse = export.to_sparse(model)
    kinds = {type(m).__name__ for m in sparse.modules()}
    assert "CSRLinear" in kinds, kinds
    if name not in ("lenet300_100", "bow_mlp"):
        assert "CSRConv" in kinds, kinds
    x = sample_input(shape, n=3)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-4, atol=1e-5)


def test_to_sparse_can_keep_convolutions_dense():
    model, _, shape, *_ = pruned("conv2", 0.05)
    mixed = export.to_sparse(model, layers=("linear",))
    kinds = [type(m).__name__ for m in mixed.modules()]
    assert "CSRConv" not in kinds and kinds.count("CSRLinear") == 3, kinds
    x = sample_input(shape, n=3)
    with torch.no_grad():
        torch.testing.assert_close(mixed(x), model(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="layer types"):
        export.to_sparse(model, layers=("embedding",))


def test_to_sparse_respects_max_density_and_leaves_the_original():
    model, *_ = pruned("lenet300_100", 0.5)
    half = export.to_sparse(model, max_density=0.01)
    assert not any(type(m).__name__ == "CSRLinear" for m in half.modules())
    assert sum(type(m).__name__ == "CSRLinear" for m in export.to_sparse(model).modules()) == 3
    assert not any(type(m).__name__ == "CSRLinear" for m in model.modules())


def test_mask_codec_round_trip_and_compression():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(300, 784, generator=g) < 0.036).float()
    blob = encode_mask(mask)
    assert blob.dtype == torch.uint8
    assert torch.equal(decode_mask(blob, [300, 784]), mask)
    # packed bits are 29,400 bytes; a 3.6 % random mask has ~0.22 bits/weight of entropy (~6.6 kB)
    assert blob.numel() < 9000, blob.numel()


def test_ticket_file_loads_with_weights_only_and_records_provenance(tmp_path):
    model, masks, shape, classes, opts = pruned("lenet300_100", 0.05)
    path = tmp_path / "t.pt"
    export.save(ticket_of(model, masks, shape, classes, opts, "lenet300_100", trial_id="abc", round=3), path)
    raw = torch.load(path, weights_only=True)
    prov = raw["provenance"]
    assert raw["format"] == export.FORMAT and raw["version"] == export.VERSION
    assert prov["trial_id"] == "abc" and prov["round"] == 3
    assert prov["mask_digest"] == pruning.digest(masks)
    assert math.isclose(prov["weights_remaining"], pruning.density(masks))
    from nas_lth.export.format import decode_values

    for n, m in masks.items():
        kept = decode_values(raw["weights"]["end"]["values"][n], int(m.sum()))
        assert torch.equal(kept, model.state_dict()[f"{n}.weight"][m.bool()]), n


def test_lenet_ticket_at_3_6_percent_is_20x_smaller_than_the_dense_file(tmp_path):
    """Magnitude-pruned masks of LeNet-300-100/MNIST after 15 rounds (fc 20 %, output 10 % per round)."""
    model = build_model("lenet300_100", (1, 28, 28), 10, seed=0)
    weights = {n: m.weight.detach() for n, m in masked_layers(model)}
    kinds = {n: m.kind for n, m in masked_layers(model)}
    rates = pruning.layer_rates(kinds, {"fc": 0.2, "output": 0.1})
    masks = {n: torch.ones_like(w) for n, w in weights.items()}
    for _ in range(15):
        masks = pruning.next_masks("large_final", weights, weights, masks, rates, kinds=kinds)
    set_masks(model, masks)
    assert pruning.density(masks) <= 0.036
    ticket_file, dense_file = tmp_path / "t.pt", tmp_path / "dense.pt"
    export.save(ticket_of(model, masks, (1, 28, 28), 10, {}, "lenet300_100"), ticket_file)
    torch.save({k: v for k, v in model.state_dict().items() if not k.endswith(".mask")}, dense_file)
    ratio = dense_file.stat().st_size / ticket_file.stat().st_size
    print(f"dense {dense_file.stat().st_size} B, ticket {ticket_file.stat().st_size} B: {ratio:.1f}x")
    assert ratio >= 20, f"{ratio:.1f}x"


def test_export_keeps_one_weight_set_and_rejects_unknown_ones(tmp_path):
    model, masks, shape, classes, opts = pruned("lenet300_100", 0.1)
    spec = export.model_spec("lenet300_100", shape, classes, opts, None)
    state = model.state_dict()
    other = {k: v * 2 if k.endswith("bias") else v for k, v in state.items()}
    t = export.pack(spec, masks, {"end": state, "early_stop": other}, {"model": "lenet300_100"})
    path = tmp_path / "both.pt"
    export.save(t, path)
    a, b = export.load(path, weights="end"), export.load(path, weights="early_stop")
    assert not torch.equal(a.state_dict()["net.1.bias"], b.state_dict()["net.1.bias"])
    with pytest.raises(UserError, match="no 'nope' weights"):
        export.load(path, weights="nope")
    with pytest.raises(ValueError):
        export.pack(spec, masks, {"final": state}, {})


def test_damaged_files_give_one_line_errors(tmp_path):
    model, masks, shape, classes, opts = pruned("lenet300_100", 0.1)
    good = export.to_bytes(ticket_of(model, masks, shape, classes, opts, "lenet300_100"))
    cases = {
        "truncated.pt": good[: len(good) // 2],
        "garbage.pt": b"not a zip file at all",
        "foreign.pt": _saved({"state_dict": {"w": torch.zeros(2)}}),
        "code.pt": _pickled_object(),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError) as err:
            export.load(tmp_path / name)
        assert "\n" not in str(err.value) and name in str(err.value), str(err.value)
    with pytest.raises(UserError, match="no such ticket file"):
        export.load(tmp_path / "missing.pt")

    t = ticket_of(model, masks, shape, classes, opts, "lenet300_100")
    t["provenance"]["mask_digest"] = "0" * 16
    export.save(t, tmp_path / "digest.pt")
    with pytest.raises(UserError, match="mask digest"):
        export.load(tmp_path / "digest.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _pickled_object() -> bytes:
    return _saved({"format": export.FORMAT, "version": 1, "x": _Evil()})


def test_a_real_ticket_reproduces_its_recorded_accuracy(tmp_path):
    """The run's final weights (what TicketRun keeps for export) give the recorded test accuracy."""
    rc = recipe_from_dict({"model": "lenet300_100", "dataset": "digits", "rounds": 2, "budget": 2, "seed": 3})
    data = load_dataset("digits", None, seed=3, val_size=rc.val_size)
    run = TicketRun(rc, data)
    row = run.run()[-1]
    assert set(run.final_weights) == {"end", "early_stop"}
    spec = export.model_spec(rc.model, data.input_shape, data.num_classes, rc.model_options, data.meta)
    export.save(export.pack(spec, run.masks, run.final_weights, {"model": rc.model}), tmp_path / "t.pt")
    end, early = export.load(tmp_path / "t.pt", weights="end"), export.load(tmp_path / "t.pt", weights="early_stop")
    assert evaluate(end, data.test)["acc"] == row.metrics["test_acc"]
    assert evaluate(early, data.test)["acc"] == row.metrics["test_acc_at_early_stop"]
    assert evaluate(export.to_sparse(end), data.test)["acc"] == row.metrics["test_acc"]


def test_export_cli_errors_are_one_line(tmp_path):
    cmd = [sys.executable, "-m", "nas_lth.export"]
    for args, needle in [([str(tmp_path / "nope"), "--best"], "no such experiment"),
                         ([str(tmp_path)], "one of the arguments"),
                         ([str(tmp_path), "--best", "--weights", "middle"], "invalid choice")]:
        proc = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], proc.stderr


def test_pickle_of_evil_is_not_run(tmp_path, capsys):
    (tmp_path / "e.pt").write_bytes(_pickled_object())
    with pytest.raises(UserError):
        export.read(tmp_path / "e.pt")
    assert "this must never run" not in capsys.readouterr().out


def test_export_skips_and_names_an_unreadable_table_file(tmp_path):
    """A damaged Parquet file among the rows: --list still lists the readable trials, with one warning
    naming the file (it ended in an ArrowInvalid traceback, exit 1)."""
    from nas_lth.store import locate, write_trial

    exp = locate(str(tmp_path / "exp"))
    write_trial(exp, "good1", {"trial_id": "good1", "status": "stopped", "objective": 0.5, "weights_remaining": 0.2})
    (tmp_path / "exp" / "trials" / "noise.parquet").write_bytes(bytes(range(256)))
    proc = subprocess.run([sys.executable, "-m", "nas_lth.export", str(tmp_path / "exp"), "--list"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "good1" in proc.stdout
    assert "warning: skipped unreadable trials/noise.parquet" in proc.stderr and "Traceback" not in proc.stderr


def test_a_mask_blob_that_inflates_past_its_shape_is_refused_without_inflating_it(tmp_path):
    """A few KB of LZMA that inflate to 64 MiB where the layer's shape promises 29 KB: reading stops at
    the promised size (it inflated all of it, 2.4 GB for a 1 GiB blob, before the digest check)."""
    model, masks, shape, classes, opts = pruned("lenet300_100", 0.1)
    t = ticket_of(model, masks, shape, classes, opts, "lenet300_100")
    first = next(iter(t["layers"]))
    t["layers"][first]["mask"] = torch.frombuffer(bytearray(lzma.compress(bytes(64 << 20))), dtype=torch.uint8)
    export.save(t, tmp_path / "bomb.pt")
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="inflates to more than the 29400 bytes"):
            export.load(tmp_path / "bomb.pt")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB allocated while reading a 29 KB mask"


def test_reading_a_ticket_checks_its_mask_digest():
    """Every reader (export without --verify included) gets the masks the digest vouches for."""
    model, masks, shape, classes, opts = pruned("lenet300_100", 0.1)
    t = ticket_of(model, masks, shape, classes, opts, "lenet300_100")
    t["provenance"]["mask_digest"] = "0" * 16
    with pytest.raises(UserError, match="t.pt: mask digest .* != recorded 0000000000000000"):
        export.from_bytes(export.to_bytes(t), "t.pt")


def digits_experiment(root, recorded_test_acc: float) -> None:
    """``root`` holds one completed trial t0 of a LeNet on digits with its stored ticket, whose recorded
    test accuracy is ``recorded_test_acc``."""
    from nas_lth.store import locate, write_trial

    data = load_dataset("digits", None, seed=0)
    model = build_model("lenet300_100", data.input_shape, data.num_classes, seed=0)
    masks = {n: torch.ones_like(m.weight) for n, m in masked_layers(model)}
    prov = {"experiment": "exp", "trial_id": "t0", "model": "lenet300_100", "dataset": "digits", "seed": 0,
            "criterion": "random", "round": 1, "metrics": {"end": {"test_acc": recorded_test_acc}}}
    spec = export.model_spec("lenet300_100", data.input_shape, data.num_classes, {}, None)
    exp = locate(str(root))
    write_trial(exp, "t0", {"trial_id": "t0", "status": "completed", "objective": 0.5, "weights_remaining": 1.0})
    export.save(export.pack(spec, masks, {"end": model.state_dict()}, prov), export.ticket_path(exp.uri, "t0").path)


def test_export_verify_that_fails_leaves_no_output_file(tmp_path):
    digits_experiment(tmp_path / "exp", recorded_test_acc=2.0)  # no model measures an accuracy of 2
    out = tmp_path / "out" / "t0.pt"
    out.parent.mkdir()
    proc = subprocess.run([sys.executable, "-m", "nas_lth.export", str(tmp_path / "exp"), "--trial", "t0", "-o",
                           str(out), "--verify"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISMATCH" in proc.stdout, proc.stdout
    assert list(out.parent.iterdir()) == [], "a ticket that failed --verify was left on disk"


def test_compact_export_needs_a_pt2_name_and_load_refuses_a_program(tmp_path, capsys):
    """``--compact -o name.pt`` wrote a torch.export program under a ticket's name, and ``export.load`` of it
    failed with a zip-reader message: the name is refused before anything is read, and a program given to
    ``export.load`` (under any name) says how to load it."""
    from nas_lth.export.__main__ import main

    digits_experiment(tmp_path / "exp", recorded_test_acc=0.5)
    exp = str(tmp_path / "exp")
    for args, needle in [(["--compact", "-o", str(tmp_path / "name.pt")], "give it a .pt2 name (e.g. "
                                                                         f"{tmp_path / 'name'}.pt2)"),
                         (["-o", str(tmp_path / "ticket.pt2")], "a .pt2 name is for a compact program")]:
        with pytest.raises(SystemExit) as err:
            main([exp, "--best", *args])
        assert err.value.code == 2
        msg = capsys.readouterr().err.strip()
        assert "\n" not in msg and msg.startswith(f"error: -o {args[-1]}: ") and needle in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # nothing written, not even a partial file

    program = tmp_path / "name.pt2"
    assert main([exp, "--best", "--compact", "-o", str(program)]) == 0
    assert f"wrote {program}" in capsys.readouterr().out
    assert torch.export.load(str(program)).module()(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    renamed = tmp_path / "old.pt"  # a program written under a .pt name before the check
    renamed.write_bytes(program.read_bytes())
    for path in (program, renamed):
        with pytest.raises(UserError) as err:
            export.load(path)
        assert str(err.value) == (f"{path}: this is a compact program (torch.export), not a ticket file: load it "
                                  f"with torch.export.load({str(path)!r}).module()")
    # a ticket stays a ticket: the check looks at the contents, not the name
    export.load(export.ticket_path(exp, "t0").path)
