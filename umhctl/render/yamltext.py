"""YAML text from data (never from string templates): insertion order kept, multi-line strings as literal blocks.

A small emitter for the data umhctl renders (mappings with text keys, lists, text, numbers, booleans, null).
ruamel.yaml's emitter was most of the render time; this one is a few functions. Anything that is not plainly
safe to leave unquoted is written as a JSON string, which every YAML parser reads the same way (1.1 and 1.2):
`tests/test_yamltext.py` round-trips random data through both readings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_PLAIN = re.compile(r"[A-Za-z0-9_/.$][A-Za-z0-9_./@+=,()$-]*(?: [A-Za-z0-9_./@+=,()$-]+)*")
# Text some YAML reader (1.1 or 1.2) would turn into a number, a date, a boolean or null.
_NOT_TEXT = re.compile(r"[-+]?[0-9._][0-9._:eE+-]*|0[xXoObB][0-9a-fA-F_]+|[-+]?\.(inf|nan)|=", re.IGNORECASE)
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
# What a literal block cannot hold: controls below " " except tab and line feed, and the _UNSAFE ones. One class, so
# that a long text (a dashboard, a config) is scanned once.
_NOT_LITERAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


class Octal(int):
    """A file mode written the way Butane's documentation writes it (`mode: 0644`); go-yaml reads it as octal."""


# Short texts as written, by text: a large site repeats the same keys and values on every device.
_SHORT_TEXT: dict[str, str] = {}


def _scalar(value: Any) -> str:
    if type(value) is str:
        written = _SHORT_TEXT.get(value)
        if written is None:
            written = _text(value)
            if len(value) <= 64:
                _SHORT_TEXT[value] = written
        return written
    if isinstance(value, Octal):
        return f"0{value:o}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value) if value == value and abs(value) != float("inf") else _special_float(value)
    if isinstance(value, str):
        return _text(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _text(value: str) -> str:
    if _PLAIN.fullmatch(value) and not _NOT_TEXT.fullmatch(value) and value.lower() not in _WORDS:
        return value
    return _quoted(value)


def _quoted(text: str) -> str:
    # JSON string syntax is YAML's double-quoted scalar. Characters YAML does not allow raw (DEL, C1 controls)
    # or that YAML 1.1 reads as line breaks are escaped; everything else stays as written, so "Köln" stays readable.
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _special_float(value: float) -> str:
    if value != value:
        return ".nan"
    return ".inf" if value > 0 else "-.inf"


def _literal(text: str, indent: int) -> str | None:
    """A literal block for multi-line text, or None where one cannot hold it exactly."""
    if "\n" not in text or text.startswith((" ", "\n")) or _NOT_LITERAL.search(text):
        return None
    if text.endswith("\n\n"):
        chomp = "+"
    elif text.endswith("\n"):
        chomp = ""
    else:
        chomp = "-"
    body = text[:-1] if text.endswith("\n") else text
    pad = " " * indent
    lines = [(pad + line) if line else "" for line in body.split("\n")]
    return "|" + chomp + "\n" + "\n".join(lines) + "\n"


def _value(value: Any, indent: int) -> str:
    """Text after 'key:' or '- ': either ' scalar\\n' or a newline and an indented block."""
    if isinstance(value, dict):
        return " {}\n" if not value else "\n" + _mapping(value, indent)
    if isinstance(value, list):
        return " []\n" if not value else "\n" + _sequence(value, indent)
    if isinstance(value, str):
        block = _literal(value, indent)
        if block is not None:
            return " " + block
    return " " + _scalar(value) + "\n"


def _mapping(data: dict[str, Any], indent: int) -> str:
    pad = " " * indent
    out = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"mapping keys must be text, not {type(key).__name__}")
        out.append(f"{pad}{_scalar(key)}:" + _value(value, indent + 2))
    return "".join(out)


def _sequence(items: list[Any], indent: int) -> str:
    pad = " " * indent
    out = []
    for item in items:
        if isinstance(item, dict) and item:
            # The first key shares the line with the dash: "- name: x".
            block = _mapping(item, indent + 2)
            out.append(pad + "- " + block[indent + 2 :])
        elif isinstance(item, list) and item:
            out.append(pad + "-\n" + _sequence(item, indent + 2))
        else:
            out.append(pad + "-" + _value(item, indent + 2))
    return "".join(out)


def to_yaml(data: Any) -> str:
    if isinstance(data, dict):
        return _mapping(data, 0) if data else "{}\n"
    if isinstance(data, list):
        return _sequence(data, 0) if data else "[]\n"
    return _scalar(data) + "\n"


def to_yaml_documents(documents: Iterable[Any]) -> str:
    """A multi-document YAML stream, as Kubernetes manifests are written."""
    return "".join("---\n" + to_yaml(doc) for doc in documents)
