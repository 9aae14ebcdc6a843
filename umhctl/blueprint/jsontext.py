"""Read a JSON document (a Grafana dashboard) with bounds: nesting depth, and only what Grafana's parser accepts.

Python's json module accepts NaN, Infinity and -Infinity; Grafana reads dashboards with Go's encoding/json, whose
scanner has no such literals (golang/go src/encoding/json/scanner.go, stateBeginValue: "invalid character 'N'
looking for beginning of value"), so a dashboard holding them would be shipped and then refused on the hub.
Deep nesting makes json.loads raise RecursionError without a position; the scan below finds where it starts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 100  # Grafana dashboards nest about 10 levels (panels in rows in a dashboard)

# Strings (skipped whole, escapes included), brackets, and the literals Python accepts but JSON does not.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|-?Infinity|NaN')


@dataclass(frozen=True)
class JsonProblem(Exception):
    message: str
    line: int
    column: int


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _scan(text: str, max_depth: int) -> JsonProblem | None:
    """The first place nested deeper than `max_depth`, or holding NaN/Infinity, outside strings."""
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                return JsonProblem(f"nested deeper than {max_depth} levels", *_position(text, match.start()))
        elif token in ("]", "}"):
            depth -= 1
        else:
            return JsonProblem(
                f"{token} is not a JSON number (Grafana's JSON parser refuses it)", *_position(text, match.start())
            )
    return None


_UNREAD = object()


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, but JsonProblem (with a position) for a syntax error, deep nesting, NaN or Infinity."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JsonProblem(exc.msg, exc.lineno, exc.colno) from None
    except (_NotJson, RecursionError):
        data = _UNREAD
    problem = _scan(text, max_depth)
    if problem is not None:
        raise problem
    if data is _UNREAD:  # json failed where the scan found nothing (it cannot for valid JSON): say so plainly
        raise JsonProblem("cannot be read as JSON", 1, 1)
    return data
