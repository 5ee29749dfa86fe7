"""The Python face of nas_lth: ``nas_lth.search(space, **options)`` runs a search as the CLI does and returns its
:class:`Results`; ``nas_lth.load_results(path)`` reads an existing experiment the same way.

The options are the CLI's, in snake case (``storage=``, ``name=``, ``num_samples=``, ``resume=``, ``plugins=``,
...), checked by the same preflight. What a search changes in the calling process, and leaves changed: Tune's
and Optuna's logging levels and three of Tune's environment settings (its file loggers off, the classic
progress output), ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` when it starts a local Ray instance (so it listens on
loopback only), and the plugins it imports. A Ray session the caller started is joined and left running; one
the search started is shut down when it returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from nas_lth.errors import UserError
from nas_lth.space import SearchSpace
from nas_lth.store import locate, read
from nas_lth.store.analysis import best_tickets, pareto_front, unique_recipes
from nas_lth.store.confirmed import confirmation
from nas_lth.store.fs import Location
from nas_lth.store.reader import recorded_space, recorded_within
from nas_lth.yamlfile import read_yaml

ARRAYS_DIR = ".nas_lth-arrays"  # under --storage: the in-memory datasets searched there, by content

# the CLI's options (python -m nas_lth.search --help) by their Python names; value: SearchOptions' field
OPTIONS = {"storage": "storage", "name": "name", "num_samples": "num_samples", "max_concurrent": "max_concurrent",
           "address": "address", "resume": "resume", "trust_state": "trust_state", "warm_start": "warm_start",
           "data_dir": "data_dir",
           "seed": "seed", "device": "device", "cpus_per_trial": "cpus_per_trial",
           "gpus_per_trial": "gpus_per_trial", "num_cpus": "num_cpus", "progress_every": "progress_every_s",
           "dashboard": "dashboard", "quiet": "quiet"}


@dataclass
class Results:
    """An experiment's results as pandas DataFrames: the same rows as its Parquet tables."""

    location: str
    trials: pd.DataFrame  # one row per search trial (trials/*.parquet, stage search)
    curves: pd.DataFrame  # one row per trial and evaluation step
    confirm: pd.DataFrame  # the confirmation stage's rows (trials/*.parquet, stage confirm)
    rounds: pd.DataFrame = field(default_factory=pd.DataFrame)  # ladder trials: one row per evaluated round
    metric: str = "val_acc"  # the validation metric the search ranked by
    objectives: list | None = None  # (column, mode) of a multi-objective search
    interrupted: bool | None = None  # for a search run now: whether it stopped before its end
    skipped: list[str] = field(default_factory=list)  # table files that could not be read

    @property
    def best(self) -> pd.DataFrame:
        """The best full-budget tickets (best first)."""
        return best_tickets(self.trials) if len(self.trials) else pd.DataFrame()

    @property
    def front(self) -> pd.DataFrame:
        """The Pareto front of validation metric against weights remaining (full budget, distinct recipes)."""
        return pareto_front(unique_recipes(self.trials)) if len(self.trials) else pd.DataFrame()

    @property
    def confirmed(self) -> pd.DataFrame | None:
        """The confirmation stage's ranking (mean and 95 % intervals per recipe), None without one."""
        verdict = confirmation(self.trials, self.confirm, self.rounds, self.metric, recorded_within(self.location)) \
            if len(self.trials) else None
        return None if verdict is None else verdict.table

    @property
    def best_ticket(self) -> str | None:
        """The stored ticket file of the best full-budget trial (``nas_lth.export.load`` reads it)."""
        best = self.best
        if best.empty:
            return None
        loc = locate(self.location).join("tickets", f"{best.iloc[0].trial_id}.pt")
        return loc.uri if loc.exists() else None

    def summary(self) -> str:
        """The end-of-search summary, as the CLI prints it."""
        from nas_lth.experiment.summary import print_summary

        outcome = SimpleNamespace(experiment=locate(self.location), metric=self.metric, objectives=self.objectives,
                                  warm_started=0)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            print_summary(outcome)
        return out.getvalue().strip()

    def __str__(self) -> str:
        return self.summary()


def _space(space, extra_plugins: list[str], fixed: dict | None = None) -> SearchSpace:
    """The space of a path, a mapping or a SearchSpace, with ``extra_plugins`` and ``fixed`` values added (the
    dataset of ``data=``); a space that names another dataset is a one-line error."""
    if isinstance(space, SearchSpace):
        if not extra_plugins and not fixed:
            return space
        raw, source = space.to_dict(), space.source  # rebuilt: plugins and data are recorded with the space
    elif isinstance(space, dict):
        raw, source = space, "space"
    elif isinstance(space, str | os.PathLike):
        raw, source = read_yaml(Path(space), "search space"), os.fspath(space)
    else:
        raise UserError(f"space: give a YAML file's path, a mapping or a SearchSpace, not {type(space).__name__}")
    if fixed and isinstance(raw, dict):
        given = raw.get("fixed") if isinstance(raw.get("fixed"), dict) else {}
        if "dataset" in (raw.get("search") or {}) or given.get("dataset", fixed["dataset"]) != fixed["dataset"]:
            where = "search.dataset" if "dataset" in (raw.get("search") or {}) else \
                f"fixed.dataset is {given.get('dataset')!r}"
            raise UserError(f"{source}: {where}, but data= gives the arrays to search: leave the dataset out")
        raw = {**raw, "fixed": {**given, **fixed}}
    return SearchSpace.from_dict(raw, source, plugins=extra_plugins)


def search(space, *, plugins: tuple[str, ...] | list[str] = (), data: dict | None = None, **options) -> Results:
    """Run a search (as ``python -m nas_lth.search``) and return its results. ``space``: a YAML file's path, a
    mapping with the file's keys, or a :class:`SearchSpace`. ``data``: in-memory arrays to search on,
    ``{"train": (x, y), "test": (x, y)}`` (numpy arrays or tensors, class ids as labels; optional
    ``"num_classes"``), searched as dataset ``arrays`` (see :class:`InMemory`); the space then names no
    dataset."""
    from nas_lth.strategy import SearchOptions, run_search

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"nas_lth.search: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(OPTIONS))}")
    arrays = None if data is None else InMemory.of(data, options.get("storage") or SearchOptions.storage)
    space = _space(space, list(plugins), arrays.fixed() if arrays else None)
    if arrays:
        arrays.write()  # once the space is valid: bad input writes nothing
    fields = {OPTIONS[k]: v for k, v in options.items()}
    fields.setdefault("name", space.name)
    fields.setdefault("dashboard", False)  # a notebook has no use for Ray's dashboard unless asked
    fields.setdefault("quiet", True)
    outcome = run_search(SearchOptions(space=space, **fields))
    res = _results(outcome.experiment.uri, outcome.metric, outcome.objectives)
    res.interrupted = outcome.interrupted
    return res


@dataclass
class InMemory:
    """The caller's arrays (``data=``), checked, as the ``.npz`` file the search reads them from.

    The file is named by the SHA-256 of the arrays and lies under ``<storage>/.nas_lth-arrays/``; it is written
    once and never rewritten (the same arrays give the same file, so ``resume=True`` finds the space
    unchanged). The space's dataset becomes ``arrays`` with that file: every Ray worker, a resumed search,
    ``export --verify`` and ``report`` in a fresh process read the data from there. (Ray's object store would
    lose it with the driver, and a resumed search or a ticket's verification needs it later.)"""

    arrays: dict
    file: Location

    @classmethod
    def of(cls, data, storage: str) -> InMemory:
        from nas_lth.data.arrays import raw_from_arrays
        from nas_lth.data.npz import KEYS, class_count

        if not isinstance(data, dict) or not {"train", "test"} <= set(data) \
                or set(data) - {"train", "test", "num_classes"}:
            got = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
            raise UserError(f"data=: give {{'train': (x, y), 'test': (x, y)}} (optional 'num_classes'), got {got}")
        pairs = []
        for part in ("train", "test"):
            if not isinstance(data[part], tuple | list) or len(data[part]) != 2:
                raise UserError(f"data['{part}']: give an (inputs, labels) pair")
            pairs.extend(np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a) for a in data[part])
        if pairs[0].ndim < 2:
            raise UserError(f"data['train']: inputs of shape {pairs[0].shape}; give (N, ...) inputs")
        named = dict(zip(KEYS, pairs, strict=True))
        if "num_classes" in data:
            named["num_classes"] = np.asarray(data["num_classes"])
        named["num_classes"] = np.int64(class_count(named, "data="))  # as the file's reader will count them
        raw_from_arrays("data=", pairs, int(named["num_classes"]), pairs[0].shape[1:])  # DataError: one line
        h = hashlib.sha256()  # of the arrays themselves: a .npz file's zip entries carry the time of writing
        for key, a in named.items():
            a = np.ascontiguousarray(a)
            h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
            h.update(a)
        return cls(named, locate(storage).join(ARRAYS_DIR, f"{h.hexdigest()[:32]}.npz"))

    def fixed(self) -> dict:
        return {"dataset": "arrays", "dataset_options": {"file": self.file.uri}}

    def write(self) -> None:
        if not self.file.exists():
            buf = io.BytesIO()
            np.savez(buf, **self.arrays)
            self.file.write_bytes(buf.getvalue())


def load_results(path: str | os.PathLike) -> Results:
    """An existing experiment's results (a local folder or an ``s3://``/``gs://`` URI)."""
    uri = os.fspath(path)
    metric, objectives = _recorded_objectives(uri)
    return _results(uri, metric, objectives)


def _results(uri: str, metric: str, objectives) -> Results:
    res = read(uri)
    if metric == "val_acc" and "val_micro_f1" in res.trials and res.trials.val_micro_f1.notna().any():
        metric = "val_micro_f1"  # a multi-label search ranks by micro-F1 unless its space names a metric
    return Results(location=uri, trials=res.trials, curves=res.curves, confirm=res.confirm, rounds=res.rounds,
                   metric=metric, objectives=objectives, skipped=res.skipped)


def _recorded_objectives(uri: str) -> tuple[str, list | None]:
    """The search metric and the objectives of a multi-objective search, from the experiment's ``space.json``."""
    strategy = recorded_space(uri).get("strategy")
    strategy = strategy if isinstance(strategy, dict) else {}
    objectives = strategy.get("objectives") or []
    metric = strategy.get("metric") or "val_acc"
    pairs = [(o.get("metric"), o.get("mode")) for o in objectives if isinstance(o, dict)]
    return metric, (pairs if len(pairs) > 1 else None)
