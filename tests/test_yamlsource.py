"""The YAML reader keeps positions and turns every YAML problem into a diagnostic."""

from __future__ import annotations

import pytest

from umhctl.blueprint.yamlsource import MAX_DEPTH, parse_yaml


def test_positions_of_keys_and_values() -> None:
    doc = parse_yaml("a: 1\nb:\n  - x: yes\n    y: 0x1f\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": "yes", "y": 31}]}
    assert doc.source.keys[("b", 0, "y")] == (4, 5)
    assert doc.source.values[("b", 0, "y")] == (4, 8)
    assert doc.source.values[("b", 0)] == (3, 5)


def test_missing_path_falls_back_to_nearest_parent_key() -> None:
    doc = parse_yaml("devices:\n  - name: x\n", "f.yaml")
    assert doc.source.locate(("devices", 0, "role")) == (2, 5)


def test_every_duplicate_key_is_reported() -> None:
    doc = parse_yaml("a: 1\na: 2\nb: {c: 1, c: 2}\n", "f.yaml")
    assert [(d.line, d.column) for d in doc.diagnostics] == [(2, 1), (3, 11)]
    assert "already set at line 1, column 1" in (doc.diagnostics[0].hint or "")


def test_tab_indentation_has_a_hint() -> None:
    doc = parse_yaml("a: 1\nb:\n\t- x\n", "f.yaml")
    (diag,) = doc.diagnostics
    assert (diag.line, diag.column) == (3, 1)
    assert "tab" in diag.message and diag.hint


def test_dates_stay_text_and_tags_are_refused() -> None:
    doc = parse_yaml("d: 2024-01-01\nx: !!python/object:os.system y\n", "f.yaml")
    assert doc.data["d"] == "2024-01-01"
    assert "unsupported YAML tag" in doc.diagnostics[0].message


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    doc = parse_yaml("a: &x [*x]\n", "f.yaml")
    assert "recursive alias" in doc.diagnostics[0].message


def test_alias_bomb_ends_cleanly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    doc = parse_yaml("\n".join(lines) + "\n", "f.yaml")
    # The file is small: "too large" would send the reader looking for the wrong cause.
    assert doc.data is None and "more than 200,000 values" in doc.diagnostics[0].message
    assert "too large" not in doc.diagnostics[0].message


def test_nul_byte_is_reported_at_its_line_and_column() -> None:
    doc = parse_yaml("a: 1\nb: x\x00y\n", "f.yaml")
    (d,) = doc.diagnostics
    assert (d.line, d.column) == (2, 5) and "U+0000" in d.message


@pytest.mark.parametrize("levels", [150, 5000])  # built level by level / too deep even to compose (RecursionError)
def test_deep_nesting_is_reported_where_it_goes_too_deep(levels: int) -> None:
    doc = parse_yaml("a:\n  b: " + "[" * levels + "]" * levels + "\n", "f.yaml")
    (d,) = doc.diagnostics
    # the root is level 1, 'b' level 2: the 99th '[' is level 101
    assert (d.line, d.column, d.message) == (2, 6 + 99 - 1, f"nested deeper than {MAX_DEPTH} levels")


def test_merge_keys_are_supported() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["thing"] == {"x": 1, "y": 3}


def test_empty_and_multi_document_files() -> None:
    assert parse_yaml("", "f.yaml").diagnostics[0].message == "the file is empty"
    assert "more than one document" in parse_yaml("a: 1\n---\nb: 2\n", "f.yaml").diagnostics[0].message


def test_unpaired_surrogates_are_reported_not_crashed_on() -> None:
    doc = parse_yaml('"\\ud800": 1\nb: "x\\udc00"\n', "f.yaml")
    assert [(d.line, d.column) for d in doc.diagnostics] == [(1, 1), (2, 4)]
