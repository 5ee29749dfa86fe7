"""The house's layering (docs/design.md, "Layering"): every room - a subpackage or a top-level module of
nas_lth - stands on a floor, and its imports point only to lower floors. So there is no arrow back up and no
import cycle between rooms. Checked two ways:

- statically, from every import statement in the source (at module level or inside a function, which is
  where the heavy imports are deferred; ``if TYPE_CHECKING:`` blocks aside), against :data:`FLOORS`;
- at run time, in a fresh interpreter per room: what importing it pulls in (torch, ray, optuna, rooms above).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nas_lth"

# Bottom first. A room may import rooms of lower floors only.
FLOORS = [
    # plain names and errors: no torch, no pydantic models of the recipe
    ("nas_lth.errors", "nas_lth.names", "nas_lth.roles", "nas_lth.terms", "nas_lth.version"),
    # small shared services: registries, user plugins, reading YAML, choosing a device
    ("nas_lth.registry", "nas_lth.plugins", "nas_lth.yamlfile", "nas_lth.device"),
    # the vocabulary: one recipe
    ("nas_lth.recipe",),
    # the substrate
    ("nas_lth.data", "nas_lth.models"),
    ("nas_lth.pruning",),
    # performance estimation, the search space, the results store
    ("nas_lth.estimation", "nas_lth.space", "nas_lth.store"),
    # what reads results and tickets
    ("nas_lth.export", "nas_lth.report", "nas_lth.ticket"),
    # the experiment folder's bookkeeping
    ("nas_lth.experiment",),
    # the search strategy
    ("nas_lth.strategy",),
    # entry points
    ("nas_lth.api", "nas_lth.reference"),
    ("nas_lth.search",),  # the CLI, callable as nas_lth.search(...) through nas_lth.api
]
FLOOR = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "nas_lth" and len(parts) > 1 else None


def _is_room(room: str) -> bool:
    name = room.split(".")[1]
    return (PACKAGE / name / "__init__.py").exists() or (PACKAGE / f"{name}.py").exists()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of the file names (relative imports resolved; a ``from nas_lth import
    x`` names ``nas_lth.x``), except inside ``if TYPE_CHECKING:``."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
            for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def room_graph() -> dict[str, dict[str, set[str]]]:
    """room -> imported room -> the files that import it (the package's face, nas_lth/__init__.py, aside)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _room(_module_name(path))
        if source is None:
            continue
        graph[source]  # a room that imports nothing of nas_lth is still a room
        for target in map(_room, imported_modules(path)):
            if target not in (None, source) and _is_room(target):  # not e.g. `from nas_lth import __version__`
                graph[source][target].add(str(path.relative_to(PACKAGE.parent)))
    return graph


def arrows_up(graph, floor: dict[str, int]) -> list[str]:
    """Arrows that do not point to a lower floor, as 'a (floor i) -> b (floor j): files'."""
    return [f"{a} (floor {floor[a]}) -> {b} (floor {floor[b]}): {', '.join(sorted(files))}"
            for a, targets in sorted(graph.items()) for b, files in sorted(targets.items())
            if a in floor and b in floor and floor[b] >= floor[a]]


def find_cycle(graph) -> list[str] | None:
    """One import cycle between rooms (a list starting and ending with the same room), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_room_has_a_floor():
    graph = room_graph()
    rooms = set(graph) | {b for targets in graph.values() for b in targets}
    assert not rooms - set(FLOOR), f"rooms without a floor in FLOORS: {sorted(rooms - set(FLOOR))}"
    assert not set(FLOOR) - rooms, f"FLOORS names rooms that do not exist: {sorted(set(FLOOR) - rooms)}"


def test_no_import_cycle_between_rooms():
    assert find_cycle(room_graph()) is None, f"import cycle: {' -> '.join(find_cycle(room_graph()))}"


def test_no_arrow_back_up():
    up = arrows_up(room_graph(), FLOOR)
    assert not up, "imports that point up or sideways:\n" + "\n".join(up)


def test_the_checks_can_fail():
    """The checks above on a house that breaks them (so a green run means something)."""
    graph = {"a": {"b": {"a.py"}}, "b": {"c": {"b.py"}}, "c": {"a": {"c.py"}}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": {"a.py"}}, "b": {}}) is None
    assert arrows_up(graph, {"a": 2, "b": 1, "c": 0}) == ["c (floor 0) -> a (floor 2): c.py"]
    # and the parser sees deferred imports, relative imports and `from nas_lth import x`, not TYPE_CHECKING ones
    mods = imported_modules(PACKAGE / "strategy" / "tuner.py")
    assert "nas_lth.experiment.restore" in mods  # imported inside a function
    assert "nas_lth.strategy.preflight" in mods


_SUBSTRATE = ("nas_lth.data", "nas_lth.models", "nas_lth.pruning")
_ABOVE_STORE = ("nas_lth.experiment", "nas_lth.strategy", "nas_lth.search")
FORBIDDEN = {
    # the vocabulary at the bottom: plain data, no torch (names are checked against the registries
    # only when a recipe is validated)
    "nas_lth.terms": ("torch", "pydantic", "nas_lth.recipe"),
    "nas_lth.recipe": ("torch", "ray", "optuna", *_SUBSTRATE, "nas_lth.estimation", "nas_lth.space",
                       "nas_lth.store", *_ABOVE_STORE),
    "nas_lth.roles": ("torch", "ray", "optuna", "nas_lth.recipe"),
    "nas_lth.registry": ("torch", "ray", "optuna", "nas_lth.recipe"),
    "nas_lth.plugins": ("torch", "ray", "optuna", "pydantic", "nas_lth.recipe"),
    "nas_lth.data": ("ray", "optuna", "nas_lth.estimation", "nas_lth.space", *_ABOVE_STORE),
    "nas_lth.models": ("ray", "optuna", "nas_lth.estimation", "nas_lth.space", *_ABOVE_STORE),
    "nas_lth.pruning": ("ray", "optuna", "nas_lth.estimation", "nas_lth.space", *_ABOVE_STORE),
    "nas_lth.estimation": ("ray", "optuna", "nas_lth.space", "nas_lth.store", *_ABOVE_STORE),
    "nas_lth.space": ("torch", "ray", *_SUBSTRATE, "nas_lth.estimation", "nas_lth.store", *_ABOVE_STORE),
    "nas_lth.store": ("torch", "ray", "optuna", "nas_lth.space", *_ABOVE_STORE),
    "nas_lth.report": ("ray", "optuna", *_ABOVE_STORE),
    "nas_lth.ticket": ("ray", "optuna", *_ABOVE_STORE),
    "nas_lth.export": ("ray", "optuna", "nas_lth.space", *_ABOVE_STORE),
    "nas_lth.experiment": ("nas_lth.strategy", "nas_lth.search"),
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_does_not_import_upstream_parts(module):
    code = (f"import sys, {module}; bad = sorted({{m.split('.')[0] if m.split('.')[0] != 'nas_lth' else "
            f"'.'.join(m.split('.')[:2]) for m in sys.modules}} & set({FORBIDDEN[module]!r})); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"{module} imports {out}"
