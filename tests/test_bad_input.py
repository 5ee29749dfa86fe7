"""Bad input to every CLI: one ``error: ...`` line on stderr, exit code 2, existing results untouched.

One table, one row per bad input. Each row writes its input files into ``tmp_path``, next to a storage
folder that already holds an experiment (``runs/existing/{trials,curves}/...``), and runs a real CLI
command (``python -m nas_lth.search | ticket | report | export | data``) as a subprocess. The row passes when the
command exits with code 2 and prints exactly one line (Ray's own start-up WARNING lines aside) that
starts with ``error:``, names the file/key/value at fault and carries no traceback, and when nothing
under ``tmp_path`` changed: the existing experiment byte for byte, no new experiment folder, no report,
no download cache.

No row should start Ray: every bad input is meant to be caught before the search starts trials. A
search that does run goes on for seconds to minutes, so each command gets ``TIMEOUT_S`` and is killed
with its whole session after that. Rows that show a library bug are strict xfails (see their reason).
"""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import io
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_search import session_pids

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60

# A valid search space: one trial of one epoch on the bundled digits, no retries. Rows change one thing.
BASE_SPACE = {
    "name": "fresh",
    "fixed": {"model": "lenet300_100", "dataset": "digits", "budget": 1, "eval_rounds": "last",
              "training": {"eval_every": 10}},
    "search": {"criterion": {"choice": ["large_final", "random"]}},
    "strategy": {"num_samples": 1, "searcher": "random", "max_failures": 0},
}
BASE_RECIPE = {"model": "lenet300_100", "dataset": "digits", "budget": 1}


def space(fixed: dict | None = None, search: dict | None = None, **top) -> dict:
    """BASE_SPACE with ``fixed`` keys merged in, ``search`` replaced, top-level keys set."""
    out = copy.deepcopy(BASE_SPACE)
    out["fixed"].update(fixed or {})
    if search is not None:
        out["search"] = search
    out.update(top)
    return out


def recipe(**changes) -> dict:
    return {**BASE_RECIPE, **changes}


def idx_gz(dims: list[int], data_bytes: int) -> bytes:
    """A gzip-compressed uint8 IDX file whose header says ``dims`` and that holds ``data_bytes`` bytes."""
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return gzip.compress(header + bytes(data_bytes), mtime=0)


# The four MNIST files, consistent except that train-images claims 100 images and holds 10.
TRUNCATED_MNIST = {
    "data/mnist/train-images-idx3-ubyte.gz": idx_gz([100, 28, 28], 10 * 28 * 28),
    "data/mnist/train-labels-idx1-ubyte.gz": idx_gz([100], 100),
    "data/mnist/t10k-images-idx3-ubyte.gz": idx_gz([10, 28, 28], 10 * 28 * 28),
    "data/mnist/t10k-labels-idx1-ubyte.gz": idx_gz([10], 10),
}
CORRUPT_REUTERS = {"data/reuters21578/reuters21578.tar.gz": random.Random(0).randbytes(4096)}
# a valid space saved as Latin-1 (an editor's legacy encoding), not UTF-8
LATIN1_SPACE = yaml.safe_dump(space(description="DESC")).replace("DESC", "caf\xe9").encode("latin-1")
FOREIGN_DIR = {"foreign/notes.txt": "my notes\n", "foreign/data/table.csv": "a,b\n1,2\n"}
SEARCHED_BUDGET = space(fixed={})
del SEARCHED_BUDGET["fixed"]["budget"]
FIFO = object()  # a `files` value: make a named pipe there (opening it for reading blocks until a writer comes)
# a tmpfs of 64 KiB, filled: every write under {tmp}/full fails with ENOSPC (No space left on device)
FULL_DISK = "mount -t tmpfs -o size=64k tmpfs {tmp}/full\nhead -c 64k /dev/zero > {tmp}/full/fill || true"
READ_ONLY_RUNS = "mount --bind {tmp}/runs {tmp}/runs && mount -o remount,bind,ro {tmp}/runs"


def trials_parquet(**row) -> bytes:
    """A real trials-table file (the store's schema) holding one completed row of BASE_SPACE's recipe."""
    import io

    import pyarrow.parquet as pq

    from nas_lth.store.schema import TRIAL_SCHEMA, to_table

    base = {"experiment": "old", "trial_id": "t0", "model": "lenet300_100", "dataset": "digits", "budget": 1.0,
            "criterion": "random", "stop_at": "end", "status": "completed", "objective": 0.9, "val_acc": 0.9,
            "message": "", "eval_rounds": "last"}
    buf = io.BytesIO()
    pq.write_table(to_table([{**base, **row}], TRIAL_SCHEMA), buf)
    return buf.getvalue()


def stored_ticket(digest: str | None = None) -> bytes:
    """A real ticket file of a LeNet-300-100 for digits, as the search stores it; ``digest`` replaces
    the recorded mask digest (a file whose mask no longer matches it)."""
    import torch

    from nas_lth import export
    from nas_lth.models import build_model, masked_layers

    model = build_model("lenet300_100", (1, 8, 8), 10, seed=0)
    masks = {n: (torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(0)) < 0.2).float()
             for n, m in masked_layers(model)}
    spec = export.model_spec("lenet300_100", (1, 8, 8), 10, {}, None)
    prov = {"experiment": "exp", "trial_id": "t0", "model": "lenet300_100", "dataset": "digits", "seed": 0,
            "criterion": "random", "round": 1}
    ticket = export.pack(spec, masks, {"end": model.state_dict()}, prov)
    if digest is not None:
        ticket["provenance"]["mask_digest"] = digest
    return export.to_bytes(ticket)


def experiment_with_ticket(digest: str | None = None) -> dict:
    """`files` of an experiment ``{tmp}/exp`` with one completed trial t0 and its stored ticket."""
    return {"exp/trials/t0.parquet": lambda: trials_parquet(experiment="exp", weights_remaining=0.2),
            "exp/tickets/t0.pt": lambda: stored_ticket(digest)}


@dataclass(frozen=True)
class Case:
    """``argv`` (after ``python``) and ``expect`` may use ``{tmp}`` for the test's tmp_path. ``files``
    maps paths relative to tmp_path to their content: bytes, text, or anything else as YAML."""

    argv: tuple[str, ...]
    expect: str
    files: dict = field(default_factory=dict)
    # shell lines run as root of a private mount namespace (``unshare -rm``) before the command, e.g.
    # to mount a full tmpfs or make a folder read-only; whatever they mount is gone when it ends
    setup: str = ""


def search(expect: str, body=None, *extra: str, files: dict | None = None, storage: str = "{tmp}/runs",
           setup: str = "") -> Case:
    argv = ("-m", "nas_lth.search", "{tmp}/space.yaml", "--storage", storage, "--no-dashboard", "--num-cpus", "1",
            *extra)
    return Case(argv, expect, {"space.yaml": BASE_SPACE if body is None else body, **(files or {})}, setup)


def ticket(expect: str, body=None, *extra: str, files: dict | None = None) -> Case:
    return Case(("-m", "nas_lth.ticket", "{tmp}/recipe.yaml", *extra), expect,
                {**({} if body is None else {"recipe.yaml": body}), **(files or {})})


def report(expect: str, target: str, files: dict | None = None) -> Case:
    return Case(("-m", "nas_lth.report", target, "-o", "{tmp}/report"), expect, files or {})


def export_cli(expect: str, *args: str) -> Case:
    return Case(("-m", "nas_lth.export", "{tmp}/runs/existing", *args), expect, {})


def data_info(expect: str, *args: str, files: dict | None = None) -> Case:
    return Case(("-m", "nas_lth.data", "info", *args), expect, files or {})


# plugin modules for the bad-input table: written under the command's working directory (python -m puts it on
# sys.path), each breaking one rule of a user's model or dataset
PLUGIN_SOURCES = {
    "twice": "import nas_lth\n\n@nas_lth.register_model('lenet300_100')\ndef mine(input_shape, num_classes):\n"
             "    raise AssertionError('never built')\n",
    # its only layer is marked to stay dense (nas_lth_kind = None): nothing is left to prune
    "flat": "import math\nfrom torch import nn\nimport nas_lth\n\n@nas_lth.register_model('flat_mlp')\n"
            "def flat(input_shape, num_classes):\n    layer = nn.Linear(math.prod(input_shape), num_classes)\n"
            "    layer.nas_lth_kind = None\n    return nn.Sequential(nn.Flatten(), layer)\n",
    "raises": "import nas_lth\n\n@nas_lth.register_model('broken')\ndef broken(input_shape, num_classes):\n"
              "    raise RuntimeError('weights file missing')\n",
    "badlabels": "import numpy as np\nimport nas_lth\n\n@nas_lth.register_dataset('blobs', num_classes=3, "
                 "input_shape=(4,))\ndef blobs():\n    x = np.zeros((30, 4), np.float32)\n"
                 "    y = np.arange(30) % 4\n    return x, y, x, y\n",
    "short": "import numpy as np\nimport nas_lth\n\n@nas_lth.register_dataset('blobs', num_classes=3, "
             "input_shape=(4,))\ndef blobs():\n    x = np.zeros((30, 4), np.float32)\n"
             "    return x, np.zeros(29, np.int64), x, np.zeros(30, np.int64)\n",
}


DATA_DIR = ("--data-dir", "{tmp}")
FEATURES = np.arange(120, dtype=np.float32).reshape(30, 4)
LABELS = np.arange(30) % 3


def npz(**changed) -> bytes:
    """A ``.npz`` file for dataset ``arrays``: 30 examples of 4 features in 3 classes, ``changed`` arrays
    replaced (None: left out)."""
    arrays = {"x_train": FEATURES, "y_train": LABELS, "x_test": FEATURES, "y_test": LABELS, **changed}
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in arrays.items() if v is not None})
    return buf.getvalue()


def arrays_space(file: str = "d.npz") -> dict:
    return {**BASE_SPACE, "fixed": {**BASE_SPACE["fixed"], "dataset": "arrays", "dataset_options": {"file": file}}}


def plugin(name: str) -> dict:
    return {"cwd/lab/__init__.py": "", f"cwd/lab/{name}.py": PLUGIN_SOURCES[name]}


def bug(reason: str):
    return pytest.mark.xfail(strict=True, reason=f"bug: {reason}")


CASES = [
    # -- the search-space file
    pytest.param(search("space.yaml: malformed YAML at line 3", "name: x\nfixed: {model: [lenet300_100\n"),
                 id="space-malformed-yaml"),
    pytest.param(search("space.yaml: expected a mapping", "- name\n- fixed\n"), id="space-top-level-list"),
    pytest.param(search("space.yaml: trials: unknown key", space(trials=3)), id="space-unknown-top-level-key"),
    pytest.param(search("fixed.learning_rate: unknown key", space({"learning_rate": 0.1})),
                 id="space-unknown-key-in-fixed"),
    pytest.param(search("unknown criterion 'magic'", space(search={"criterion": {"choice": ["large_final", "magic"]}})),
                 id="space-unknown-criterion"),
    pytest.param(search("unknown model 'lenet5'", space({"model": "lenet5"})), id="space-unknown-model"),
    pytest.param(search("unknown dataset 'imagenet'", space({"dataset": "imagenet"})), id="space-unknown-dataset"),
    pytest.param(search("rate for 'fc' is 1.0", space({"prune_rate": {"fc": 1.0}})), id="space-fixed-rate-1.0"),
    pytest.param(search("rate for 'fc' is -0.1", space({"prune_rate": {"fc": -0.1}})), id="space-fixed-rate-negative"),
    pytest.param(search("search.prune_rate.fc: ", space(search={"prune_rate.fc": {"float": [0.1, 1.0]}})),
                 id="space-searched-rate-up-to-1.0"),
    pytest.param(search("search.prune_rate.fc: ", space(search={"prune_rate.fc": {"float": [-0.1, 0.5]}})),
                 id="space-searched-rate-from-negative"),
    pytest.param(search("search: the search space is empty", space(search={})), id="space-empty-search"),
    pytest.param(search("stop_at 'halfway'", space(search={"stop_at": {"choice": [0, "halfway"]}})),
                 id="space-bad-stop-at"),
    pytest.param(search("search.lr: not a recipe key", space(search={"lr": {"float": [1e-4, 1e-2]}})),
                 id="space-search-key-not-a-recipe-key"),
    pytest.param(search("stop_at", space(search={"stop_at": {"choice": ["5ep", "end"]}})),  # budget: 1 epoch
                 id="space-stop-at-beyond-budget"),
    pytest.param(search("budget", space({"budget": float("inf")})), id="space-infinite-budget"),
    pytest.param(search("space.yaml", LATIN1_SPACE), id="space-not-utf8"),
    # -- search options and storage
    pytest.param(search("--num-samples must be >= 1, got 0", None, "--num-samples", "0"), id="search-num-samples-0"),
    pytest.param(search("--cpus-per-trial 0.0: Input should be greater than or equal to 0.0001", None,
                        "--cpus-per-trial", "0"), id="search-cpus-per-trial-0"),
    pytest.param(search("--data-dir {tmp}/nodata: no such directory", None, "--data-dir", "{tmp}/nodata"),
                 id="search-missing-data-dir"),
    pytest.param(search("mnist/train-images-idx3-ubyte.gz", space({"dataset": "mnist"}), "--data-dir", "{tmp}/data",
                        files=TRUNCATED_MNIST), id="search-truncated-mnist"),
    pytest.param(search("--storage {tmp}/blocker/runs", None, files={"blocker": "a regular file\n"},
                        storage="{tmp}/blocker/runs"), id="search-storage-under-a-file"),
    pytest.param(search("--storage foo://bar", None, storage="foo://bar"), id="search-storage-unknown-scheme"),
    pytest.param(search("'existing' already exists", None, "--name", "existing"), id="search-existing-without-resume"),
    pytest.param(search("--resume: no experiment 'ghost'", None, "--resume", "--name", "ghost"),
                 id="search-resume-missing-experiment"),
    pytest.param(search("--device 'bogus'", None, "--device", "bogus"), id="search-unknown-device"),
    # -- hostile YAML: aliases (billion laughs), duplicate keys, deep nesting, a device as the file
    pytest.param(search("YAML aliases (*name) are not allowed",
                        "name: x\nfixed:\n  model: lenet300_100\n  dataset: digits\n  model_options:\n"
                        "    a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                        "    c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nsearch: {criterion: {choice: [random]}}\n"),
                 id="space-yaml-aliases"),
    pytest.param(search("duplicate key 'search' at line", yaml.safe_dump(BASE_SPACE, sort_keys=False)
                        + "search: {rounds: {int: [1, 9]}}\n"), id="space-duplicate-key"),
    pytest.param(search("nested more than 50 levels", "name: x\nfixed: " + "[" * 200 + "]" * 200 + "\n"),
                 id="space-deep-nesting"),
    pytest.param(Case(("-m", "nas_lth.search", "/dev/zero", "--storage", "{tmp}/runs"),
                      "/dev/zero: not a regular file"), id="space-is-a-device"),
    pytest.param(search("space.yaml: character U+0000 at position 7 is not allowed in YAML", b"name: x\x00\n"),
                 id="space-nul-byte"),
    pytest.param(ticket("recipe.yaml: character U+0007 at position 7 is not allowed in YAML", b"model: \x07\n"),
                 id="recipe-bel-byte"),
    pytest.param(search("--storage '': give a folder", None, storage=""), id="search-empty-storage"),
    # -- plugins: the user's modules, models and datasets
    pytest.param(search("--plugin: plugin 'nope' does not import (ModuleNotFoundError: No module named 'nope')",
                        None, "--plugin", "nope"), id="search-plugin-missing"),
    pytest.param(search("space.yaml: plugins: 'not a module' is not a module name",
                        {**BASE_SPACE, "plugins": ["not a module"]}), id="space-plugin-not-a-module-name"),
    pytest.param(search("plugin 'lab.twice' does not import (ValueError: model 'lenet300_100' registered twice)",
                        None, "--plugin", "lab.twice", files=plugin("twice")),
                 id="search-plugin-registers-a-taken-name"),
    pytest.param(search("fixed.model: model 'flat_mlp' has no prunable layer",
                        {**BASE_SPACE, "plugins": ["lab.flat"], "fixed": {**BASE_SPACE["fixed"], "model": "flat_mlp"}},
                        files=plugin("flat")), id="search-plugin-model-without-prunable-layers"),
    pytest.param(search("fixed.model: model 'broken' cannot be built for digits (RuntimeError: weights file missing)",
                        {**BASE_SPACE, "plugins": ["lab.raises"], "fixed": {**BASE_SPACE["fixed"], "model": "broken"}},
                        files=plugin("raises")), id="search-plugin-model-factory-raises"),
    pytest.param(search("dataset 'blobs': train labels range 0..3; allowed 0..2",
                        {**BASE_SPACE, "plugins": ["lab.badlabels"], "fixed": {**BASE_SPACE["fixed"],
                                                                               "dataset": "blobs"}},
                        files=plugin("badlabels")), id="search-plugin-dataset-labels-out-of-range"),
    pytest.param(search("dataset 'blobs': train split has inputs of shape (30, 4) and labels of shape (29,)",
                        {**BASE_SPACE, "plugins": ["lab.short"], "fixed": {**BASE_SPACE["fixed"], "dataset": "blobs"}},
                        files=plugin("short")), id="search-plugin-dataset-lengths-differ"),
    # -- ladder trials (strategy.fidelity: rounds)
    pytest.param(search("strategy.min_weights: 0.001 is out of reach: the largest rates the space allows (fc 0.3, "
                        "output 0.1 per round) leave",
                        space({"rounds": 3, "eval_rounds": "all"},
                              search={"prune_rate.fc": {"float": [0.2, 0.3]}},
                              strategy={**BASE_SPACE["strategy"], "fidelity": "rounds", "min_weights": 0.001})),
                 id="search-ladder-floor-out-of-reach"),
    pytest.param(search("fidelity: rounds: give min_weights", space(strategy={**BASE_SPACE["strategy"],
                                                                              "fidelity": "rounds"})),
                 id="search-ladder-without-floor"),
    # -- constraints of a multi-objective search
    pytest.param(search("strategy.constraints.0.metric: Input should be", space(strategy={
        **BASE_SPACE["strategy"], "objectives": [{"metric": "val_acc", "mode": "max"},
                                                 {"metric": "weights_remaining", "mode": "min"}],
        "constraints": [{"metric": "val_loss", "min": 0.1}]})), id="search-constraint-unknown-metric"),
    pytest.param(search("strategy: constraints belong to a multi-objective search", space(strategy={
        **BASE_SPACE["strategy"], "constraints": [{"metric": "val_acc", "min_vs_dense": -0.02}]})),
                 id="search-constraint-without-objectives"),
    # -- dataset arrays: a .npz file of the user's arrays (under --data-dir)
    pytest.param(search("train split has inputs of shape (30, 4) and labels of shape (29,)", arrays_space(),
                        *DATA_DIR, files={"d.npz": npz(y_train=LABELS[:29])}), id="search-arrays-lengths-differ"),
    pytest.param(search("test inputs hold non-finite or non-numeric values", arrays_space(), *DATA_DIR,
                        files={"d.npz": npz(x_test=FEATURES * float("nan"))}), id="search-arrays-non-finite"),
    pytest.param(search("train labels range 1..3; allowed 0..2 (num_classes=3)", arrays_space(), *DATA_DIR,
                        files={"d.npz": npz(num_classes=3, y_train=LABELS + 1)}),
                 id="search-arrays-labels-out-of-range"),
    pytest.param(search("d.npz: not a readable .npz file of plain arrays (Object arrays cannot be loaded",
                        arrays_space(), *DATA_DIR, files={"d.npz": npz(x_train=FEATURES.astype(object))}),
                 id="search-arrays-pickled-object-array"),
    pytest.param(search("d.npz: no array 'y_test'", arrays_space(), *DATA_DIR, files={"d.npz": npz(y_test=None)}),
                 id="search-arrays-missing-array"),
    pytest.param(search("option file='d.npz' is relative", arrays_space(), files={"d.npz": npz()}),
                 id="search-arrays-relative-path-without-data-dir"),
    pytest.param(search("{tmp}/nowhere.npz: No such file", arrays_space("nowhere.npz"), *DATA_DIR),
                 id="search-arrays-missing-file"),
    pytest.param(ticket("--plugin: plugin 'nope' does not import", BASE_RECIPE, "--plugin", "nope"),
                 id="ticket-plugin-missing"),
    pytest.param(export_cli("--plugin: plugin 'nope' does not import", "--best", "--plugin", "nope"),
                 id="export-plugin-missing"),
    pytest.param(search("--progress-every 0.0", None, "--progress-every", "0"), id="search-progress-every-zero"),
    pytest.param(search("--progress-every nan", None, "--progress-every", "nan"), id="search-progress-every-nan"),
    pytest.param(search("--progress-every -1.0", None, "--progress-every", "-1"), id="search-progress-every-negative"),
    # -- --warm-start: a missing, foreign or incompatible experiment
    pytest.param(search("--warm-start {tmp}/nowhere: ", None, "--warm-start", "{tmp}/nowhere"),
                 id="search-warm-start-missing"),
    pytest.param(search("--warm-start {tmp}/foreign: not a nas_lth experiment", None, "--warm-start", "{tmp}/foreign",
                        files=FOREIGN_DIR), id="search-warm-start-foreign"),
    pytest.param(search("trial t0: search.criterion = 'snip' is not one of", None, "--warm-start", "{tmp}/old",
                        files={"old/trials/t0.parquet": trials_parquet(criterion="snip")}),
                 id="search-warm-start-value-outside-the-space"),
    pytest.param(search("--warm-start {tmp}/old: fixed.budget is 1", None, "--warm-start", "{tmp}/old",
                        files={"old/trials/t0.parquet": trials_parquet(budget=3.0)}),
                 id="search-warm-start-other-fixed-recipe"),
    pytest.param(search("--warm-start: only for a new experiment", None, "--resume", "--name", "existing",
                        "--warm-start", "{tmp}/old", files={"old/trials/t0.parquet": trials_parquet()}),
                 id="search-warm-start-with-resume"),
    # -- strategy.confirm: the confirmation stage's recipes and seeds
    pytest.param(search("strategy.confirm.top: ", space(strategy={**BASE_SPACE["strategy"], "confirm": {"top": 0}})),
                 id="space-confirm-top-0"),
    pytest.param(search("strategy.confirm.seeds: ", space(strategy={**BASE_SPACE["strategy"],
                                                                    "confirm": {"top": 1, "seeds": []}})),
                 id="space-confirm-seeds-empty"),
    pytest.param(search("seed 4294967296 out of range", space(strategy={**BASE_SPACE["strategy"],
                                                                        "confirm": {"top": 1, "seeds": [1, 2**32]}})),
                 id="space-confirm-seed-out-of-range"),
    pytest.param(search("strategy.confirm.seeds: seed 0 is one the search runs with",
                        space(strategy={**BASE_SPACE["strategy"], "confirm": {"top": 1, "seeds": [0, 1]}})),
                 id="space-confirm-seed-of-the-search"),
    pytest.param(search("--seed", None, "--seed", "-1"), id="search-negative-seed"),
    pytest.param(search("--name", None, "--name", "../escape"), id="search-name-outside-storage"),
    pytest.param(search("--num-samples", None, "--num-samples", "many"), id="search-num-samples-not-an-int"),
    # -- tables are data: a crafted trial id is not followed as a path
    pytest.param(Case(("-m", "nas_lth.export", "{tmp}/evil", "--best"), "is not a plain name",
                      {"evil/trials/t0.parquet": trials_parquet(trial_id="../../../outside")}),
                 id="export-trial-id-with-a-path"),
    pytest.param(Case(("-m", "nas_lth.export", "{tmp}/evil", "--best"), "is not a plain name",
                      {"evil/trials/t0.parquet": trials_parquet(trial_id="/etc/passwd")}),
                 id="export-absolute-trial-id"),
    # -- issue 17: numbers out of any sensible range, resources, devices, storage, paths (each was a
    #    traceback, a hang, or accepted and then every trial failed)
    pytest.param(search("fixed.val_size", space({"val_size": 2**64})), id="space-val-size-2**64"),
    pytest.param(search("space.yaml: fixed.val_size: val_size=100000 for digits", space({"val_size": 100000})),
                 id="space-val-size-beyond-the-data"),
    pytest.param(search("fixed.training.lr", space({"training": {"eval_every": 10, "lr": 1e308}})),
                 id="space-lr-1e308"),
    pytest.param(search("fixed.training.weight_decay", space({"training": {"eval_every": 10, "weight_decay": 1e308}})),
                 id="space-weight-decay-1e308"),
    pytest.param(search("fixed.budget", space({"budget": 2**64})), id="space-budget-2**64"),
    pytest.param(search("fixed.budget", space({"budget": 1e308})), id="space-budget-1e308"),
    pytest.param(search("fixed.score_batches", space({"score_batches": 2**64})), id="space-score-batches-2**64"),
    pytest.param(search("fixed.rewind_to", space({"rewind_to": 2**64})), id="space-fixed-rewind-to-2**64"),
    pytest.param(search("fixed.rewind_to: rewind_to 500 is beyond the budget of 20 iterations",  # not search.stop_at
                        space({"rewind_to": 500}, search={"stop_at": {"choice": [0, 10]}})),
                 id="space-fixed-rewind-to-beyond-budget"),
    # every stopping point against every budget it can meet: stop_at 50 fits 1 epoch of batch 10 (~160
    # iterations) but not of batch 1000 (2 iterations); each dimension alone is fine
    pytest.param(search("search.stop_at: stop_at 50 is iteration 50, beyond the budget of 2 iterations",
                        space(search={"stop_at": {"choice": [0, 50]}, "training.batch_size": {"choice": [10, 1000]}})),
                 id="space-stop-at-beyond-budget-in-combination"),
    pytest.param(search("search.rewind_to: rewind_to 10 is beyond the budget of 2 iterations",  # 0.1 epoch
                        SEARCHED_BUDGET | {"search": {"rewind_to": {"int": [0, 10]}, "budget": {"choice": [1, 0.1]}}}),
                 id="space-rewind-to-beyond-a-searched-budget"),
    pytest.param(search("space.yaml: fixed.dataset_options: ", space({"dataset_options": {"bogus": 1}})),
                 id="space-bad-dataset-options"),
    pytest.param(search("search.prune_rate.fc.step", space(search={"prune_rate.fc": {"float": [0.1, 0.5],
                                                                                     "step": float("inf")}})),
                 id="space-float-step-inf"),
    pytest.param(search("search.prune_rate.fc.step", space(search={"prune_rate.fc": {"float": [0.1, 0.5],
                                                                                     "step": 1e-300}})),
                 id="space-float-step-1e-300"),
    pytest.param(search("search.rounds.step", space(search={"rounds": {"int": [1, 3], "step": 0.5}})),
                 id="space-int-step-0.5"),
    pytest.param(Case(("-m", "nas_lth.search", "{tmp}/space.yaml", "--storage", "{tmp}/runs"),
                      "{tmp}/space.yaml: not a regular file", {"space.yaml": FIFO}), id="space-is-a-fifo"),
    pytest.param(Case(("-m", "nas_lth.search", "{tmp}/sp\udcffce.yaml", "--storage", "{tmp}/runs", "--no-dashboard"),
                      "not valid UTF-8", {"sp\udcffce.yaml": BASE_SPACE}), id="space-path-not-utf8"),
    pytest.param(search("--device 'mps'", None, "--device", "mps"), id="search-device-mps-missing"),
    pytest.param(search("--device 'meta'", None, "--device", "meta"), id="search-device-meta"),
    pytest.param(ticket("--device 'meta'", recipe(), "--device", "meta"), id="ticket-device-meta"),
    pytest.param(search("--gpus-per-trial nan", None, "--gpus-per-trial", "nan"), id="search-gpus-per-trial-nan"),
    pytest.param(search("--cpus-per-trial nan", None, "--cpus-per-trial", "nan"), id="search-cpus-per-trial-nan"),
    pytest.param(search("--cpus-per-trial 1e-300", None, "--cpus-per-trial", "1e-300"),
                 id="search-cpus-per-trial-1e-300"),
    pytest.param(search("--num-cpus", None, "--num-cpus", str(2**64)), id="search-num-cpus-2**64"),
    pytest.param(search("--address 127.0.0.1:1: ", None, "--address", "127.0.0.1:1"),
                 id="search-address-nobody-listens"),
    pytest.param(search("--storage mock:///x", None, storage="mock:///x"), id="search-storage-in-memory-mock"),
    pytest.param(search("--storage {tmp}/full/runs", None, files={"full/": None}, storage="{tmp}/full/runs",
                        setup=FULL_DISK), id="search-storage-disk-full"),
    pytest.param(Case(("-m", "nas_lth.export", "{tmp}/exp", "--trial", "t0", "-o", "{tmp}/full/t0.pt"),
                      "{tmp}/full/t0.pt: cannot write", {**experiment_with_ticket(), "full/": None}, FULL_DISK),
                 id="export-output-disk-full"),
    pytest.param(search("--storage {tmp}/runs: cannot write", None, "--resume", "--name", "existing",
                        setup=READ_ONLY_RUNS), id="search-resume-read-only-storage"),
    pytest.param(Case(("-m", "nas_lth.export", "{tmp}/exp", "--trial", "t0", "-o", "{tmp}/t0.pt"), "mask digest",
                      experiment_with_ticket(digest="0" * 16)), id="export-mask-digest-mismatch"),
    # -- the ticket CLI (a single recipe)
    pytest.param(ticket("recipe.yaml: cannot read recipe"), id="ticket-missing-recipe"),
    pytest.param(ticket("recipe.yaml: malformed YAML", "model: lenet300_100\n  dataset: digits\n"),
                 id="ticket-malformed-yaml"),
    pytest.param(ticket("stop_at 100000 is iteration 100000, beyond the budget", recipe(stop_at=100000),
                        "--device", "cpu"), id="ticket-stop-at-beyond-budget"),
    pytest.param(ticket("--device 'bogus'", recipe(), "--device", "bogus"), id="ticket-unknown-device"),
    pytest.param(ticket("reuters21578/reuters21578.tar.gz", recipe(model="bow_mlp", dataset="reuters-r8"),
                        "--device", "cpu", "--data-dir", "{tmp}/data", files=CORRUPT_REUTERS),
                 id="ticket-corrupt-reuters-tarball"),
    pytest.param(ticket("seed", recipe(seed=-1), "--device", "cpu"), id="ticket-negative-seed"),
    pytest.param(ticket("recipe.yaml: dataset_options: dataset digits takes no options",
                        recipe(dataset_options={"bogus": 1}), "--device", "cpu"), id="ticket-bad-dataset-options"),
    pytest.param(ticket("recipe.yaml: val_size: ", recipe(val_size=100000), "--device", "cpu"),
                 id="ticket-val-size-beyond-the-data"),
    # -- the data CLI
    pytest.param(data_info("unknown dataset 'imagenet'", "imagenet"), id="data-unknown-dataset"),
    pytest.param(data_info("data directory {tmp}/nodata does not exist", "mnist", "--data-dir", "{tmp}/nodata"),
                 id="data-missing-data-dir"),
    pytest.param(data_info("mnist/train-images-idx3-ubyte.gz: truncated IDX file", "mnist", "--data-dir",
                           "{tmp}/data", "--no-verify", files=TRUNCATED_MNIST), id="data-truncated-mnist-idx"),
    pytest.param(data_info("reuters21578/reuters21578.tar.gz: corrupt or not a gzip tarball", "reuters-r8",
                           "--data-dir", "{tmp}/data", "--no-verify", files=CORRUPT_REUTERS),
                 id="data-corrupt-reuters-tarball"),
    # -- the report CLI
    pytest.param(report("{tmp}/empty: not a nas_lth experiment", "{tmp}/empty", {"empty/": None}),
                 id="report-empty-dir"),
    pytest.param(report("{tmp}/foreign: not a nas_lth experiment", "{tmp}/foreign", FOREIGN_DIR),
                 id="report-foreign-dir"),
    pytest.param(report("{tmp}/nowhere: no such experiment directory", "{tmp}/nowhere"), id="report-missing-dir"),
    pytest.param(report("{tmp}/runs/existing: no trial rows yet", "{tmp}/runs/existing"),
                 id="report-unreadable-trial-files"),
    # -- the export CLI: the output name is checked before anything is read
    pytest.param(export_cli("-o {tmp}/cwd/ticket.pt: --compact writes a torch.export program: give it a .pt2 name",
                            "--best", "--compact", "-o", "{tmp}/cwd/ticket.pt"), id="export-compact-to-pt-name"),
    pytest.param(export_cli("-o {tmp}/cwd/ticket.pt2: a .pt2 name is for a compact program", "--best", "-o",
                            "{tmp}/cwd/ticket.pt2"), id="export-ticket-to-pt2-name"),
]


# ------------------------------------------------------------------ helpers


def write_files(root: Path, files: dict) -> None:
    for rel, content in files.items():
        path = root / rel
        if rel.endswith("/"):  # an empty folder
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content = content()
        if content is FIFO:
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False))


def tree(root: Path) -> dict[str, str]:
    """Every folder and file under ``root``: relative path -> 'dir' or the file's SHA-256."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for d in dirnames:
            out[str((base / d).relative_to(root)) + "/"] = "dir"
        for f in filenames:
            p = base / f
            # reading a named pipe would block: a FIFO is compared by its kind only
            out[str(p.relative_to(root))] = "fifo" if p.is_fifo() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@functools.cache
def _private_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


def command(argv: list[str], setup: str) -> list[str]:
    """``python *argv``, after ``setup`` in a private mount namespace when a row has one."""
    if not setup:
        return [sys.executable, *argv]
    if not _private_mounts():
        pytest.skip("needs unshare(1) and user namespaces for a private mount namespace")
    return ["unshare", "-rm", "sh", "-ec", f'{setup}\nexec "$@"', "setup", sys.executable, *argv]


def run_cli(argv: list[str], cwd: Path, env: dict, setup: str = "") -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python *argv`` in its own session; kill the session after TIMEOUT_S or if anything of it
    outlives the command (a Ray instance it started)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(command(argv, setup), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, encoding="utf-8", errors="backslashreplace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    seconds = time.monotonic() - t0
    deadline = time.monotonic() + 10
    while (left := session_pids(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not timed_out, f"{argv} still running after {TIMEOUT_S} s (it started trials?); stdout:\n{out[-2000:]}"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), seconds


# ------------------------------------------------------------------ the table


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_exit_2_and_changes_nothing(tmp_path, case: Case):
    # an experiment that must survive every bad command untouched
    write_files(tmp_path, {
        "runs/existing/trials/abc.parquet": b"PAR1 rows of an earlier search PAR1",
        "runs/existing/curves/abc.parquet": b"PAR1 curves of an earlier search PAR1",
        "runs/existing/tuner.pkl": b"tune state",
        "cwd/": None,  # the command's working directory: no runs/ or reports/ may appear in it
    })
    write_files(tmp_path, case.files)
    before = tree(tmp_path)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "PYTHONDONTWRITEBYTECODE": "1",  # an imported plugin module must not leave __pycache__ behind
           "NAS_LTH_CACHE": str(tmp_path / "cache"),  # a download attempt would show up as a new folder
           "RAY_ADDRESS": "local"}  # never join a Ray instance someone else started on this machine
    env.pop("NAS_LTH_DATA", None)
    argv = [a.format(tmp=tmp_path) for a in case.argv]
    proc, seconds = run_cli(argv, tmp_path / "cwd", env, case.setup.format(tmp=tmp_path))

    shown = (f"exit {proc.returncode} after {seconds:.1f} s\nstdout:\n{proc.stdout[-2000:]}\n"
             f"stderr:\n{proc.stderr[-3000:]}")
    assert proc.returncode == 2, shown
    assert "Traceback" not in proc.stderr, shown
    lines = [line for line in proc.stderr.splitlines()  # warnings (Ray's, the search's own) are not errors
             if line.strip() and " WARNING " not in line and not line.startswith("warning: ")]
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: "), shown
    expect = case.expect.format(tmp=tmp_path)
    assert expect in lines[0], f"{expect!r} not in {lines[0]!r}"

    after = tree(tmp_path)
    assert after == before, {
        "new": sorted(set(after) - set(before)),
        "gone": sorted(set(before) - set(after)),
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
    }
