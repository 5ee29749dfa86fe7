"""Imports point one way (DESIGN.md): recipe <- substrate <- estimation <- strategy <- search; the space is
plain data over the recipe (no torch); store and report never import the strategy. Checked in a fresh
interpreter per module."""

import subprocess
import sys

import pytest

_SUBSTRATE = ("nas_lth.data", "nas_lth.models", "nas_lth.pruning")
FORBIDDEN = {
    # the vocabulary at the bottom: plain data, no torch (names are checked against the registries
    # only when a recipe is validated)
    "nas_lth.recipe": ("torch", "ray", "optuna", *_SUBSTRATE, "nas_lth.estimation", "nas_lth.strategy",
                       "nas_lth.space", "nas_lth.store"),
    "nas_lth.roles": ("torch", "ray", "optuna", "nas_lth.recipe"),
    "nas_lth.registry": ("torch", "ray", "optuna", "nas_lth.recipe"),
    "nas_lth.data": ("ray", "optuna", "nas_lth.estimation", "nas_lth.strategy", "nas_lth.space"),
    "nas_lth.models": ("ray", "optuna", "nas_lth.estimation", "nas_lth.strategy", "nas_lth.space"),
    "nas_lth.pruning": ("ray", "optuna", "nas_lth.estimation", "nas_lth.strategy", "nas_lth.space"),
    "nas_lth.estimation": ("ray", "optuna", "nas_lth.strategy", "nas_lth.space", "nas_lth.store"),
    "nas_lth.space": ("torch", "ray", *_SUBSTRATE, "nas_lth.estimation", "nas_lth.strategy", "nas_lth.store"),
    "nas_lth.store": ("torch", "ray", "optuna", "nas_lth.strategy", "nas_lth.space"),
    "nas_lth.report": ("ray", "optuna", "nas_lth.strategy"),
    "nas_lth.ticket": ("ray", "optuna", "nas_lth.strategy"),
    "nas_lth.export": ("ray", "optuna", "nas_lth.strategy", "nas_lth.space"),
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_does_not_import_upstream_parts(module):
    code = (f"import sys, {module}; bad = sorted({{m.split('.')[0] if m.split('.')[0] != 'nas_lth' else "
            f"'.'.join(m.split('.')[:2]) for m in sys.modules}} & set({FORBIDDEN[module]!r})); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"{module} imports {out}"
