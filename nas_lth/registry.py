"""One small registry for every named family: criteria, models, datasets, reinit variants, figures.

A :class:`Registry` is a read-only mapping from name to entry. Registering a name twice is a
programming error (``ValueError`` at import time); asking for an unknown name is a user error
(:class:`~nas_lth.errors.UserError` naming the family and listing the allowed names).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from nas_lth.errors import UserError

T = TypeVar("T")

# Where each named family of the recipe is registered. The recipe validates its names against these
# registries when a recipe is built, and finds them by module name here (as a plugin system would) rather
# than by an import: the vocabulary stays below the substrate that fills the registries.
CATALOG = {"criterion": ("nas_lth.pruning.criteria", "CRITERIA"),
           "reinit": ("nas_lth.pruning.reinit", "REINIT_VARIANTS"),
           "dataset": ("nas_lth.data", "DATASETS"),
           "model": ("nas_lth.models", "MODELS")}


class Registry(Mapping[str, T], Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # "criterion", "model", ...: used in error messages
        self._items: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = entry
        return entry

    def register(self, name: str, make: Callable[[Callable], T] | None = None):
        """Decorator: ``@REG.register("name")`` stores the function itself, or ``make(fn)`` if given;
        the function is returned unchanged."""
        def deco(fn):
            self.add(name, make(fn) if make is not None else fn)
            return fn

        return deco

    def get(self, name: str) -> T:  # type: ignore[override]
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UserError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Names in registration order."""
        return list(self._items)

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def import_submodules(package: str, path, skip: tuple[str, ...] = ()) -> None:
    """Import every module of ``package`` (its ``__path__``): a module that registers something only
    has to exist, so adding a model, dataset or figure touches one file."""
    for info in pkgutil.iter_modules(path):
        if info.name not in skip and not info.name.startswith("__"):
            importlib.import_module(f"{package}.{info.name}")


def known_names(kind: str) -> list[str]:
    """The registered names of one family of :data:`CATALOG` (importing the package that registers them)."""
    module, attr = CATALOG[kind]
    return list(getattr(importlib.import_module(module), attr))
