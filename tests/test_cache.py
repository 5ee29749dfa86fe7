"""The cache helper shared by downloads and derived arrays (nas_lth.data.cache)."""

from __future__ import annotations

import numpy as np
import pytest

from nas_lth.data import DATASETS, cache, fetch


def test_cache_folder_from_the_environment_or_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_LTH_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir("mnist") == tmp_path / "c" / "mnist" == fetch.cache_dir(DATASETS["mnist"])
    monkeypatch.delenv("NAS_LTH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "nas_lth"


def test_atomic_file_appears_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "f.bin"
    with cache.atomic_file(target) as fh:
        fh.write(b"abc")
        assert not target.exists()  # nothing under the real name before the end
        assert [p.name.endswith(".part") for p in tmp_path.iterdir()] == [True]
    assert target.read_bytes() == b"abc" and list(tmp_path.iterdir()) == [target]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), cache.atomic_file(target) as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_arrays_read_back_only_for_their_key(tmp_path, capsys):
    path = tmp_path / "sub" / "a.npz"
    key, digest = cache.cache_key({"b": 1, "a": [1, 2]})
    assert (key, digest) == cache.cache_key({"a": [1, 2], "b": 1}) and len(digest) == 20
    assert cache.load_arrays(path, key, dict) is None and capsys.readouterr().err == ""  # no file: quietly
    assert cache.save_arrays(path, key, {"x": np.arange(3)}, on_failure="unused")
    assert [p.name for p in path.parent.iterdir()] == ["a.npz"]  # no temp file left
    back = cache.load_arrays(path, key, dict)
    assert list(back) == ["x"] and np.array_equal(back["x"], np.arange(3))
    assert cache.load_arrays(path, cache.cache_key({"a": 2})[0], dict) is None
    err = capsys.readouterr().err
    assert f"ignoring unreadable cache file {path}" in err and "written for other inputs" in err

    def inconsistent(arrays):
        raise ValueError("shapes disagree")

    assert cache.load_arrays(path, key, inconsistent) is None and "shapes disagree" in capsys.readouterr().err


def test_unwritable_cache_is_only_a_warning(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    assert not cache.save_arrays(blocker / "a.npz", "k", {"x": np.zeros(1)}, on_failure="it is rebuilt next time")
    err = capsys.readouterr().err
    assert err.startswith(f"warning: cannot write the cache file {blocker / 'a.npz'}")
    assert err.endswith("; it is rebuilt next time\n")
