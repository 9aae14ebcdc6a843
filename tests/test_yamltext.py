"""umhctl's YAML emitter: whatever data it is given, YAML 1.1 and 1.2 readers read back exactly that data."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from umhctl.render.yamltext import to_yaml, to_yaml_documents


def _load(text: str, version: tuple[int, int]) -> Any:
    yaml = YAML(typ="safe", pure=True)
    yaml.version = version
    return yaml.load(io.StringIO(text))


tricky = st.sampled_from(
    [
        "yes",
        "No",
        "on",
        "OFF",
        "y",
        "null",
        "~",
        "true",
        "0644",
        "0o17",
        "0x1f",
        "1e3",
        "1_000",
        ".5",
        ".inf",
        "-.NaN",
        "2024-01-01",
        "1:30",
        "=",
        "- x",
        "a: b",
        "a #b",
        "#x",
        "@x",
        "`x",
        "!x",
        "&x",
        "*x",
        "%x",
        "|",
        ">",
        "'",
        '"',
        "{x}",
        "[x]",
        "x,y",
        " lead",
        "trail ",
        "",
        "10Gi",
        "v1.32.2+k3s1",
        '${! meta("x") }',
        "line\n",
        "a\nb",
        "a\n\n",
        "\ttab\n",
        "x\r\ny",
        "k\u2028l",
        "\ufeffbom",
        "Köln",
        "a\x85b",
        "a\n b\n",
        "\n\nx",
        "ends\n\n\n",
    ]
)
text = st.one_of(tricky, st.text(max_size=20))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False, allow_infinity=True), text
)
data = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=25
)


@settings(max_examples=400, deadline=None)
@given(data)
def test_round_trip_yaml_1_2(value: Any) -> None:
    assert _load(to_yaml(value), (1, 2)) == value


@settings(max_examples=400, deadline=None)
@given(data)
def test_round_trip_yaml_1_1(value: Any) -> None:
    # Helm and Kubernetes read YAML with go-yaml, which keeps many YAML 1.1 rules (yes/no, 0644 octal).
    assert _load(to_yaml(value), (1, 1)) == value


def test_layout_is_kubernetes_style() -> None:
    doc = {"kind": "ConfigMap", "data": {"a.yaml": "x: 1\ny: 2\n"}, "items": [{"name": "a", "v": 1}, "s"], "e": {}}
    assert to_yaml(doc) == (
        "kind: ConfigMap\ndata:\n  a.yaml: |\n    x: 1\n    y: 2\nitems:\n  - name: a\n    v: 1\n  - s\ne: {}\n"
    )
    assert to_yaml_documents([{"a": 1}, {"b": "0.29.0"}]) == '---\na: 1\n---\nb: "0.29.0"\n'
