"""The YAML reader keeps positions and turns every YAML problem into a diagnostic."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from umhctl.blueprint.yamlsource import MAX_DEPTH, Document, _parse_fast, _parse_reference, parse_yaml


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


# -- the fast path (libyaml) against the reference (ruamel.yaml) ------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "blueprints").glob("*.yaml")) + sorted((ROOT / "tests" / "blueprint" / "broken").glob("*.yaml"))


def _same_reading(text: str) -> Document | None:
    """Whenever the fast path reads `text` at all, it reads it exactly as the reference parser does: the same
    data (same types), the same position of every key and value, the same numbers as written."""
    fast = _parse_fast(text, "f.yaml")
    if fast is None:
        return None
    ref = _parse_reference(text, "f.yaml")
    assert repr(fast.data) == repr(ref.data)
    assert fast.source.values == ref.source.values
    assert fast.source.keys == ref.source.keys
    assert fast.source.raw == ref.source.raw
    assert fast.diagnostics == ref.diagnostics == []
    return fast


def test_the_examples_take_the_fast_path_and_read_the_same() -> None:
    for path in sorted((ROOT / "blueprints").glob("*.yaml")):
        text = path.read_text()
        assert _same_reading(text) is not None, path
        assert _same_reading(text.replace("\n", "\r\n")) is not None, path


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_the_broken_corpus_reads_the_same_on_either_path(path: Path) -> None:
    _same_reading(path.read_text(errors="replace"))


def test_yaml_1_2_meanings_are_kept_on_the_fast_path() -> None:
    text = (
        "a: 0644\nb: 0o644\nc: 1_000\nd: on\ne: yes\nf: 1.5e3\ng: -.inf\nh: ~\ni: -0x1f\nj: 2024-01-01\n"
        "k: 1e3\nl: 0.30\nm: True\nn: off\no: 0b101\np: +12\nq: ''\nr: null\ns: !!str 12\nt: !!bool yes\n"
        "u: 0x_1\nv: [1, 2]\nw: {x: NO}\n"
    )
    doc = _same_reading(text)
    assert doc is not None
    assert doc.data == {
        "a": 644, "b": 420, "c": 1000, "d": "on", "e": "yes", "f": 1500.0, "g": float("-inf"), "h": None,
        "i": -31, "j": "2024-01-01", "k": 1000.0, "l": 0.3, "m": True, "n": "off", "o": 5, "p": 12, "q": "",
        "r": None, "s": "12", "t": True, "u": 1, "v": [1, 2], "w": {"x": "NO"},
    }  # fmt: skip
    assert doc.source.raw[("l",)] == "0.30"


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # duplicate key: a diagnostic, so the reference reads it
        "a: !!bool maybe\n",
        "a: !!int ''\n",
        "a: 1\n---\nb: 2\n",
        "%YAML 1.1\n---\na: on\n",  # a directive changes meanings: left to the reference
        "a:\n\t- x\n",
        "a: [1, 2\n",
        "x: !!python/object:os.system y\n",
        "a: &x [*x]\n",
        'a: "\\ud800"\n',
        "a: |\n  \n    x\n",  # leading blank lines of a block scalar: ruamel.yaml refuses some of them
        "a: !!str &x b\n",  # tag before anchor: marked at the anchor by ruamel.yaml
        "a:\n",  # an empty value: its mark differs between the two
        "a: 1\u2028b: 2\n",
        "",
    ],
)
def test_what_the_fast_path_cannot_read_cleanly_goes_to_the_reference(text: str) -> None:
    assert _parse_fast(text, "f.yaml") is None
    assert parse_yaml(text, "f.yaml") == _parse_reference(text, "f.yaml")


def test_the_reference_reports_a_bool_it_cannot_read_instead_of_crashing() -> None:
    (diag,) = _parse_reference("a: !!bool maybe\n", "f.yaml").diagnostics
    assert "cannot read bool value 'maybe'" in diag.message


_pieces = st.sampled_from(
    [
        "a", "b", "key", "é", "😀", "- ", "-", ": ", ":", "  ", " ", "\n", "\n  ", "\n- ", "#c", " #c", "[", "]",
        "{", "}", ", ", "'", '"', "&x ", "*x", "<<: ", "!!str ", "!t ", "? ", "|\n  ", ">\n  ", "0644", "0o7",
        "1_000", "on", "yes", "~", "null", "1e3", ".5", "-.inf", "2024-01-01", "=", "\\", "\r\n", "...", "---",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces, max_size=40).map("".join))
def test_any_text_reads_the_same_on_either_path(text: str) -> None:
    _same_reading(text)
