"""YAML text from data (never from string templates): insertion order kept, multi-line strings as literal blocks."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString


def _literal_blocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _literal_blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # long lines stay on one line: diffs of rendered files are easier to read
    return yaml


def to_yaml(data: Any) -> str:
    stream = io.StringIO()
    _yaml().dump(_literal_blocks(data), stream)
    return stream.getvalue()


def to_yaml_documents(documents: Iterable[Any]) -> str:
    """A multi-document YAML stream, as Kubernetes manifests are written."""
    return "".join("---\n" + to_yaml(doc) for doc in documents)
