"""Property: whatever a user does to a valid blueprint, validate answers with diagnostics, never an exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from umhctl.blueprint.loader import validate_text
from umhctl.blueprint.yamlsource import parse_yaml

from .conftest import EXAMPLES

BASE = {p.name: parse_yaml(p.read_text(), p.name).data for p in EXAMPLES}
TEXTS = {p.name: p.read_text() for p in EXAMPLES}
BASE_DIR = EXAMPLES[0].parent

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["latest", "192.0.2.300", "hub-01", "edge-01", "../../x.json", "-----BEGIN", "0644", "", "{"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


def _check(text: str) -> None:
    blueprint, _, diagnostics = validate_text(text, "fuzz.yaml", base_dir=BASE_DIR)
    lines = text.count("\n") + 2
    if blueprint is None:
        assert any(d.severity == "error" for d in diagnostics)
    for d in diagnostics:
        assert 1 <= d.line <= lines and d.column >= 1 and d.message


@st.composite
def mutated(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(BASE)))
    data = copy.deepcopy(BASE[name])
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths[1:]))
        parent = data
        for seg in path[:-1]:
            parent = parent[seg]
        op = draw(st.sampled_from(["delete", "replace", "insert", "duplicate"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(values)
        elif op == "insert" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return json.dumps(data, indent=1)  # JSON is YAML: positions stay meaningful


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_structural_mutations_give_clean_diagnostics(text: str) -> None:
    _check(text)


@st.composite
def text_edits(draw: st.DrawFn) -> str:
    text = TEXTS[draw(st.sampled_from(sorted(TEXTS)))]
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if op == "insert":
            text = (
                text[:pos]
                + draw(
                    st.sampled_from(
                        ["\t", ":", "- ", "&a ", "*a", "{", "]", "'", "\n  ", "!!x ", "<<: 1\n", "\x00", "é"]
                    )
                )
                + text[pos:]
            )
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)) :]
        else:
            text = text[:pos]
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_edits())
def test_text_edits_give_clean_diagnostics(text: str) -> None:
    _check(text)


def test_base_examples_are_valid() -> None:
    for name, text in TEXTS.items():
        assert validate_text(text, name, base_dir=Path(BASE_DIR))[0] is not None
