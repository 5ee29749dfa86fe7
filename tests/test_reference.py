"""The reference of space files and recipes, docs/spaces.md, is generated from the code (python -m
nas_lth.reference): the committed file must be what the code generates now, the generator must leave no key,
model, criterion, dataset or metric out, and a key without a meaning must stop it."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from nas_lth import reference
from nas_lth.data import DATASETS
from nas_lth.models import MODELS
from nas_lth.pruning.criteria import CRITERIA
from nas_lth.pruning.reinit import REINIT_VARIANTS
from nas_lth.recipe import Recipe
from nas_lth.space.schema import METRICS, SpaceFile
from nas_lth.terms import CHANNEL_ONLY

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "spaces.md"
OUT_OF_DATE = "docs/spaces.md is out of date: run python -m nas_lth.reference -o docs/spaces.md"


@pytest.fixture(scope="module")
def text() -> str:
    return reference.render()


def section(text: str, heading: str) -> str:
    """The lines under ``heading`` (a whole heading line) up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    assert heading in lines, f"no heading {heading!r}"
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    end = next((i for i in range(start + 1, len(lines))
                if re.match(rf"#{{1,{level}}} ", lines[i])), len(lines))
    return "\n".join(lines[start + 1:end])


def rows(part: str) -> dict[str, list[str]]:
    """First cell -> cells of every table row in ``part``."""
    out = {}
    for line in part.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            out[cells[0]] = cells
    return out


def test_committed_reference_is_up_to_date(text):
    committed = DOC.read_bytes() if DOC.exists() else b""
    assert committed == text.encode("utf-8"), OUT_OF_DATE


def test_first_line_says_it_is_generated(text):
    first = text.splitlines()[0]
    assert "python -m nas_lth.reference -o docs/spaces.md" in first and "do not edit by hand" in first


def test_rendering_is_deterministic_and_machine_free(text):
    assert reference.render() == text
    assert not re.search(r"0x[0-9a-f]{6,}", text), "a memory address"
    assert str(REPO) not in text and str(Path.home()) not in text, "a path of this machine"


def test_every_key_of_the_space_file_and_of_the_recipe_appears(text):
    for path, model in reference.sections(SpaceFile):
        part = rows(section(text, f"### `{path}`" if path else "### Top-level keys"))
        for name, field in model.model_fields.items():
            key = f"`{field.alias or name}`"
            assert key in part, f"{path or 'top level'}: {key} missing"
            assert part[key][-1] == reference._cell(field.description), key  # its meaning, from description=
    recipe = rows(section(text, "## Recipe keys"))
    for name in Recipe.model_fields:
        assert f"`{name}`" in recipe, f"recipe key {name} missing"
    for path, model in reference.sections(Recipe)[1:]:
        part = rows(section(text, f"### `{path}` keys"))
        assert {f"`{n}`" for n in model.model_fields} <= set(part), path
    assert rows(section(text, "## Recipe keys"))["`eb_eps`"][-1] == "`stop_at: early_bird`"  # its role


def test_every_registered_name_appears(text):
    models = rows(section(text, "## Models"))
    assert {f"`{n}`" for n in MODELS} <= set(models)
    criteria = rows(section(text, "## Criteria"))
    assert {f"`{n}`" for n in [*CRITERIA, *CHANNEL_ONLY]} <= set(criteria)
    assert {f"`{n}`" for n in REINIT_VARIANTS} <= set(rows(section(text, "## Reinit variants")))
    assert {f"`{n}`" for n in DATASETS} <= set(rows(section(text, "## Datasets")))
    assert {f"`{m}`" for m in METRICS} <= set(rows(section(text, "## Objectives")))


def test_every_model_and_dataset_option_appears(text):
    models = section(text, "## Models")
    for name, spec in MODELS.items():
        params = list(inspect.signature(spec.builder).parameters)[len(reference.MODEL_ARGS):]
        listed = rows(models)[f"`{name}`"][2]
        assert listed == (", ".join(f"`{p}`" for p in params) or "—"), name
    datasets = rows(section(text, "## Datasets"))
    for name, spec in DATASETS.items():
        assert datasets[f"`{name}`"][-1] == (", ".join(f"`{k}`" for k in spec.options) or "—"), name


def test_lenet_hidden_is_documented_with_its_default(text):
    hidden = rows(section(text, "### Options of `lenet300_100`"))["`hidden`"]
    assert hidden[1:3] == ["list of int", "`[300, 100]`"]
    assert "widths of the hidden layers" in hidden[3]


def test_a_key_without_a_meaning_stops_the_generator():
    class Undocumented(BaseModel):
        """A model with a key nobody explained."""

        documented: int = Field(1, description="explained")
        secret: int = 2

    with pytest.raises(reference.Undocumented, match="secret"):
        reference.field_rows(Undocumented, {})


def test_an_option_without_a_meaning_stops_the_generator():
    def builder(input_shape, num_classes, width=16, depth=3):
        """A model.

        Options:
            width: channels
        """

    with pytest.raises(reference.Undocumented, match="depth"):
        reference.model_options("toy", builder)

    def stale(input_shape, num_classes):
        """A model that lost its option.

        Options:
            width: channels it no longer takes
        """

    with pytest.raises(reference.Undocumented, match="width"):
        reference.model_options("toy", stale)


def test_options_section_is_parsed_with_continuation_lines():
    doc = """Summary.

    Options:
        a: first
            and more
        b: second

    Returns something.
    """
    assert reference.options_section(doc) == {"a": "first and more", "b": "second"}
    assert reference.options_section("No options here.") == {}


def test_cli_writes_the_file_or_prints_it(tmp_path, capsys, text):
    out = tmp_path / "spaces.md"
    assert reference.main(["-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == text
    assert reference.main([]) == 0
    assert capsys.readouterr().out == text
    with pytest.raises(SystemExit) as info:
        reference.main(["-o", str(tmp_path / "missing" / "spaces.md")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing" in err[0]


def test_reference_imports_no_ray():
    code = "import sys, nas_lth.reference; print(sorted(m for m in ('ray',) if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"nas_lth.reference imports {out}"
