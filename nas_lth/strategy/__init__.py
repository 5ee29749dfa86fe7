"""Search strategy: Ray Tune with an Optuna searcher and an ASHA scheduler (imports Ray lazily)."""

from nas_lth.strategy.options import SearchOptions, SearchOutcome
from nas_lth.strategy.preflight import preflight
from nas_lth.strategy.tuner import run_search

__all__ = ["SearchOptions", "SearchOutcome", "preflight", "run_search"]
