"""Search strategy: Ray Tune with an Optuna searcher and an ASHA scheduler (imports Ray lazily)."""

from nas_lth.strategy.tuner import SearchOptions, SearchOutcome, run_search

__all__ = ["SearchOptions", "SearchOutcome", "run_search"]
