"""Plugins: a user's own modules - models, datasets, criteria registered with ``nas_lth.register_*`` - imported
wherever nas_lth needs its registries.

A plugin is a module name (``my_lab.models``). It comes from a space file's ``plugins:`` list, a command's
``--plugin MODULE``, or an installed package's entry points (group ``nas_lth.plugins``: the package needs no
line anywhere). Plugins are imported on the driver before a space is validated, and in every Ray worker
before a trial starts: a worker is a fresh process that never saw what the driver imported. For that, a
search that starts its Ray session ships the plugins' code with the job (Ray's runtime environment:
``py_modules`` for a plugin that is not an installed package) and names :func:`setup_worker` as the workers'
``worker_process_setup_hook``; the trial imports them again (a no-op where the hook did) so a Ray session the
caller started, whose workers can import the modules, works too.

This module imports nothing heavy: it sits at the bottom, below every room that reads a registry.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import sysconfig
from importlib import metadata

from nas_lth.errors import UserError

GROUP = "nas_lth.plugins"  # the entry-point group of installed plugin packages
ENV = "NAS_LTH_PLUGINS"  # the plugins a worker imports at start-up (comma-separated), set by the search
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_loaded: set[str] = set()
_entry_points_done = False


def load(modules=(), *, where: str = "--plugin") -> list[str]:
    """Import the entry-point plugins (once) and ``modules``; returns the module names imported. A plugin that
    does not import - a missing module, an exception while it registers, a name registered twice - is one
    :class:`UserError` naming ``where``, the module and the exception's last line."""
    global _entry_points_done
    if not _entry_points_done:
        _entry_points_done = True
        for ep in metadata.entry_points(group=GROUP):
            _import(ep.value.split(":", 1)[0], f"entry point {ep.name!r} of group {GROUP}")
    names = []
    for module in modules:
        check_name(module, where)
        _import(module, where)
        names.append(module)
    return names


def check_name(module, where: str = "--plugin") -> None:
    if not isinstance(module, str) or not MODULE_NAME.match(module):
        raise UserError(f"{where}: {module!r} is not a module name (dotted Python identifiers, e.g. my_lab.models)")


def _import(module: str, where: str) -> None:
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except UserError as exc:
        raise UserError(f"{where}: plugin {module!r}: {exc}") from None
    except BaseException as exc:  # noqa: BLE001 - whatever the user's module raises, one line (SystemExit too)
        if isinstance(exc, KeyboardInterrupt):
            raise
        last = (str(exc).strip().splitlines() or [""])[-1]
        raise UserError(f"{where}: plugin {module!r} does not import ({type(exc).__name__}: {last})") from None
    _loaded.add(module)


def _installed(path: str) -> bool:
    """Whether a module file lies in an installed package (site-packages), which every node has."""
    roots = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    real = os.path.realpath(path)
    return any(real.startswith(root + os.sep) for root in roots)


def runtime_env(modules) -> dict:
    """The Ray runtime environment that makes ``modules`` importable in, and imported by, every worker: the
    code of each top-level package that is not installed travels with the job."""
    if not modules:
        return {}
    ship = {}
    for module in modules:
        top = sys.modules[module.split(".")[0]]
        where = getattr(top, "__file__", None) or next(iter(getattr(top, "__path__", [])), None)
        if where and not _installed(where) and top.__name__ != "nas_lth":
            ship[top.__name__] = top
    env = {"env_vars": {ENV: ",".join(modules)}, "worker_process_setup_hook": "nas_lth.plugins.setup_worker"}
    if ship:
        env["py_modules"] = list(ship.values())
    return env


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook``: import the search's plugins in a new worker process."""
    load([m for m in os.environ.get(ENV, "").split(",") if m], where=f"${ENV}")
