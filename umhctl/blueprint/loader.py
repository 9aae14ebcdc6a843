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
from umhctl.blueprint.repofiles import MAX_BLUEPRINT, RepoFileProblem, TooLarge, read_regular, sizes
from umhctl.blueprint.yamlsource import Document, SourceMap, parse_yaml
from umhctl.diagnostics import Diagnostic, has_errors, sort_key
from umhctl.errors import BlueprintInvalid, BlueprintMissing, UmhctlError

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
        # A FIFO or device file given as the blueprint must not block validate, nor a huge file stall it.
        data = read_regular(path, display, MAX_BLUEPRINT)
    except FileNotFoundError:
        raise BlueprintMissing(display, nearby_blueprints()) from None
    except TooLarge as exc:
        return None, None, [Diagnostic(display, 1, 1, f"document too large: {exc.sizes}", hint=_TOO_LARGE_HINT)]
    except RepoFileProblem as exc:
        raise UmhctlError(f"{exc}: a blueprint is a YAML file", location=display) from None
    except OSError as exc:
        raise UmhctlError(f"{display}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, None, [_not_utf8(display, data, exc)]
    return validate_text(text, display, base_dir=path.resolve().parent)


_TOO_LARGE_HINT = "a blueprint describes one site; split a very large site into several blueprints"


def nearby_blueprints(limit: int = 5) -> list[str]:
    """Site blueprints in and below the current directory (two levels), for the hint of a mistyped -f."""
    found = []
    for pattern in ("*.yaml", "*.yml", "*/*.yaml", "*/*.yml", "*/*/*.yaml", "*/*/*.yml"):
        for path in sorted(Path().glob(pattern)):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    head = handle.read(4096)
            except OSError:
                continue
            if f"kind: {KIND}" in head:
                found.append(str(path))
            if len(found) >= limit:
                return found
    return found


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
    if len(text) > MAX_BLUEPRINT:  # characters: at least as many bytes
        size = len(text.encode("utf-8"))
        problem = f"document too large: {sizes(size, MAX_BLUEPRINT)}"
        return None, None, [Diagnostic(display, 1, 1, problem, hint=_TOO_LARGE_HINT)]
    doc = parse_yaml(text, display)
    diagnostics = list(doc.diagnostics)
    if has_errors(diagnostics):
        return None, doc.source, sorted(diagnostics, key=sort_key)
    header = _check_header(doc)
    if header:
        return None, doc.source, header
    from umhctl.blueprint.checks import check_blueprint

    try:
        blueprint = SiteBlueprint.model_validate(doc.data)
    except ValidationError as exc:
        # Every problem at once: report the shape problems, then check the cross-references of every part
        # that did parse, on the document without the broken parts.
        shape = _shape_diagnostics(exc, doc.source)
        pruned = _without_broken_parts(doc.data, exc, doc.source)
        if pruned is not None:
            model, source, broken_names = pruned
            cross = check_blueprint(model, source, base_dir, ignore=broken_names)
            shape += [
                d for d in cross if (d.line, d.column, d.message) not in {(s.line, s.column, s.message) for s in shape}
            ]
        return None, doc.source, sorted(shape, key=sort_key)
    diagnostics += check_blueprint(blueprint, doc.source, base_dir)
    return (None if has_errors(diagnostics) else blueprint), doc.source, sorted(diagnostics, key=sort_key)


# Sections without which there is nothing to cross-check: a shape problem in them ends the check there.
_REQUIRED = {"apiVersion", "kind", "metadata", "location", "versions", "access", "devices"}
_NAMED = ("secrets",)  # mappings of user-named entries: a broken entry goes, not the whole mapping


def _without_broken_parts(
    data: Any, exc: ValidationError, source: SourceMap
) -> tuple[SiteBlueprint, SourceMap, set[str]] | None:
    """The blueprint without the list items (or named entries, or optional sections) that hold a shape problem,
    with a source map that still points at the original positions; also the names of what was left out, so
    that a reference to a broken device is not reported as a reference to an unknown one."""
    broken: set[tuple[str | int, ...]] = set()
    kept: dict[tuple[str | int, ...], list[int]] = {}
    for _ in range(5):  # dropping a part cannot break another one; a few rounds are a safety margin
        for err in exc.errors(include_url=False):
            part = _broken_part(_original(_clean_loc(tuple(err["loc"])), kept))
            if part is None:
                return None
            broken.add(part)
        pruned, kept, names = _drop(data, broken)
        try:
            return SiteBlueprint.model_validate(pruned), _RemappedSource.of(source, kept), names
        except ValidationError as again:
            exc = again
    return None


def _broken_part(loc: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """What goes for a problem at `loc`: its innermost list item, else its named entry, else its optional
    section; None when it sits in a required section (nothing left to cross-check)."""
    last_index = max((i for i, seg in enumerate(loc) if isinstance(seg, int)), default=None)
    if last_index is not None:
        return loc[: last_index + 1]
    if len(loc) >= 2 and loc[0] in _NAMED:
        return loc[:2]
    if loc and loc[0] not in _REQUIRED:
        return loc[:1]
    return None


def _drop(
    data: Any, broken: set[tuple[str | int, ...]]
) -> tuple[Any, dict[tuple[str | int, ...], list[int]], set[str]]:
    """`data` without the `broken` parts; per shortened list, the original indices it kept; the dropped names."""
    kept: dict[tuple[str | int, ...], list[int]] = {}
    names: set[str] = set()

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if (*path, key) in broken:
                    if path and path[0] in _NAMED:
                        names.add(str(key))
                    continue
                out[key] = walk(item, (*path, key))
            return out
        if isinstance(value, list):
            indices = [i for i in range(len(value)) if (*path, i) not in broken]
            for i in set(range(len(value))) - set(indices):
                if isinstance(value[i], dict) and isinstance(value[i].get("name"), str):
                    names.add(value[i]["name"])
            if len(indices) != len(value):
                kept[path] = indices
            return [walk(value[i], (*path, i)) for i in indices]
        return value

    return walk(data, ()), kept, names


def _original(path: tuple[str | int, ...], kept: dict[tuple[str | int, ...], list[int]]) -> tuple[str | int, ...]:
    """A path in the pruned document, as a path in the original one."""
    out: list[str | int] = []
    for seg in path:
        if isinstance(seg, int) and tuple(out) in kept:
            seg = kept[tuple(out)][seg]
        out.append(seg)
    return tuple(out)


class _RemappedSource(SourceMap):
    """The original source map, addressed with paths of the pruned document."""

    kept: dict[tuple[str | int, ...], list[int]]

    @classmethod
    def of(cls, source: SourceMap, kept: dict[tuple[str | int, ...], list[int]]) -> SourceMap:
        if not kept:
            return source
        remapped = cls(source.file, source.values, source.keys, source.raw)
        remapped.kept = kept
        return remapped

    def original(self, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
        return _original(path, self.kept)


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


FEW_NAMES = 6  # up to this many known names are listed whole


def did_you_mean(word: str, candidates: typing.Iterable[str]) -> str | None:
    """Every candidate as close as the closest (one guess when two are equally likely would mislead), or all the
    known names when there are few; None when nothing is close and there are many."""
    names = list(dict.fromkeys(candidates))
    scored = [(difflib.SequenceMatcher(None, word, name).ratio(), name) for name in names]
    close = [(score, name) for score, name in scored if score >= 0.6]
    if close:
        best = max(score for score, _ in close)
        matches = [name for score, name in close if score == best]
        quoted = " or ".join(f"'{m}'" for m in matches)
        return f"did you mean {quoted}?"
    if names and len(names) <= FEW_NAMES:
        return "known: " + ", ".join(names)
    return None


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
