"""Shared round prefixes (issue 26 item 3): a ladder's state after round r, stored by the ladder that computed it,
lets another ladder whose rounds 1..r are the same continue there - with exactly the results of computing them.
The search end of it (real Ray, reuse marked in rounds/, counted once) is in test_ladder.py."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from nas_lth.data import load_dataset
from nas_lth.estimation import TicketRun, recipe_from_dict
from nas_lth.estimation.prefix import prefix_key
from nas_lth.experiment.prefixes import ExperimentPrefixes, compact, expand
from nas_lth.store.fs import locate

FLOOR = 0.01  # below every ladder here: the caps decide where they end
BASE = {"model": "lenet300_100", "dataset": "digits", "budget": 1, "seed": 0,
        "prune_rate": {"fc": 0.4, "output": 0.2}, "training": {"eval_every": 10}}


class BytesStore:
    """A prefix store that keeps each state as the bytes a file would hold, compacted as the experiment's are."""

    def __init__(self):
        self.files: dict[int, bytes] = {}
        self.plain: dict[int, int] = {}  # the size it would have without compacting

    def load(self, round_):
        data = self.files.get(round_)
        return None if data is None else expand(torch.load(io.BytesIO(data), weights_only=True))

    def store(self, round_, state):
        buf, plain = io.BytesIO(), io.BytesIO()
        torch.save(compact(state), buf)
        torch.save(state, plain)
        self.files.setdefault(round_, buf.getvalue())
        self.plain.setdefault(round_, len(plain.getvalue()))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _run(digits, rounds, store=None, **extra):
    run = TicketRun(recipe_from_dict({**BASE, **extra, "rounds": rounds}), digits, floor=FLOOR, prefixes=store)
    return run, run.run()


def _same(a, b, path="state"):
    """Equal to the bit (tensors), apart from wall-clock seconds."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k != "wall_seconds":
                _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b or (a != a and b != b), (path, a, b)  # nan: a loss not measured at iteration 0


def _rows(rows):
    """The rows as compared: the clock-dependent fields out, nan as None (nan != nan)."""
    return [{k: (None if v != v else v) for k, v in r.record().items() if k not in ("wall_seconds",
                                                                                    "cumulative_iterations")}
            for r in rows]


@pytest.mark.parametrize("extra", [
    {},  # large_final at the end, reset to init: the LTH ladder
    {"criterion": "magnitude_increase", "stop_at": "early_bird", "eb_every": 5, "rewind_to": 10, "budget": 2},
], ids=["lth", "early-bird-rewind"])
def test_a_ladder_continued_from_a_shorter_ones_prefix_is_the_ladder_computed_whole(digits, extra):
    whole_store = BytesStore()
    whole, whole_rows = _run(digits, 4, whole_store, **extra)
    short_store = BytesStore()
    _run(digits, 2, short_store, **extra)
    # the state a 2-round ladder leaves after its cap is the 4-round ladder's after its round 2, to the bit
    assert sorted(short_store.files) == [1, 2]
    for r in (1, 2):
        _same(short_store.load(r), whole_store.load(r))
    # compacted (boolean masks, no mask buffers in the weight states): less than half the bytes, the same state
    assert all(len(short_store.files[r]) < 0.5 * short_store.plain[r] for r in (1, 2))
    cont, cont_rows = _run(digits, 4, short_store, **extra)
    assert cont.reused_rounds == [1, 2]
    assert cont.reused_iterations == sum(r.iterations for r in cont_rows if r.round in (1, 2)) > 0
    assert _rows(cont_rows) == _rows(whole_rows)
    _same(cont.final_weights, whole.final_weights)
    _same(cont.masks, whole.masks)
    # what the continued ladder trained itself: the dense round and rounds 3 and 4, on the whole one's clock
    assert cont.cumulative == whole.cumulative
    assert cont.cumulative - cont.reused_iterations == sum(r.iterations for r in cont_rows if r.round not in (1, 2))


def test_a_reinit_ladders_last_round_is_not_a_prefix_and_its_rounds_before_are(digits):
    """A reinit ladder's last round picks no next mask (that would cost a training run): it cannot be continued,
    so it is not stored, and a longer ladder reuses the rounds before it."""
    store = BytesStore()
    _run(digits, 2, store, reinit="random_reinit")
    assert sorted(store.files) == [1]
    whole, whole_rows = _run(digits, 3, reinit="random_reinit")
    cont, cont_rows = _run(digits, 3, store, reinit="random_reinit")
    assert cont.reused_rounds == [1] and _rows(cont_rows) == _rows(whole_rows)


def test_the_prefix_key_holds_what_decides_the_rounds_and_not_where_the_ladder_ends():
    rc = recipe_from_dict({**BASE, "rounds": 4})
    key = prefix_key(rc, 2, "cpu")
    assert key == prefix_key(recipe_from_dict({**BASE, "rounds": 9}), 2, "cpu")  # the cap
    assert key == prefix_key(recipe_from_dict({**BASE, "rounds": 4, "eb_eps": 0.3}), 2, "cpu")  # not acting
    for other in ({"criterion": "random"}, {"prune_rate": {"fc": 0.5, "output": 0.2}}, {"seed": 1},
                  {"rewind_to": 10}, {"reinit": "random_reinit"}, {"training": {"eval_every": 20}}):
        assert prefix_key(recipe_from_dict({**BASE, "rounds": 4, **other}), 2, "cpu") != key, other
    assert prefix_key(rc, 3, "cpu") != key and prefix_key(rc, 2, "cuda") != key


def _state():
    return {"version": 1, "round": 1, "masks": {"fc1": torch.ones(2)}, "masks_ready": True, "runs_done": ["x"],
            "prev_stop": {}, "next_stop": {}, "cumulative": 5, "rows": [], "theta_k": None,
            "generator": torch.Generator().get_state(), "pending": None, "final_weights": None,
            "round_iterations": 5}


def test_a_prefix_is_stored_once_and_a_damaged_file_is_computed_again(tmp_path, caplog):
    rc = recipe_from_dict({**BASE, "rounds": 2})
    store = ExperimentPrefixes(locate(str(tmp_path)), rc, "cpu")
    state = _state()
    assert store.load(1) is None  # none stored
    store.store(1, state)
    _same(store.load(1), state)
    path = tmp_path / "prefixes" / store.path(1).name
    first = path.read_bytes()
    store.store(1, {**state, "cumulative": 6})
    assert path.read_bytes() == first  # stored once: the first ladder's
    path.write_bytes(first[: len(first) // 2])
    with caplog.at_level(logging.WARNING):
        assert store.load(1) is None
    assert "failed its check" in caplog.text
    store.store(1, state)  # the next ladder that computes it replaces the damaged file
    _same(store.load(1), state)


def test_a_failed_prefix_write_costs_only_the_sharing(tmp_path, caplog, monkeypatch):
    from nas_lth.store.fs import Location

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Location, "write_bytes", full)
    with caplog.at_level(logging.WARNING):
        ExperimentPrefixes(locate(str(tmp_path)), recipe_from_dict({**BASE, "rounds": 2}), "cpu").store(1, _state())
    assert "not stored: [Errno 28] No space left on device" in caplog.text
