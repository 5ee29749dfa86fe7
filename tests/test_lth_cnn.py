"""benchmarks/lth_cnn.py on tiny MNIST files in the real IDX format: every model's ladder runs (ticket and
random-reinit control each round), stops and resumes inside the ladder without redoing finished rounds, and
the report is made from complete ladders only."""

from __future__ import annotations

import pandas as pd
import pytest
from test_data import make_mnist

from benchmarks import lth_cnn


def args(tmp_path, *extra):
    return ["--data-dir", str(tmp_path / "data"), "--epochs", "1", "--rounds", "2", "--eval-every", "2",
            "--val-size", "20", "--threads", "1", "--results", str(tmp_path / "runs"),
            "--report-dir", str(tmp_path / "report"), "--no-verify", "--late-reset", "1", *extra]


def test_every_model_runs_its_ladder_and_the_report_uses_complete_ones(tmp_path):
    make_mnist(tmp_path / "data", n_train=84, n_test=16)
    assert lth_cnn.main(args(tmp_path, "--models", *lth_cnn.PROTOCOLS)) == 0
    for model in lth_cnn.PROTOCOLS:
        rows = pd.read_parquet(tmp_path / "runs" / f"{model}-s0.parquet")
        assert sorted(zip(rows["round"], rows.variant, strict=True)) == \
            [(0, "dense"), (1, "original"), (1, "random_reinit"), (2, "original"), (2, "random_reinit")]
        w = rows.groupby("round").weights_remaining.first()
        assert w[0] == 1.0 and w[0] > w[1] > w[2]
        assert not (tmp_path / "runs" / f"{model}-s0.state.pt").exists()  # a finished ladder keeps no state
    report = (tmp_path / "report" / "README.md").read_text()
    assert all(f"## {m}" in report for m in lth_cnn.PROTOCOLS)
    assert (tmp_path / "report" / "resnet20.png").stat().st_size > 0
    # each round's line states the ticket's lead over its reinit control, from the stored rows
    acc = pd.read_parquet(tmp_path / "runs" / "conv2-s0.parquet").set_index(["round", "variant"]).test_acc_at_early_stop
    gap = 100 * (acc[(2, "original")] - acc[(2, "random_reinit")])
    line = next(ln for ln in report.split("## conv2")[1].splitlines() if ln.startswith("| 2 |"))
    assert line.split("|")[5].strip() == f"{gap:+.2f}"
    summary = pd.read_parquet(tmp_path / "runs.parquet")
    assert set(summary.model) == set(lth_cnn.PROTOCOLS)
    # learning speed: the validation loss at the first evaluation, for every round and variant
    curves = pd.read_parquet(tmp_path / "runs" / "conv2-s0.curves.parquet")
    first = curves[(curves.iteration == 2) & (curves["round"] == 1) & (curves.variant == "original")].val_loss
    assert sorted(curves.iteration.unique())[:2] == [0, 2]  # 64 training images, batch 60: evaluated at 2
    s = summary[(summary.model == "conv2") & (summary["round"] == 1) & (summary.variant == "original")]
    assert s.val_loss_first.item() == pytest.approx(first.item())
    # (VGG's and ResNet's tickets here start at their late-reset iteration 1, and 64 images at batch 64 end them
    # there: no evaluation after the start, so no value rather than the untrained one)
    reset_to_0 = summary[summary.model.isin(["conv2", "conv4", "conv6"])]
    assert reset_to_0.val_loss_first.notna().all() and (reset_to_0.first_eval_iter == 2).all()
    # a command for one model reports every stored ladder, not just its own
    assert lth_cnn.main(args(tmp_path, "--models", "conv2", "--summary-only")) == 0
    assert all(f"## {m}" in (tmp_path / "report" / "README.md").read_text() for m in lth_cnn.PROTOCOLS)
    assert set(pd.read_parquet(tmp_path / "runs.parquet").model) == set(lth_cnn.PROTOCOLS)


def test_a_stopped_ladder_resumes_inside_and_is_not_averaged_in(tmp_path, monkeypatch):
    make_mnist(tmp_path / "data", n_train=84, n_test=16)
    seen = []
    original = lth_cnn.Ladder.on_round

    def stop_after_round_1(self, row):
        original(self, row)
        seen.append((row.round, row.variant))
        if (row.round, row.variant) == (1, "random_reinit"):
            raise KeyboardInterrupt

    monkeypatch.setattr(lth_cnn.Ladder, "on_round", stop_after_round_1)
    with pytest.raises(KeyboardInterrupt):
        lth_cnn.main(args(tmp_path, "--models", "conv2"))
    assert (tmp_path / "runs" / "conv2-s0.state.pt").exists()
    lth_cnn.main(args(tmp_path, "--models", "conv2", "--summary-only"))
    assert not (tmp_path / "runs.parquet").exists()  # nothing complete: nothing summarised
    seen.clear()
    monkeypatch.setattr(lth_cnn.Ladder, "on_round", lambda self, row: (seen.append((row.round, row.variant)),
                                                                       original(self, row)))
    assert lth_cnn.main(args(tmp_path, "--models", "conv2")) == 0
    # the dense run and round 1's ticket were not trained again (the interrupted run may be: its state was
    # not saved yet), and nothing is stored twice
    assert (0, "dense") not in seen and (1, "original") not in seen
    assert seen[-2:] == [(2, "original"), (2, "random_reinit")]
    rows = pd.read_parquet(tmp_path / "runs" / "conv2-s0.parquet")
    assert len(rows) == 5 and rows[["round", "variant"]].drop_duplicates().shape[0] == 5


def test_the_gpu_smoke_script_passes_its_checks_on_the_cpu_path(tmp_path):
    """benchmarks/gpu_smoke.py's own checks (trains, masks exactly zero, finite metrics, export and reload)
    on ``--device cpu``: the CUDA path cannot run here; this keeps the script correct."""
    from benchmarks import gpu_smoke

    make_mnist(tmp_path / "data", n_train=140, n_test=20)
    out = tmp_path / "gpu_smoke.parquet"
    code = gpu_smoke.main(["--device", "cpu", "--epochs", "1", "--eval-every", "2", "--val-size", "40",
                           "--data-dir", str(tmp_path / "data"), "--no-verify", "--out", str(out)])
    df = pd.read_parquet(out)
    assert set(df.model) == set(gpu_smoke.MODELS)
    assert df.masks_zero.all() and (df.mask_checks > 0).all() and df.metrics_finite.all() and df.export_reload_ok.all()
    assert (df.weights_remaining < 1).all() and (df.iters_per_s > 0).all()
    assert code == (0 if df.trained.all() else 1)


def test_a_study_in_another_folder_gets_its_own_pages_and_summary(tmp_path):
    """The reset-to-0 control runs with --results benchmarks/results/lth_cnn_reset0: its pages and summary must not
    overwrite the main study's (reports/lth_cnn/, benchmarks/results/lth_cnn.parquet)."""
    assert lth_cnn.report_dir_for(lth_cnn.OUT) == lth_cnn.REPORT
    other = lth_cnn.OUT.parent / "lth_cnn_reset0"
    assert lth_cnn.report_dir_for(other) == lth_cnn.REPO / "reports" / "lth_cnn_reset0" != lth_cnn.REPORT



def test_prune_rates_can_replace_the_protocols_and_the_page_states_them(tmp_path):
    """Item 3's longer budget: fewer rounds at larger rates (--prune-rate), stated in the page's command."""
    make_mnist(tmp_path / "data", n_train=84, n_test=16)
    assert lth_cnn.main(args(tmp_path, "--models", "conv2", "--prune-rate", "conv=0.3", "fc=0.5")) == 0
    rows = pd.read_parquet(tmp_path / "runs" / "conv2-s0.parquet")
    w = rows[rows.variant == "original"].groupby("round").weights_remaining.first()
    ref = lth_cnn.recipe("conv2", lth_cnn.parser().parse_args(["--prune-rate", "conv=0.3", "fc=0.5"]), 0)
    assert {k: ref.prune_rate[k] for k in ("conv", "fc", "output")} == {"conv": 0.3, "fc": 0.5, "output": 0.1}
    assert w[1] < 0.55  # fc layers hold most of Conv-2's weights: half of them go in round 1
    assert "--late-reset 1 --prune-rate conv=0.3 fc=0.5`" in (tmp_path / "report" / "README.md").read_text()
    with pytest.raises(SystemExit):
        lth_cnn.parser().parse_args(["--prune-rate", "fc=1.5"])
