"""Search spaces: YAML files, validated, turned into Optuna define-by-run functions.

Plain data: imports estimation's Recipe for validation, never the strategy.
"""

from nas_lth.space.optuna_space import define_by_run
from nas_lth.space.schema import Dimension, SearchSpace, Strategy, load_space

__all__ = ["Dimension", "SearchSpace", "Strategy", "define_by_run", "load_space"]
