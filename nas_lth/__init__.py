"""nas_lth: lottery tickets found by a neural-architecture-style search.

The package is split the way the NAS survey splits a search: ``space`` (what may be searched),
``strategy`` (how: Ray Tune + Optuna) and ``estimation`` (how good a candidate is: the ticket
procedure), over a substrate of ``data``, ``models`` and ``pruning``; ``experiment`` keeps the experiment
folder, ``store``, ``report`` and ``export`` read what a search produced. docs/design.md draws the rooms and
their floors.

Your own parts are registered with the functions below, in a module that a space names under ``plugins:``
(or that a command gets with ``--plugin``), so that every Ray worker imports it too. They import what they
need when called: ``import nas_lth`` stays light.
"""

from __future__ import annotations

from nas_lth.version import __version__

__all__ = ["__version__", "list_criteria", "list_datasets", "list_models", "load_results", "register_criterion",
           "register_dataset", "register_model", "search"]


def __getattr__(name: str):
    # nas_lth.search is the CLI's module, callable: nas_lth.search(space, **options) runs a search (nas_lth.api)
    if name == "search":
        import importlib

        return importlib.import_module("nas_lth.search")
    raise AttributeError(f"module 'nas_lth' has no attribute {name!r}")


def load_results(path):
    """An existing experiment's results as DataFrames (:class:`nas_lth.api.Results`)."""
    from nas_lth.api import load_results as load

    return load(path)


def register_model(name: str, description: str = ""):
    """Decorator: register ``factory(input_shape, num_classes, **options) -> nn.Module`` as model ``name``. Its
    prunable layers are nas_lth's masked layers (``nas_lth.models.layers``: ``MaskedLinear``, ``MaskedConv2d``,
    ...), each tagged with a kind (``fc``, ``conv``, ``output``, ``embedding``); its keyword options are the
    recipe's ``model_options``. ``description``: one line (default: the docstring's first line)."""
    from nas_lth.models.registry import register

    return register(name, description)


def register_dataset(name: str, *, num_classes: int, input_shape: tuple[int, ...], val_size: int | float = 0.1,
                     standardize: bool = True, description: str = ""):
    """Decorator: register ``fn(**options) -> (x_train, y_train, x_test, y_test)`` (numpy arrays or tensors;
    class ids as labels) as dataset ``name``; its keyword parameters are the recipe's ``dataset_options``.
    nas_lth holds out ``val_size`` of the training set (a count or a fraction) with the recipe's seed,
    standardises the inputs with the training split's statistics and places them on the trial's device."""
    from nas_lth.data.arrays import register_arrays

    return register_arrays(name, num_classes=num_classes, input_shape=input_shape, val_size=val_size,
                           standardize=standardize, description=description)


def register_criterion(name: str, *, needs: tuple[str, ...] = (), iterative: bool = False):
    """Decorator: register ``score(w_init, w_final, **context) -> Tensor`` as criterion ``name``: a score per
    weight of one layer, the highest kept. ``needs``: the gradient context it reads (``grad``,
    ``hess_grad``, ``synflow_grad``); ``iterative``: re-scored while pruning in small steps (as SynFlow)."""
    from nas_lth.pruning.criteria import register

    return register(name, needs=needs, iterative=iterative)


def list_models() -> list[str]:
    from nas_lth.models import MODELS

    return MODELS.names()


def list_datasets() -> list[str]:
    from nas_lth.data import DATASETS

    return DATASETS.names()


def list_criteria() -> list[str]:
    from nas_lth.pruning.criteria import CRITERIA

    return CRITERIA.names()
