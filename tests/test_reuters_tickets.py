"""Tickets on the real Reuters-21578 (when ../shared/data or NAS_LTH_DATA holds it): the engine runs the
bag-of-words MLP (single- and multi-label) and the text CNN end to end through the ticket CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NAS_LTH_DATA") or REPO.parent / "shared" / "data")
TARBALL = DATA / "reuters21578" / "reuters21578.tar.gz"

pytestmark = pytest.mark.integration


def run_recipe(tmp_path, recipe: dict) -> list[dict]:
    if not TARBALL.exists():
        pytest.skip(f"Reuters-21578 not found at {TARBALL} (set NAS_LTH_DATA)")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = subprocess.run([sys.executable, "-m", "nas_lth.ticket", str(path), "--json", "--data-dir", str(DATA)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


TRAINING = {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "eval_every": 20}


def test_bow_mlp_ticket_on_r8(tmp_path):
    rows = run_recipe(tmp_path, {"model": "bow_mlp", "dataset": "reuters-r8", "rounds": 1, "budget": 1,
                                 "prune_rate": {"fc": 0.5, "output": 0.2}, "training": TRAINING})
    dense, ticket = rows
    assert dense["val_acc"] > 0.8 and ticket["val_acc"] > 0.8  # one epoch of R8 is already well above chance
    assert 0.49 < ticket["weights_remaining"] < 0.51


def test_bow_mlp_multilabel_reports_f1_on_apte90(tmp_path):
    rows = run_recipe(tmp_path, {"model": "bow_mlp", "dataset": "reuters-apte90", "rounds": 1, "budget": 2,
                                 "training": TRAINING})
    for r in rows:
        assert {"val_micro_f1", "val_macro_f1", "test_micro_precision", "test_micro_recall"} <= set(r)
        assert 0 <= r["test_macro_f1"] <= r["test_micro_f1"] <= 1
    assert rows[0]["val_micro_f1"] > 0.3


def test_textcnn_prunes_embedding_conv_and_output(tmp_path):
    rows = run_recipe(tmp_path, {"model": "textcnn", "dataset": "reuters-r8", "criterion": "snip", "rounds": 1,
                                 "budget": 0.3, "model_options": {"embed_dim": 16, "maps": 20},
                                 "dataset_options": {"representation": "tokens", "max_len": 64},
                                 "prune_rate": {"embedding": 0.5, "conv": 0.5, "output": 0.5},
                                 "training": {**TRAINING, "batch_size": 50}})
    assert rows[1]["weights_remaining"] == pytest.approx(0.5, abs=0.01)
    assert rows[1]["status"] == "completed"


def test_multilabel_search_optimises_micro_f1_and_exports_its_ticket(tmp_path):
    """The shipped ApteMod-90 space, shrunk (2 trials, 2 epochs): a real local Ray search whose objective
    is validation micro-F1, and the best trial's ticket exported and verified against it."""
    if not TARBALL.exists():
        pytest.skip(f"Reuters-21578 not found at {TARBALL} (set NAS_LTH_DATA)")
    from test_search import run, search_cmd

    from nas_lth.store import read

    space = yaml.safe_load((REPO / "search_spaces" / "reuters_apte90_bow.yaml").read_text())
    space["name"] = "apte90_tiny"
    space["fixed"].update(budget=2, training={**space["fixed"]["training"], "eval_every": 100})
    space["search"] = {"criterion": {"choice": ["large_final", "movement"]}, "rounds": {"int": [1, 2]}}
    space["strategy"] = {"num_samples": 2, "searcher": "random", "seed": 0, "scheduler": "fifo",
                         "max_concurrent": 2, "checkpoint_every_s": 0}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    proc = run(search_cmd(path, tmp_path / "runs", "--data-dir", str(DATA)), tmp_path, "apte90", timeout=420)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    trials = read(str(tmp_path / "runs" / "apte90_tiny")).trials
    assert list(trials.status) == ["completed"] * 2, trials[["status", "message"]]
    assert (trials.objective == trials.val_micro_f1).all()
    assert ((trials.test_micro_f1 > 0.3) & (trials.test_micro_f1 <= 1)).all(), trials.test_micro_f1.tolist()

    out = tmp_path / "best.pt"
    proc = subprocess.run([sys.executable, "-m", "nas_lth.export", str(tmp_path / "runs" / "apte90_tiny"), "--best",
                           "-o", str(out), "--verify", "--data-dir", str(DATA)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "verified" in proc.stdout, proc.stdout + proc.stderr
    assert "test_micro_f1" in proc.stdout
