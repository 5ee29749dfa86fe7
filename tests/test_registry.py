"""The generic registry behind criteria, models, datasets, reinit variants and figures."""

import pytest

from nas_lth.errors import UserError
from nas_lth.registry import Registry


def test_registry_refuses_duplicates_and_names_the_allowed_values():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)

    @reg.register("b", make=lambda fn: fn())
    def _b():
        return 2

    assert reg.get("a") == 1 and reg["b"] == 2 and list(reg) == ["a", "b"] and len(reg) == 2
    assert "a" in reg and "c" not in reg
    with pytest.raises(ValueError, match="widget 'a' registered twice"):
        reg.add("a", 3)
    with pytest.raises(UserError, match=r"unknown widget 'c'; allowed: a, b"):
        reg.get("c")
    with pytest.raises(KeyError):
        reg["c"]  # plain mapping access stays a KeyError (a bug, not user input)
