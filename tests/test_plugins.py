"""A user's own model and dataset, registered in a plugin module that only the driver can import: a real search
on a local Ray instance ships the plugin to its workers, every trial completes, and the recorded ticket is
exported and loaded in fresh processes. The bad inputs of plugins are in tests/test_bad_input.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from nas_lth import plugins
from nas_lth.data.arrays import raw_from_arrays
from nas_lth.errors import DataError, UserError
from nas_lth.store import read

PLUGIN = textwrap.dedent('''
    """A lab's parts: a two-layer MLP and a dataset of Gaussian blobs from arrays."""
    import math

    import numpy as np
    from torch import nn

    import nas_lth


    class LabMLP(nn.Module):  # plain PyTorch: nas_lth makes its linear layers prunable as they are
        def __init__(self, inputs, width, classes):
            super().__init__()
            self.hidden, self.head = nn.Linear(inputs, width), nn.Linear(width, classes)

        def forward(self, x):
            return self.head(self.hidden(x.flatten(1)).relu())


    @nas_lth.register_model("lab_mlp", "a plain two-layer MLP")
    def lab_mlp(input_shape, num_classes, width=32):
        return LabMLP(math.prod(input_shape), width, num_classes)


    @nas_lth.register_dataset("lab_blobs", num_classes=3, input_shape=(6,), val_size=60)
    def lab_blobs(noise=0.6):
        """Three Gaussian blobs in 6 dimensions."""
        rng = np.random.default_rng(0)
        centers = rng.normal(0, 2, (3, 6))
        y = rng.integers(0, 3, 500)
        x = (centers[y] + rng.normal(0, noise, (500, 6))).astype(np.float32)
        return x[:400], y[:400], x[400:], y[400:]
''')


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("PYTHONPATH", None)  # the workers inherit the driver's environment: nothing there may name the plugin
    return env


@pytest.mark.integration
def test_a_plugin_only_the_driver_imports_reaches_every_worker_and_its_ticket_loads(tmp_path):
    src = tmp_path / "src"  # the plugin package; on the driver's sys.path only (not its cwd, not PYTHONPATH)
    (src / "lab").mkdir(parents=True)
    (src / "lab" / "__init__.py").write_text("")
    (src / "lab" / "parts.py").write_text(PLUGIN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "name": "lab", "plugins": ["lab.parts"],
        "fixed": {"model": "lab_mlp", "dataset": "lab_blobs", "budget": 10, "target_weights": 0.2, "seed": 0,
                  "eval_rounds": "last", "training": {"eval_every": 10, "batch_size": 20}},
        "search": {"criterion": {"choice": ["large_final", "random"]}, "model_options.width": {"choice": [16, 32]}},
        "strategy": {"num_samples": 3, "searcher": "random", "seed": 0, "scheduler": "fifo", "max_concurrent": 2,
                     "max_failures": 0},
    }))
    storage = tmp_path / "runs"
    driver = (f"import sys; sys.path.insert(0, {str(src)!r}); from nas_lth.search import main; "
              f"sys.exit(main([{str(space)!r}, '--storage', {str(storage)!r}, '--no-dashboard', '--num-cpus', '2']))")
    proc = subprocess.run([sys.executable, "-c", driver], cwd=elsewhere, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = storage / "lab"
    trials = read(str(exp)).trials
    assert len(trials) == 3 and (trials.status == "completed").all(), trials[["status", "message"]]
    assert (trials.model == "lab_mlp").all() and (trials.dataset == "lab_blobs").all()
    assert (trials.weights_remaining < 1).all(), trials.weights_remaining
    assert trials.val_acc.notna().all() and trials.val_acc.max() > 0.8, trials.val_acc  # the blobs are learnt
    assert json.loads((exp / "space.json").read_text())["plugins"] == ["lab.parts"]

    # a fresh process finds the plugin through the experiment's space (export) and the ticket's provenance (load)
    export = subprocess.run([sys.executable, "-m", "nas_lth.export", str(exp), "--best", "-o", "t.pt", "--verify"],
                            cwd=src, env=_env(), capture_output=True, text=True, timeout=300)
    assert export.returncode == 0 and "verified" in export.stdout, export.stdout[-2000:] + export.stderr[-2000:]
    load = subprocess.run([sys.executable, "-c", "import nas_lth.export; m = nas_lth.export.load('t.pt'); "
                           "print(sum(int((p != 0).sum()) for p in m.parameters()))"],
                          cwd=src, env=_env(), capture_output=True, text=True, timeout=120)
    assert load.returncode == 0, load.stderr[-2000:]
    assert 0 < int(load.stdout.split()[-1])
    assert "raw inputs, test_acc" in export.stdout, export.stdout  # the ticket carries its standardisation
    compact = subprocess.run([sys.executable, "-m", "nas_lth.export", str(exp), "--best", "--compact", "--verify",
                              "-o", "t.pt2"], cwd=src, env=_env(), capture_output=True, text=True, timeout=300)
    assert compact.returncode == 0 and (src / "t.pt2").exists(), compact.stdout[-2000:] + compact.stderr[-2000:]


IN_MEMORY = textwrap.dedent('''
    import sys

    import numpy as np

    import nas_lth

    rng = np.random.default_rng(1)  # four blobs of 5x5 grey images, uint8 as a camera gives them
    centers = rng.integers(40, 215, (4, 1, 5, 5))
    y = rng.integers(0, 4, 600)
    x = np.clip(centers[y] + rng.normal(0, 30, (600, 1, 5, 5)), 0, 255).astype(np.uint8)
    space = {"name": "mem", "plugins": ["lab.parts"],
             "fixed": {"model": "lab_mlp", "budget": 10, "target_weights": 0.2, "seed": 0, "eval_rounds": "last",
                       "training": {"eval_every": 10, "batch_size": 20}},
             "search": {"criterion": {"choice": ["large_final", "random"]}},
             "strategy": {"num_samples": 2, "searcher": "random", "seed": 0, "scheduler": "fifo", "max_failures": 0}}
    results = nas_lth.search(space, data={"train": (x[:500], y[:500]), "test": (x[500:], y[500:])},
                             storage=sys.argv[1], num_cpus=2)
    np.save("x_test.npy", x[500:]); np.save("y_test.npy", y[500:])
    print("rows", len(results.trials), "best", results.best_ticket)
''')


@pytest.mark.integration
def test_in_memory_arrays_are_searched_by_workers_and_the_ticket_takes_raw_inputs(tmp_path):
    """Issue 29: nas_lth.search(space, data=...) on a local Ray instance whose workers never imported the
    plugin or saw the arrays; the ticket, loaded in a fresh process, reproduces the recorded test accuracy on
    the raw uint8 test images (and export --verify checks both input paths)."""
    src = tmp_path / "src"
    (src / "lab").mkdir(parents=True)
    (src / "lab" / "__init__.py").write_text("")
    (src / "lab" / "parts.py").write_text(PLUGIN)
    (src / "run.py").write_text(IN_MEMORY)
    storage = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "run.py", str(storage)], cwd=src, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = read(str(storage / "mem")).trials
    assert len(trials) == 2 and (trials.status == "completed").all(), trials[["status", "message"]]
    assert (trials.dataset == "arrays").all() and (trials.weights_remaining < 1).all()
    assert len(list((storage / ".nas_lth-arrays").glob("*.npz"))) == 1
    export = subprocess.run([sys.executable, "-m", "nas_lth.export", str(storage / "mem"), "--best", "-o", "t.pt",
                             "--verify"], cwd=src, env=_env(), capture_output=True, text=True, timeout=300)
    assert export.returncode == 0 and "verified" in export.stdout, export.stdout[-2000:] + export.stderr[-2000:]
    assert "raw inputs, test_acc" in export.stdout, export.stdout
    check = ("import numpy as np, torch, nas_lth.export; m = nas_lth.export.load('t.pt'); "
             "x, y = torch.from_numpy(np.load('x_test.npy')), torch.from_numpy(np.load('y_test.npy')); "
             "print(float((m(x).argmax(1) == y).float().mean()))")
    raw = subprocess.run([sys.executable, "-c", check], cwd=src, env=_env(), capture_output=True, text=True,
                         timeout=120)
    assert raw.returncode == 0, raw.stderr[-2000:]
    best = trials.sort_values(["objective", "weights_remaining", "trial_id"], ascending=[False, True, True]).iloc[0]
    assert float(raw.stdout.split()[-1]) == pytest.approx(best.test_acc, abs=1e-9) and best.test_acc > 0.5
    again = subprocess.run([sys.executable, "run.py", str(storage)], cwd=src, env=_env(), capture_output=True,
                           text=True, timeout=300)  # the same arrays, the same name: refused, nothing written
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr[-2000:]
    assert len(list((storage / ".nas_lth-arrays").glob("*.npz"))) == 1


def test_a_missing_plugin_is_one_error_naming_it():
    with pytest.raises(UserError, match=r"^x.yaml: plugins: plugin 'no_such_lab' does not import "
                                        r"\(ModuleNotFoundError: No module named 'no_such_lab'\)$"):
        plugins.load(["no_such_lab"], where="x.yaml: plugins")


def test_the_runtime_environment_ships_only_modules_that_are_not_installed(tmp_path, monkeypatch):
    (tmp_path / "mylab").mkdir()
    (tmp_path / "mylab" / "__init__.py").write_text("")
    (tmp_path / "mylab" / "models.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.load(["mylab.models", "yaml"])  # yaml: an installed package, on every node already
    env = plugins.runtime_env(["mylab.models", "yaml"])
    assert [m.__name__ for m in env["py_modules"]] == ["mylab"]
    assert env["env_vars"] == {plugins.ENV: "mylab.models,yaml"}
    assert env["worker_process_setup_hook"] == "nas_lth.plugins.setup_worker"
    assert plugins.runtime_env([]) == {}


@pytest.mark.parametrize("arrays, message", [
    ((np.zeros((4, 2)), np.zeros(3), np.zeros((2, 2)), np.zeros(2)), "train split has inputs of shape (4, 2)"),
    ((np.zeros((4, 2)), np.array([0, 1, 2, 5]), np.zeros((2, 2)), np.zeros(2)), "train labels range 0..5"),
    ((np.full((4, 2), np.nan), np.zeros(4), np.zeros((2, 2)), np.zeros(2)), "non-finite"),
    ((np.zeros((4, 3)), np.zeros(4), np.zeros((2, 3)), np.zeros(2)), "inputs have shape (3,)"),
    ((np.zeros((4, 2)), np.full(4, 0.5), np.zeros((2, 2)), np.zeros(2)), "labels must be class ids"),
    ((np.zeros((4, 2)), np.zeros(4)), "must return (x_train, y_train, x_test, y_test)"),
])
def test_arrays_of_a_dataset_function_are_checked(arrays, message):
    with pytest.raises(DataError) as err:
        raw_from_arrays("blobs", arrays, num_classes=3, input_shape=(2,))
    assert message in str(err.value) and "dataset 'blobs'" in str(err.value)


def test_arrays_may_be_tensors():
    import torch

    raw = raw_from_arrays("blobs", (torch.zeros(4, 2), torch.tensor([0, 1, 2, 1]), np.zeros((2, 2)), [0, 2]), 3, (2,))
    assert raw.x_train.shape == (4, 2) and raw.y_train.dtype == np.int64 and list(raw.y_test) == [0, 2]


def test_a_plain_pytorch_model_is_pruned_as_it_is():
    """Its layers become masked layers in place (kinds by rule: the last linear layer is the output), its forward
    and parameters stay, an attribute overrides a kind or keeps a layer dense, and masks act."""
    import torch
    from torch import nn

    from nas_lth.models.layers import make_prunable, masked_layers, set_masks

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.conv = nn.Embedding(10, 4), nn.Conv1d(4, 4, 3)
            self.fc, self.out, self.aux = nn.Linear(8, 8), nn.Linear(8, 3), nn.Linear(3, 3)
            self.aux.nas_lth_kind = None  # stays dense: `out` is then the last pruned linear layer, the output
            self.conv.nas_lth_kind = "fc"  # any kind may be given (its prune rate then applies)

        def forward(self, tokens):
            h = self.conv(self.emb(tokens).transpose(1, 2)).flatten(1)
            return self.aux(self.out(self.fc(h).relu()))

    net, tokens = Net(), torch.randint(0, 10, (5, 4))
    before, weight = net(tokens), net.fc.weight
    make_prunable(net)
    assert {n: m.kind for n, m in masked_layers(net)} == {"emb": "embedding", "conv": "fc", "fc": "fc",
                                                          "out": "output"}
    assert type(net.aux) is nn.Linear and net.fc.weight is weight and torch.equal(net(tokens), before)
    masks = {n: torch.ones_like(m.weight) for n, m in masked_layers(net)}
    masks["fc"][:, :4] = 0
    set_masks(net, masks)
    assert (net.fc.weight[:, :4] == 0).all() and (net.fc.weight[:, 4:] != 0).any()
    # by rule, without attributes: the last linear layer in registration order is the output
    seq = make_prunable(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    assert [m.kind for _, m in masked_layers(seq)] == ["fc", "output"]


def test_plugins_given_to_the_api_join_the_space_whatever_form_it_takes(tmp_path, monkeypatch):
    """A path, a mapping or a SearchSpace: plugins= are imported and recorded with the space (space.json)."""
    from nas_lth.api import _space
    from nas_lth.space import SearchSpace

    (tmp_path / "apilab.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = {"name": "p", "plugins": ["yaml"], "fixed": {"model": "lenet300_100", "dataset": "digits"},
            "search": {"criterion": {"choice": ["large_final"]}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    for given in (data, tmp_path / "p.yaml", SearchSpace.from_dict(data)):
        assert _space(given, ["apilab"]).spec.plugins == ["yaml", "apilab"]
    assert sys.modules["apilab"].LOADED
