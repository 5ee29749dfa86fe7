"""What a search is asked to do (:class:`SearchOptions`, the CLI's flags and the Python API's arguments) and
what it did (:class:`SearchOutcome`)."""

from __future__ import annotations

from dataclasses import dataclass

from nas_lth.space import SearchSpace
from nas_lth.store.fs import Location


@dataclass
class SearchOptions:
    space: SearchSpace
    name: str
    storage: str = "runs"
    num_samples: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    resume: bool = False
    trust_state: bool = False  # --resume loads Tune state that this user's key did not sign (experiment.signing)
    data_dir: str | None = None
    seed: int | None = None
    device: str = "auto"
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    dashboard: bool = True
    num_cpus: int | None = None  # local Ray only
    progress_every_s: float = 15.0
    quiet: bool = False
    warm_start: str | None = None  # an earlier experiment whose completed trials seed the study
    # the Tune searcher class over the Optuna sampler (None: FidelitySearch); benchmarks pass Ray's own
    # OptunaSearch to measure what telling stopped trials PRUNED adds
    searcher_cls: type | None = None


@dataclass
class SearchOutcome:
    experiment: Location
    interrupted: bool
    trajectory_stats: dict
    dashboard_url: str | None
    metric: str
    warm_started: int = 0  # trials of --warm-start added to the study
    confirm: object = None  # ConfirmOutcome of the confirmation stage, when one ran
    objectives: list = None  # (column, mode) of each objective of a multi-objective search
