"""Tests for nas_lth.estimation.train: masks stay exactly zero, evaluation schedule, early stop,
divergence and bitwise resume."""

from __future__ import annotations

import math

import pytest
import torch

from nas_lth.data import load_dataset
from nas_lth.estimation import Diverged, TicketRun, Trainer, Training, recipe_from_dict
from nas_lth.estimation.hooks import EpochCheckpoint, RunHook
from nas_lth.estimation.train import clone_state
from nas_lth.models import build_model, masked_layers, set_masks


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def make_model(data, name="lenet300_100", seed=0, masked=True):
    model = build_model(name, data.input_shape, data.num_classes, seed=seed)
    if masked:
        g = torch.Generator().manual_seed(seed + 100)
        set_masks(model, {n: (torch.rand(m.weight.shape, generator=g) < 0.5).float()
                          for n, m in masked_layers(model)})
    return model


@pytest.mark.parametrize("name", ["lenet300_100", "conv2"])
@pytest.mark.parametrize(
    "cfg",
    [
        Training(optimizer="adam", lr=1e-2, batch_size=32, eval_every=1000),
        Training(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-3, batch_size=32, eval_every=1000),
        Training(optimizer="adam", lr=1e-2, weight_decay=1e-2, batch_size=32, eval_every=1000),
    ],
    ids=["adam", "sgd_momentum_wd", "adam_wd"],
)
def test_masked_weights_stay_exactly_zero(digits, name, cfg):
    model = make_model(digits, name)
    masks = {n: m.mask.clone() for n, m in masked_layers(model)}
    for mask in masks.values():
        frac = float(mask.mean())
        assert 0.4 < frac < 0.6
    before = {n: m.weight.detach().clone() for n, m in masked_layers(model)}
    trainer = Trainer(model, digits, cfg, seed=0)
    trainer.run(40)
    assert trainer.iteration == 40
    for n, m in masked_layers(model):
        w = m.weight.detach()
        assert torch.equal(m.mask, masks[n])  # training does not alter the mask
        assert (w[masks[n] == 0] == 0).all(), n
        kept = masks[n] == 1
        changed = (w[kept] != before[n][kept]).float().mean()
        assert changed > 0.5, (n, float(changed))
        # the optimizer state for pruned weights does not leak back in
        state = trainer.optimizer.state[m.weight]
        assert state  # the optimizer did step this parameter


def test_eval_schedule_and_early_stop_iteration(digits):
    model = make_model(digits, masked=False)
    trainer = Trainer(model, digits, Training(lr=5e-3, batch_size=60, eval_every=7), seed=0)
    res = trainer.run(45)
    iters = [rec["iteration"] for rec in res.curve]
    assert iters == [0, 7, 14, 21, 28, 35, 42, 45]
    assert math.isnan(res.curve[0]["train_loss"])
    assert all(math.isfinite(rec["train_loss"]) for rec in res.curve[1:])
    assert [rec["epoch"] for rec in res.curve] == [i / trainer.iters_per_epoch for i in iters]
    assert trainer.iters_per_epoch == math.ceil(len(digits.train) / 60)
    val_losses = [rec["val_loss"] for rec in res.curve]
    best = min(range(len(val_losses)), key=val_losses.__getitem__)
    assert res.early_stop_iter == iters[best]
    assert res.best_val_loss == val_losses[best]
    assert val_losses[-1] < val_losses[0]  # it learns
    assert res.iterations == 45


def test_early_stop_state_is_the_best_checkpoint(digits):
    model = make_model(digits)
    trainer = Trainer(model, digits, Training(lr=5e-2, batch_size=60, eval_every=5), seed=1)
    res = trainer.run(60)
    val_losses = [rec["val_loss"] for rec in res.curve]
    iters = [rec["iteration"] for rec in res.curve]
    # overfitting at a large lr: the minimum is not at the end
    assert res.early_stop_iter == iters[val_losses.index(min(val_losses))]
    trainer.final_metrics()
    assert res.at_early_stop["val_loss"] == pytest.approx(res.best_val_loss, rel=1e-5)
    assert {"val_loss", "val_acc", "test_loss", "test_acc", "val_micro_f1", "test_macro_f1"} <= set(res.final)
    assert res.final["val_loss"] == pytest.approx(res.curve[-1]["val_loss"], rel=1e-5)


def test_huge_learning_rate_diverges(digits):
    model = make_model(digits, masked=False)
    trainer = Trainer(model, digits, Training(optimizer="sgd", lr=1e6, batch_size=60, eval_every=2), seed=0)
    with pytest.raises(Diverged, match="iteration"):
        trainer.run(40)
    last = trainer.result.curve[-1]
    assert not (math.isfinite(last["train_loss"]) and math.isfinite(last["val_loss"]))
    assert trainer.iteration < 40


def test_divergence_through_ticket_run_is_a_row_not_an_exception(digits):
    rc = recipe_from_dict({
        "model": "lenet300_100", "dataset": "digits", "rounds": 2, "budget": 1,
        "training": {"optimizer": "sgd", "lr": 1e6, "eval_every": 2},
    })
    rows = TicketRun(rc, digits).run()
    assert len(rows) == 1  # the dense run diverged: later rounds cannot be computed
    assert rows[0].status == "diverged"
    assert rows[0].variant == "dense"
    assert "loss is" in rows[0].message
    assert rows[0].iterations < 20


@pytest.mark.parametrize("cut", ["epoch", "mid_epoch"])
def test_resume_is_bitwise_identical(digits, cut):
    cfg = Training(optimizer="adam", lr=3e-3, batch_size=50, eval_every=9, lr_milestones=[1.0], lr_gamma=0.5)
    full_model = make_model(digits, seed=2)
    full = Trainer(full_model, digits, cfg, seed=5)
    ipe = full.iters_per_epoch
    full.run(2 * ipe)

    first = Trainer(make_model(digits, seed=2), digits, cfg, seed=5)
    stop = ipe if cut == "epoch" else ipe - 7
    first.run(stop)
    saved = first.state_dict()
    for _ in range(3):  # the saved state is a copy: training on does not change it
        first.run(first.iteration + 1)

    resumed_model = make_model(digits, seed=7)  # different init and masks: everything comes from `saved`
    resumed = Trainer(resumed_model, digits, cfg, seed=5)
    resumed.load_state_dict(saved)
    assert resumed.iteration == stop
    resumed.run(2 * ipe)
    assert resumed.iteration == full.iteration == 2 * ipe
    a, b = full_model.state_dict(), resumed_model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.result.early_stop_iter == full.result.early_stop_iter
    assert resumed.result.best_val_loss == full.result.best_val_loss


def test_epoch_hook_and_snapshots(digits):
    model = make_model(digits)
    trainer = Trainer(model, digits, Training(batch_size=100, eval_every=1000), seed=0)
    ipe = trainer.iters_per_epoch
    seen = []
    res = trainer.run(2 * ipe + 3, snapshot_at={0, 5, ipe},
                      hooks=[EpochCheckpoint(lambda t: seen.append(t.iteration))])
    assert seen == [ipe, 2 * ipe]
    assert sorted(res.snapshots) == [0, 5, ipe]
    assert not torch.equal(res.snapshots[0]["net.1.weight"], res.snapshots[5]["net.1.weight"])
    assert torch.equal(clone_state(model)["net.1.mask"], res.snapshots[5]["net.1.mask"])


def test_eval_hook_can_stop_training(digits):
    class StopAt8(RunHook):
        def on_eval(self, trainer, rec):
            return rec["iteration"] >= 8

    model = make_model(digits)
    trainer = Trainer(model, digits, Training(batch_size=60, eval_every=4), seed=0)
    res = trainer.run(100, hooks=[StopAt8()])
    assert res.stopped_by_hook
    assert trainer.iteration == 8
    assert [r["iteration"] for r in res.curve] == [0, 4, 8]


def test_check_hooks_run_at_the_start_and_on_their_own_cadence(digits):
    class Every(RunHook):
        def __init__(self, every, stop_at=None):
            self.check_every, self.seen, self.stop_at = every, [], stop_at

        def on_check(self, trainer, iteration):
            self.seen.append(iteration)
            return iteration == self.stop_at

    a, b = Every(3), Every(5, stop_at=10)
    trainer = Trainer(make_model(digits), digits, Training(batch_size=60, eval_every=4), seed=0, start=2)
    res = trainer.run(100, hooks=[a, b])
    # both hooks run at every due check, even when the other one stops training
    assert a.seen == [2, 3, 6, 9] and b.seen == [2, 5, 10] and trainer.iteration == 10 and res.stopped_by_hook


# ------------------------------------------------------------------ a run that starts at iteration k


def _batches_seen(model) -> list:
    """Record (a fingerprint of) every training batch the model sees, in order."""
    seen: list = []

    def hook(module, args):
        if module.training:
            seen.append(round(float(args[0].double().sum()), 6))

    model.register_forward_pre_hook(hook)
    return seen


def test_a_run_started_at_k_sees_the_dense_runs_batches_and_lr_from_k(digits):
    cfg = Training(optimizer="adam", lr=1e-3, batch_size=60, eval_every=7, lr_milestones=[1.0], lr_gamma=0.1)
    dense_model = make_model(digits, masked=False)
    seen_dense = _batches_seen(dense_model)
    dense = Trainer(dense_model, digits, cfg, seed=3, track_best=False)
    k, total = 13, 50  # k mid-epoch 0 (20 iterations per epoch), total crosses the milestone at 20
    res = dense.run(total, snapshot_at={k})
    theta_k = res.snapshots[k]

    model = make_model(digits, masked=False)
    model.load_state_dict(theta_k)
    seen = _batches_seen(model)
    rewound = Trainer(model, digits, cfg, seed=3, track_best=False, start=k)
    out = rewound.run(total)
    assert rewound.iteration == total and out.iterations == total
    assert seen == seen_dense[k:]  # the same batches in the same order from step k on
    assert rewound.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # the schedule's clock, too
    assert [c["iteration"] for c in out.curve] == [13, 14, 21, 28, 35, 42, 49, 50]
    # the old behaviour - a new run from iteration 0 - sees the first epoch's batches again
    restart_model = make_model(digits, masked=False)
    restart_model.load_state_dict(theta_k)
    seen_restart = _batches_seen(restart_model)
    Trainer(restart_model, digits, cfg, seed=3, track_best=False).run(total - k)
    assert seen_restart != seen_dense[k:]


def test_dropout_draws_are_seeded_and_leave_the_global_rng_alone():
    data = load_dataset("digits")
    torch.manual_seed(123)
    marker = torch.rand(3)
    results = []
    for _ in range(2):
        torch.manual_seed(0)  # the same init both times
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 50), torch.nn.ReLU(),
                                    torch.nn.Dropout(0.5), torch.nn.Linear(50, 10))
        torch.manual_seed(999 if not results else 555)  # a different global state before each run
        state = torch.get_rng_state()
        Trainer(model, data, Training(eval_every=1000), seed=0, track_best=False).run(30)
        assert torch.equal(torch.get_rng_state(), state)  # forked: the caller's RNG is untouched
        results.append(clone_state(model))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), marker)


def test_channels_last_training_keeps_masks_and_matches_nchw_up_to_rounding():
    """The NHWC layout (benchmarks/conv_speed.py times it; ``auto`` picks it for conv models): the model's conv
    weights and masks are channels_last, pruned weights stay exactly zero, and the trained weights equal NCHW
    training's up to float rounding (same data order, same steps)."""
    from nas_lth.data.base import Dataset, Split

    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))

    data = Dataset("synthetic", split(32), split(8), split(8), 10, (3, 8, 8))
    trained = {}
    for fmt in ("contiguous", "channels_last", "auto"):
        model = build_model("conv2", (3, 8, 8), 10, seed=0)
        masks = {n: (torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(1)) < 0.5).float()
                 for n, m in masked_layers(model)}
        set_masks(model, masks)
        Trainer(model, data, Training(batch_size=8, eval_every=100), seed=0, memory_format=fmt).run(6)
        for n, m in masked_layers(model):
            assert (m.weight[masks[n] == 0] == 0).all(), n
            if m.weight.dim() == 4:
                assert m.weight.is_contiguous(memory_format=torch.channels_last) == (fmt != "contiguous")
        trained[fmt] = clone_state(model)
    for k, v in trained["contiguous"].items():
        torch.testing.assert_close(trained["channels_last"][k], v, rtol=1e-4, atol=1e-5)
        assert torch.equal(trained["auto"][k], trained["channels_last"][k]), k  # auto is channels_last here
    lenet = build_model("lenet300_100", (1, 8, 8), 10, seed=0)
    assert Trainer(lenet, data, Training(), seed=0).memory_format == "contiguous"  # nothing to gain for fc layers
    with pytest.raises(ValueError, match="memory_format 'nhwc'; allowed: auto, contiguous, channels_last"):
        Trainer(build_model("conv2", (3, 8, 8), 10), data, Training(), seed=0, memory_format="nhwc")


def test_bf16_precision_autocasts_the_forward_pass_and_keeps_float32_weights_and_masks():
    """``training.precision: bf16`` (off by default): forward passes under bfloat16 autocast change the trained
    weights (so it is really on), the weights and masks stay float32 and pruned weights exactly zero, and an
    unknown precision is refused by the recipe."""
    from pydantic import ValidationError

    from nas_lth.data.base import Dataset, Split

    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))

    data = Dataset("synthetic", split(32), split(8), split(8), 10, (1, 8, 8))
    trained = {}
    for precision in ("fp32", "bf16"):
        model = build_model("conv2", (1, 8, 8), 10, seed=0)
        masks = {n: (torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(1)) < 0.5).float()
                 for n, m in masked_layers(model)}
        set_masks(model, masks)
        t = Trainer(model, data, Training(batch_size=8, eval_every=2, precision=precision), seed=0)
        t.run(6)
        t.final_metrics()
        assert all(math.isfinite(v) for v in t.result.final.values())
        for n, m in masked_layers(model):
            assert m.weight.dtype == torch.float32 and (m.weight[masks[n] == 0] == 0).all(), n
        trained[precision] = clone_state(model)
    diff = max(float((trained["bf16"][k] - v).abs().max()) for k, v in trained["fp32"].items())
    assert 1e-6 < diff < 0.05  # bf16 rounding (8 bits of mantissa), not a different run
    with pytest.raises(ValidationError, match="precision"):
        Training(precision="fp16")
