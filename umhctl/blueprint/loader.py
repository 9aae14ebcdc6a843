"""Load a blueprint file: YAML with positions → shape checks (pydantic) → cross-reference checks.

Every problem becomes a Diagnostic pointing at FILE:LINE:COL. Cross-reference checks need a well-shaped
model, so they run once the shape is valid; within each stage every problem is reported at once.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from umhctl.blueprint.model import API_VERSION, KIND, SiteBlueprint
from umhctl.blueprint.yamlsource import Document, SourceMap, parse_yaml
from umhctl.diagnostics import Diagnostic, has_errors, sort_key
from umhctl.errors import BlueprintInvalid, UmhctlError

# Segments pydantic adds to a location when it tried several members of a union; they are not in the YAML.
_UNION_TAGS = {"str", "int", "float", "bool", "none"}


@dataclass(frozen=True)
class LoadedBlueprint:
    blueprint: SiteBlueprint
    path: Path
    source: SourceMap
    warnings: list[Diagnostic]


def validate_file(path: Path) -> tuple[SiteBlueprint | None, SourceMap | None, list[Diagnostic]]:
    """Check a blueprint file and return the model (if valid), its source map and every diagnostic."""
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UmhctlError(f"{display}: no such file", hint="pass the blueprint with -f FILE") from None
    except IsADirectoryError:
        raise UmhctlError(f"{display}: is a directory, not a blueprint file") from None
    except UnicodeDecodeError as exc:
        return None, None, [_not_utf8(display, path.read_bytes(), exc)]
    except OSError as exc:
        raise UmhctlError(f"{display}: cannot read: {exc.strerror}") from None
    return validate_text(text, display, base_dir=path.resolve().parent)


def _not_utf8(display: str, data: bytes, exc: UnicodeDecodeError) -> Diagnostic:
    before = data[: exc.start]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
    return Diagnostic(
        display,
        line,
        column,
        f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x})",
        hint="save the blueprint as UTF-8",
    )


def validate_text(
    text: str, display: str, *, base_dir: Path
) -> tuple[SiteBlueprint | None, SourceMap | None, list[Diagnostic]]:
    doc = parse_yaml(text, display)
    diagnostics = list(doc.diagnostics)
    if has_errors(diagnostics):
        return None, doc.source, sorted(diagnostics, key=sort_key)
    header = _check_header(doc)
    if header:
        return None, doc.source, header
    try:
        blueprint = SiteBlueprint.model_validate(doc.data)
    except ValidationError as exc:
        return None, doc.source, sorted(_shape_diagnostics(exc, doc.source), key=sort_key)
    from umhctl.blueprint.checks import check_blueprint

    diagnostics += check_blueprint(blueprint, doc.source, base_dir)
    return (None if has_errors(diagnostics) else blueprint), doc.source, sorted(diagnostics, key=sort_key)


def load_blueprint(path: Path) -> LoadedBlueprint:
    """The valid blueprint at `path`, or BlueprintInvalid carrying every diagnostic."""
    blueprint, source, diagnostics = validate_file(path)
    if blueprint is None or source is None:
        raise BlueprintInvalid(diagnostics)
    return LoadedBlueprint(blueprint, path.resolve(), source, diagnostics)


def _check_header(doc: Document) -> list[Diagnostic]:
    """apiVersion and kind decide how the rest is read, so a wrong one is reported alone."""
    data, source = doc.data, doc.source
    if not isinstance(data, dict):
        return [
            source.diagnostic(
                (),
                f"a blueprint must be a mapping of fields, not {_describe(data)}",
                hint=f"start the file with 'apiVersion: {API_VERSION}' and 'kind: {KIND}'",
            )
        ]
    problems = []
    for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in data:
            typo = next((k for k in data if isinstance(k, str) and k.lower() == key.lower()), None)
            typo = typo or next(iter(difflib.get_close_matches(key, [str(k) for k in data], n=1, cutoff=0.75)), None)
            if typo is not None:
                problems.append(
                    source.diagnostic((typo,), f"unknown field '{typo}'", hint=f"did you mean '{key}'?", key=True)
                )
            else:
                problems.append(
                    source.diagnostic((), f"missing required field '{key}'", hint=f"add '{key}: {expected}'")
                )
        elif data[key] != expected:
            problems.append(
                source.diagnostic(
                    (key,),
                    f"unknown {key} {data[key]!r}: this umhctl reads {key} '{expected}'",
                    hint=f"set '{key}: {expected}'",
                )
            )
    return problems


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})" if len(value) < 40 else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    return tuple(seg for seg in loc if not (isinstance(seg, str) and ("[" in seg or seg in _UNION_TAGS)))


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that describes the mapping at `loc`, for "did you mean" hints."""
    tp: Any = SiteBlueprint
    for seg in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == seg), None)
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) is list and isinstance(seg, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict and isinstance(seg, str):
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _field_name(loc: tuple[str | int, ...]) -> str:
    """How to name the place: 'port', or 'interfaces[0]' for an entry of a list."""
    name = ""
    for seg in reversed(loc):
        name = f"[{seg}]{name}" if isinstance(seg, int) else f"{seg}{name}"
        if not isinstance(seg, int):
            break
    return name


def did_you_mean(word: str, candidates: typing.Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def _shape_diagnostics(exc: ValidationError, source: SourceMap) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    errors = exc.errors(include_url=False)
    # A misspelt field also leaves its correct spelling missing; the "did you mean" on the typo says it all.
    typos = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = _clean_loc(tuple(err["loc"]))
            model = _model_at(loc[:-1])
            fields = [f.alias or n for n, f in model.model_fields.items()] if model else []
            typos |= {loc[:-1] + (m,) for m in difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)}
    seen: set[tuple[str | int, ...]] = set()
    for err in errors:
        loc = _clean_loc(tuple(err["loc"]))
        if loc in seen or (err["type"] == "missing" and loc in typos):
            continue  # a union reports once per member; one message per place is enough
        seen.add(loc)
        out.append(_one(err, loc, source, at_key=err["loc"][-1:] == ("[key]",)))
    return out


def _one(err: Any, loc: tuple[str | int, ...], source: SourceMap, *, at_key: bool) -> Diagnostic:
    def report(message: str, hint: str | None = None, key: bool = at_key) -> Diagnostic:
        return source.diagnostic(loc, message, hint=hint, key=key)

    kind: str = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    name = _field_name(loc)
    in_secrets = bool(loc) and loc[0] == "secrets"
    if kind == "missing":
        return report(f"missing required field '{name}'")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        fields = [f.alias or n for n, f in model.model_fields.items()] if model else []
        hint = did_you_mean(str(name), fields)
        if hint is None and f"{name}Secret" in fields:
            hint = f"secrets are referenced by name: use '{name}Secret: <secret-name>'"
        if hint is None and fields:
            hint = "allowed fields here: " + ", ".join(fields)
        return report(f"unknown field '{name}'", hint=hint, key=True)
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        hint = did_you_mean(str(value), options) if isinstance(value, str) else None
        return report(f"invalid value {value!r} for '{name}': expected {expected}", hint=hint)
    if kind.startswith("umhctl_"):
        return report(err["msg"])
    shown = "a value" if in_secrets else _describe(value)
    if kind == "string_type":
        hint = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            written = source.raw.get(loc, str(value))
            if written.startswith(("0o", "0O")):
                written = "0" + written[2:]  # file modes are written "0644"
            hint = f'put quotes around it: "{written}"'
        return report(f"'{name}' must be text, got {shown}", hint=hint)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return report(f"'{name}' must be a whole number, got {shown}")
    if kind in ("float_type", "float_parsing", "finite_number"):
        return report(f"'{name}' must be a finite number, got {shown}")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return report(f"'{name}' must be a mapping (key: value lines), got {shown}")
    if kind == "list_type":
        return report(f"'{name}' must be a list, got {shown}", hint="write each entry on its own '- ' line")
    if kind == "ip_v4_address":
        return report(f"{value!r} is not a valid IPv4 address (example: 192.0.2.10)")
    if kind == "ip_v4_interface":
        return source.diagnostic(
            loc, f"{value!r} is not a valid IPv4 address with prefix length (example: 192.0.2.10/24)"
        )
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return report(f"'{name}' needs at least {least} entr{'y' if least == 1 else 'ies'}")
    if kind == "greater_than":
        bound = ctx.get("gt")
        shown_bound = f"{bound:g}" if isinstance(bound, float) else bound
        return report(f"'{name}' must be greater than {shown_bound}, got {value!r}")
    if kind == "greater_than_equal":
        return report(f"'{name}' must be at least {ctx.get('ge')}, got {value!r}")
    if kind == "less_than_equal":
        return report(f"'{name}' must be at most {ctx.get('le')}, got {value!r}")
    message = err["msg"]
    return report(f"'{name}': {message[:1].lower()}{message[1:]}" if name != "" else message)
