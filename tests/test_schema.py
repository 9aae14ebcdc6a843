"""`umhctl schema`: a Draft 2020-12 JSON Schema that accepts every example and stays in sync with the model."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from umhctl.blueprint.model import json_schema
from umhctl.blueprint.yamlsource import parse_yaml
from umhctl.cli import app

from .conftest import EXAMPLES, ROOT


def test_schema_command_prints_a_valid_draft_2020_12_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_schema(path: Path) -> None:
    data = parse_yaml(path.read_text(), str(path)).data
    jsonschema.Draft202012Validator(json_schema()).validate(data)


def test_schema_rejects_what_the_model_rejects() -> None:
    data = parse_yaml((EXAMPLES[0]).read_text(), "x").data
    validator = jsonschema.Draft202012Validator(json_schema())
    for mutate in (
        lambda d: d["devices"][0].update(adress="192.0.2.1"),
        lambda d: d["versions"].update(k3s="latest"),
        lambda d: d["devices"][0].update(role="gateway"),
    ):
        broken = json.loads(json.dumps(data))
        mutate(broken)
        assert not validator.is_valid(broken)


def test_committed_schema_file_is_current() -> None:
    """Editors read schema/site-blueprint.schema.json (see the examples' first line); it must match the model."""
    committed = json.loads((ROOT / "schema" / "site-blueprint.schema.json").read_text())
    assert committed == json_schema(), "run: umhctl schema > schema/site-blueprint.schema.json"
