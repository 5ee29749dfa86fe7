"""Tests for nas_lth.data: tiny files in the real formats, built here; no network (urlopen is faked)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_lth.data import DATASETS, FileSpec, dataset_names, fetch, load_dataset, register, resolve_data_dir
from nas_lth.data.idx import parse_idx
from nas_lth.errors import DataError, UserError

REPO = Path(__file__).resolve().parents[1]
_ENV_DATA_AT_IMPORT = os.environ.get("NAS_LTH_DATA")  # read before the autouse fixture clears it
MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the user's data dir or cache, or reaches the network."""
    monkeypatch.delenv("NAS_LTH_DATA", raising=False)
    monkeypatch.setenv("NAS_LTH_CACHE", str(tmp_path / "cache"))

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(fetch, "urlopen", no_network)


# ---------------------------------------------------------------- builders of real-format files


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    return header + arr.astype(dtype).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload))
    return path


def make_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """Image k is filled with the value k (train) or 100 + k (test), so tests can tell images apart
    after standardisation; labels are k % 10."""
    train = np.repeat(np.arange(n_train, dtype=np.uint8), 28 * 28).reshape(n_train, 28, 28)
    test = np.repeat(np.arange(100, 100 + n_test, dtype=np.uint8), 28 * 28).reshape(n_test, 28, 28)
    write_gz(root / MNIST_FILES["train_x"], idx_bytes(train))
    write_gz(root / MNIST_FILES["train_y"], idx_bytes(np.arange(n_train, dtype=np.uint8) % 10))
    write_gz(root / MNIST_FILES["test_x"], idx_bytes(test))
    write_gz(root / MNIST_FILES["test_y"], idx_bytes(np.arange(n_test, dtype=np.uint8) % 10))
    return root


def image_ids(ds, split) -> list[int]:
    """Undo the standardisation of a tiny MNIST split and read back each image's fill value."""
    mean, std = ds.meta["mean"][0], ds.meta["std"][0]
    x = getattr(ds, split).x[:, 0, 0, 0].double()
    return [round(v) for v in ((x * std + mean) * 255).tolist()]


def cifar_tarball(path: Path, per_batch: int = 4, n_test: int = 6, members: dict | None = None) -> Path:
    rng = np.random.default_rng(0)

    def batch(n: int) -> bytes:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        return pickle.dumps({b"data": data, b"labels": [i % 10 for i in range(n)]}, protocol=2)

    files = {f"data_batch_{i}": batch(per_batch) for i in range(1, 6)}
    files["test_batch"] = batch(n_test)
    files["batches.meta"] = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2)
    files.update(members or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            if data is None:
                continue
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- registry


def test_registry_lists_the_datasets():
    assert {"digits", "mnist", "fashion-mnist", "cifar10"} <= set(dataset_names())
    spec = DATASETS["mnist"]
    assert (spec.num_classes, spec.input_shape, spec.val_size) == (10, (1, 28, 28), 5000)
    assert [f.name for f in spec.files] == list(MNIST_FILES.values())
    assert spec.files[0].urls[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert all(len(f.sha256) == 64 for s in DATASETS.values() for f in s.files)


def test_unknown_dataset_lists_allowed_names():
    with pytest.raises(UserError, match="unknown dataset 'nope'.*digits.*mnist"):
        load_dataset("nope")
    with pytest.raises(UserError, match="unknown dataset 'nope'; allowed: .*reuters-r8"):
        DATASETS.get("nope")


def test_dataset_registry_refuses_a_duplicate_name():
    before = DATASETS["mnist"]
    with pytest.raises(ValueError, match="dataset 'mnist' registered twice"):
        register("mnist", num_classes=2, input_shape=(1,), val_size=1)(lambda paths: None)
    assert DATASETS["mnist"] is before  # the first registration stands
    with pytest.raises(TypeError):
        DATASETS["mnist"] = before  # read-only: only register() adds


# ---------------------------------------------------------------- MNIST / IDX


@pytest.mark.parametrize("layout", ["folder", "flat"])
def test_tiny_mnist_loads(tmp_path, layout):
    make_mnist(tmp_path / "mnist" if layout == "folder" else tmp_path)
    ds = load_dataset("mnist", tmp_path, val_size=5, verify=False)
    assert ds.sizes() == {"train": 15, "val": 5, "test": 10}
    assert ds.train.x.shape == (15, 1, 28, 28) and ds.test.x.shape == (10, 1, 28, 28)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert (ds.num_classes, ds.input_shape, ds.multilabel) == (10, (1, 28, 28), False)
    # standardised with the statistics of the training split (after the hold-out)
    assert abs(ds.train.x.mean().item()) < 1e-5 and abs(ds.train.x.std().item() - 1) < 1e-3
    train_ids = image_ids(ds, "train")
    assert np.isclose(ds.meta["mean"][0], np.mean(train_ids) / 255, atol=1e-6)
    assert image_ids(ds, "test") == list(range(100, 110))  # test set untouched, in file order
    assert ds.test.y.tolist() == [i % 10 for i in range(10)]
    assert [Path(f).name for f in ds.meta["files"]] == list(MNIST_FILES.values())


def test_val_split_is_seeded_and_disjoint(tmp_path):
    make_mnist(tmp_path / "mnist")
    a, b, c = (load_dataset("mnist", tmp_path, val_size=5, seed=s, verify=False) for s in (0, 0, 1))
    assert image_ids(a, "val") == image_ids(b, "val")
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert image_ids(a, "val") != image_ids(c, "val")
    assert sorted(image_ids(a, "train") + image_ids(a, "val")) == list(range(20))
    # labels travel with their images
    assert a.val.y.tolist() == [i % 10 for i in image_ids(a, "val")]


def test_local_files_are_checksummed_by_default(tmp_path):
    make_mnist(tmp_path / "mnist")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*SHA-256.*expected 440fcabf") as exc:
        load_dataset("mnist", tmp_path, val_size=5)
    assert "\n" not in str(exc.value)


def test_truncated_idx_names_the_file(tmp_path):
    root = make_mnist(tmp_path / "mnist")
    payload = gzip.decompress((root / MNIST_FILES["train_x"]).read_bytes())
    write_gz(root / MNIST_FILES["train_x"], payload[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated IDX file"):
        load_dataset("mnist", tmp_path, val_size=5, verify=False)


def test_wrong_magic(tmp_path):
    root = make_mnist(tmp_path / "mnist")
    # a label file (1 dim) where an image file (3 dims) belongs
    (root / MNIST_FILES["train_x"]).write_bytes((root / MNIST_FILES["train_y"]).read_bytes())
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: bad IDX magic number 0x00000801"):
        load_dataset("mnist", tmp_path, val_size=5, verify=False)
    with pytest.raises(DataError, match="bad IDX magic number 0x89504e47"):
        parse_idx(b"\x89PNG\r\n\x1a\n" + bytes(100), "x.png")


@pytest.mark.parametrize("damage", ["not_gzip", "cut_gzip"])
def test_bad_gzip(tmp_path, damage):
    root = make_mnist(tmp_path / "mnist")
    target = root / MNIST_FILES["test_y"]
    good = target.read_bytes()
    target.write_bytes(b"this is not gzip data" if damage == "not_gzip" else good[: len(good) // 2])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: not a valid gzip file") as exc:
        load_dataset("mnist", tmp_path, val_size=5, verify=False)
    assert "\n" not in str(exc.value)


def test_label_count_mismatch(tmp_path):
    root = make_mnist(tmp_path / "mnist")
    write_gz(root / MNIST_FILES["test_y"], idx_bytes(np.zeros(7, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: 7 labels for 10 images"):
        load_dataset("mnist", tmp_path, val_size=5, verify=False)


def test_parse_idx_dtypes_and_trailing_bytes():
    arr = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    out = parse_idx(idx_bytes(arr, code=0x0B), "x", ndim=2)
    assert out.dtype == np.int16 and np.array_equal(out, arr)
    f = parse_idx(idx_bytes(np.array([1.5, -2.0]), code=0x0D), "f")
    assert f.dtype == np.float32 and f.tolist() == [1.5, -2.0]
    with pytest.raises(DataError, match="x: IDX file has trailing bytes"):
        parse_idx(idx_bytes(arr, code=0x0B) + b"\0", "x")
    with pytest.raises(DataError, match="x: truncated IDX file .* header"):
        parse_idx(b"\0\0\x08\x03\0\0", "x")


# ---------------------------------------------------------------- CIFAR-10


def test_tiny_cifar_tarball(tmp_path):
    cifar_tarball(tmp_path / "cifar10" / "cifar-10-python.tar.gz")
    ds = load_dataset("cifar10", tmp_path, val_size=5, verify=False)
    assert ds.sizes() == {"train": 15, "val": 5, "test": 6}
    assert ds.train.x.shape == (15, 3, 32, 32) and ds.test.y.dtype == torch.int64
    assert len(ds.meta["mean"]) == 3 and len(ds.meta["std"]) == 3
    assert ds.meta["classes"] == [f"c{i}" for i in range(10)]
    assert ds.test.y.tolist() == [i % 10 for i in range(6)]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupted_cifar_tarball(tmp_path, damage):
    path = cifar_tarball(tmp_path / "cifar10" / "cifar-10-python.tar.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x1f\x8b" + bytes(500))
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: corrupt or not a gzip tarball") as exc:
        load_dataset("cifar10", tmp_path, val_size=5, verify=False)
    assert "\n" not in str(exc.value)


def test_cifar_missing_member_and_bad_shapes(tmp_path):
    cifar_tarball(tmp_path / "a" / "cifar-10-python.tar.gz", members={"data_batch_3": None})
    with pytest.raises(DataError, match="lacks cifar-10-batches-py/data_batch_3"):
        load_dataset("cifar10", tmp_path / "a", val_size=5, verify=False)
    bad = pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, protocol=2)
    cifar_tarball(tmp_path / "b" / "cifar-10-python.tar.gz", members={"test_batch": bad})
    with pytest.raises(DataError, match=r"test_batch: b'data' must be a uint8 array of shape \(N, 3072\)"):
        load_dataset("cifar10", tmp_path / "b", val_size=5, verify=False)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_refuses_arbitrary_pickles(tmp_path):
    cifar_tarball(tmp_path / "cifar-10-python.tar.gz", members={"data_batch_1": pickle.dumps(_Evil())})
    with pytest.raises(DataError, match="data_batch_1: cannot unpickle .*refusing to load global"):
        load_dataset("cifar10", tmp_path, val_size=5, verify=False)


# ---------------------------------------------------------------- download + checksum


class FakeOpener:
    """Stands in for urllib's urlopen: serves local bytes per URL, or raises URLError."""

    def __init__(self, served: dict[str, bytes]):
        self.served, self.calls = served, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        if url not in self.served:
            raise urllib.error.URLError("connection refused")
        return io.BytesIO(self.served[url])


def test_download_checksum_mismatch_stores_nothing(tmp_path, monkeypatch):
    src = make_mnist(tmp_path / "src")
    spec = DATASETS["mnist"]
    opener = FakeOpener({f.urls[0]: (src / f.name).read_bytes() for f in spec.files})
    monkeypatch.setattr(fetch, "urlopen", opener)
    expected = r"train-images-idx3-ubyte\.gz.*expected SHA-256 440fcabf\w+, got \w{64}"
    with pytest.raises(DataError, match=expected):
        load_dataset("mnist", val_size=5)
    cache = tmp_path / "cache" / "mnist"
    assert cache.is_dir() and list(cache.iterdir()) == []  # temp file removed, nothing renamed in
    assert opener.calls == [spec.files[0].urls[0]]


def test_download_right_hash_is_stored_and_mirrors_tried_in_order(tmp_path, monkeypatch):
    payload = b"hello dataset"
    good = hashlib.sha256(payload).hexdigest()
    spec = FileSpec("x.bin", ("https://down.example/x.bin", "https://up.example/x.bin"), good)
    opener = FakeOpener({"https://up.example/x.bin": payload})
    monkeypatch.setattr(fetch, "urlopen", opener)
    dest = tmp_path / "cache" / "toy"
    path = fetch.download(spec, dest, dataset="toy")
    assert path == dest / "x.bin" and path.read_bytes() == payload
    assert opener.calls == list(spec.urls)
    assert [p.name for p in dest.iterdir()] == ["x.bin"]  # no leftover .part file


def test_download_all_mirrors_down(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "urlopen", FakeOpener({}))
    spec = FileSpec("x.bin", ("https://a.example/x.bin", "https://b.example/x.bin"), "0" * 64)
    with pytest.raises(DataError, match=r"could not download x\.bin for toy .*a\.example.*b\.example"):
        fetch.download(spec, tmp_path / "cache" / "toy", dataset="toy")
    assert list((tmp_path / "cache" / "toy").iterdir()) == []


def test_cached_file_is_used_without_network(tmp_path):
    make_mnist(tmp_path / "cache" / "mnist")  # NAS_LTH_CACHE/<folder>/<file>
    ds = load_dataset("mnist", val_size=5, verify=False)  # the autouse fixture forbids urlopen
    assert ds.sizes()["test"] == 10


# ---------------------------------------------------------------- arguments


def test_data_dir_must_exist(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"data directory {missing} does not exist"):
        load_dataset("mnist", missing)
    monkeypatch.setenv("NAS_LTH_DATA", str(missing))
    with pytest.raises(DataError, match=f"NAS_LTH_DATA={missing} does not exist"):
        resolve_data_dir(None)
    monkeypatch.setenv("NAS_LTH_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    (tmp_path / "explicit").mkdir()
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"  # argument beats the env var


@pytest.mark.parametrize("val_size", [-1, 1437, 2.5, True])
def test_bad_val_size(val_size):
    with pytest.raises(UserError, match="val_size=.* must be an integer in 0..1436"):
        load_dataset("digits", val_size=val_size)


def test_bad_device():
    with pytest.raises(UserError, match="device='gpu0' is not a torch device"):
        load_dataset("digits", device="gpu0")


# ---------------------------------------------------------------- digits


def test_digits_sizes_and_values():
    ds = load_dataset("digits")
    assert ds.sizes() == {"train": 1437 - 287, "val": 287, "test": 360}
    assert (ds.num_classes, ds.input_shape) == (10, (1, 8, 8))
    assert ds.train.x.shape == (1150, 1, 8, 8) and ds.train.y.dtype == torch.int64
    assert sorted(set(ds.test.y.tolist())) == list(range(10))
    assert ds.meta["files"] == [] and 0 < ds.meta["mean"][0] < 1
    assert ds.train.x.device.type == "cpu"
    # the test split is fixed; the seed only moves the validation hold-out
    other = load_dataset("digits", seed=3, val_size=0)
    assert torch.equal(other.test.y, ds.test.y) and other.sizes()["train"] == 1437


# ---------------------------------------------------------------- CLI


def run_cli(*args: str, env_extra: dict | None = None, tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NAS_LTH_DATA"}
    env.update(NAS_LTH_CACHE=str(tmp / "cache"), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "nas_lth.data", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_info_json(tmp_path):
    res = run_cli("info", "digits", "--json", "--seed", "1", tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["sizes"] == {"train": 1150, "val": 287, "test": 360}
    assert (info["num_classes"], info["input_shape"], info["multilabel"]) == (10, [1, 8, 8], False)
    assert info["seed"] == 1


def test_cli_info_text_and_list(tmp_path):
    make_mnist(tmp_path / "data" / "mnist")
    res = run_cli(
        "info", "mnist", "--data-dir", str(tmp_path / "data"), "--val-size", "5", "--no-verify", tmp=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert "train 15  val 5  test 10" in res.stdout and "train-images-idx3-ubyte.gz" in res.stdout
    res = run_cli("list", tmp=tmp_path)
    assert res.returncode == 0 and {"digits", "mnist", "fashion-mnist", "cifar10"} <= {
        line.split()[0] for line in res.stdout.splitlines()
    }


@pytest.mark.parametrize(
    "args, expected",
    [
        (("info", "nope"), "error: unknown dataset 'nope'; allowed: cifar10, digits, fashion-mnist, mnist"),
        (("info", "mnist", "--data-dir", "/does/not/exist"), "error: data directory /does/not/exist"),
    ],
)
def test_cli_user_errors_exit_2_one_line(tmp_path, args, expected):
    res = run_cli(*args, tmp=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith(expected) and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stdout == ""


# ---------------------------------------------------------------- real data


@pytest.mark.integration
def test_real_mnist():
    root = Path(_ENV_DATA_AT_IMPORT) if _ENV_DATA_AT_IMPORT else REPO.parent / "shared" / "data"
    names = list(MNIST_FILES.values())
    if not any(all((d / n).is_file() for n in names) for d in (root / "mnist", root)):
        pytest.skip(f"MNIST data not found under {root} (set NAS_LTH_DATA to a folder holding mnist/*.gz)")
    ds = load_dataset("mnist", root)  # verify=True: checks the published (or decompressed) SHA-256
    assert ds.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert ds.num_classes == 10 and ds.train.x.shape[1:] == (1, 28, 28)
    assert sorted(set(ds.test.y.tolist())) == list(range(10))
    assert abs(ds.meta["mean"][0] - 0.1307) < 2e-3 and abs(ds.meta["std"][0] - 0.3081) < 2e-3


@pytest.mark.parametrize("name", [n for n, spec in DATASETS.items() if not spec.files and n != "arrays"])
def test_every_dataset_that_needs_no_download_loads(name):
    ds = load_dataset(name)
    spec = DATASETS[name]
    assert ds.num_classes == spec.num_classes and tuple(ds.input_shape) == tuple(spec.input_shape)
    assert min(ds.sizes().values()) > 0


def test_the_arrays_dataset_reads_a_npz_file_and_takes_classes_and_shape_from_it(tmp_path):
    """Dataset ``arrays`` (your data as one .npz file): classes from num_classes or the largest label, the
    input shape from the arrays, a relative file under --data-dir; no file is one error."""
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 2, 3, 3)).astype(np.float32), np.arange(50) % 4
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10], num_classes=6)
    ds = load_dataset("arrays", tmp_path, options={"file": "a.npz"})
    assert ds.num_classes == 4 and ds.input_shape == (2, 3, 3) and ds.sizes() == {"train": 45, "val": 5, "test": 10}
    assert load_dataset("arrays", options={"file": str(tmp_path / "b.npz")}).num_classes == 6
    with pytest.raises(UserError, match=r"^dataset arrays: give the .npz file as dataset_options.file$"):
        load_dataset("arrays")


def test_datasets_that_need_files_name_them():
    # every other dataset declares its published files (name + SHA-256), so a loader can fetch and check
    for name, spec in DATASETS.items():
        for f in spec.files:
            assert f.name and len(f.sha256) == 64, (name, f)
