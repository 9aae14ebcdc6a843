"""Read a YAML document into plain Python data plus the position of every key and value.

A parser composes the node graph (which carries marks); we build the data ourselves so that duplicate
keys are all reported (not only the first), odd tags are refused, and positions are kept for every path.

Two parsers, one meaning. libyaml (through PyYAML's C `CParser`, composing only) is the fast path: it parses a
500-device blueprint some 40 times faster than ruamel.yaml's pure-Python parser, and its node marks carry the
same 0-based line and column (counted in characters). Scalars are resolved by YAML 1.2 rules, the ones
ruamel.yaml applies (`_Resolver12`), not PyYAML's YAML 1.1 ones, so `on`, `yes` and `0644` keep their meaning.
ruamel.yaml stays the reference: every document the fast path does not read cleanly (a syntax error, any
diagnostic, a directive, a tab, a line break YAML 1.1 and 1.2 disagree on) is read again by ruamel.yaml, whose
error marks and messages the hints below are written for. tests/test_yamlsource.py compares the two paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from umhctl.diagnostics import Diagnostic, format_path

if TYPE_CHECKING:
    from ruamel.yaml.error import MarkedYAMLError

# Nodes of either parser: both have `id` ("scalar", "sequence", "mapping"), `tag`, `value` and `start_mark`.
Node = Any

Path = tuple[str | int, ...]
Pos = tuple[int, int]  # 1-based line, column

_CORE = "tag:yaml.org,2002:"
_MAX_NODES = 200_000  # an alias bomb must end in a clean error, not eat the machine
# Blueprints nest about 10 levels (vars may add some); composing and building recurse once per level.
MAX_DEPTH = 100


@dataclass
class SourceMap:
    """Where each path of the document sits in the file."""

    file: str
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)
    # Numbers as written ("0.30", "0o644"): hints quote what the user typed, not what it parsed to.
    raw: dict[Path, str] = field(default_factory=dict)

    def original(self, path: Path) -> Path:
        """`path` as a path of the parsed file (a view of a shortened document maps it back)."""
        return path

    def locate(self, path: Path, *, key: bool = False) -> Pos:
        """The position of `path` (its key if `key`), or of its nearest existing ancestor."""
        return self._find(self.original(path), key)

    def _find(self, path: Path, key: bool) -> Pos:
        if key and path in self.keys:
            return self.keys[path]
        if path in self.values:
            return self.values[path]
        while path:
            path = path[:-1]
            # A missing child is best shown at its parent's key: "devices[0]: missing field 'role'".
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
        return (1, 1)

    def diagnostic(
        self, path: Path, message: str, *, hint: str | None = None, key: bool = False, severity: str = "error"
    ) -> Diagnostic:
        path = self.original(path)
        line, column = self._find(path, key)
        return Diagnostic(
            file=self.file,
            line=line,
            column=column,
            message=message,
            hint=hint,
            path=format_path(path),
            severity="warning" if severity == "warning" else "error",
        )


@dataclass
class Document:
    data: Any
    source: SourceMap
    diagnostics: list[Diagnostic]


def _pos(node: Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, source: SourceMap, construct: Callable[[Node], Any], *, fast: bool = False) -> None:
        self.source = source
        self.construct = construct
        self.fast = fast
        self.diagnostics: list[Diagnostic] = []
        self.count = 0
        self.active: set[int] = set()

    def error(self, node: Node, message: str, hint: str | None = None, path: Path = ()) -> None:
        line, column = _pos(node)
        self.diagnostics.append(Diagnostic(self.source.file, line, column, message, hint=hint, path=format_path(path)))

    def build(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooLarge(node)
        if len(path) >= MAX_DEPTH:  # the root is level 1
            raise _TooDeep(node)
        self.source.values.setdefault(path, _pos(node))
        if id(node) in self.active:
            self.error(node, "recursive alias: a value cannot contain itself", path=path)
            return None
        if node.id == "scalar":
            if self.fast and not node.value and not node.style:
                # An empty plain value (`key:`) has no text to point at: libyaml and ruamel.yaml put its mark
                # in different places, and the reference parser's is the one users see.
                raise _Unsure
            if self.fast and node.style in ("|", ">") and node.value[:1] in ("", "\n"):
                # Leading blank lines of a block scalar: ruamel.yaml refuses some that libyaml takes (spaces
                # beyond the first line's indentation); the reference decides.
                raise _Unsure
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if node.id == "sequence":
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            if node.id == "mapping":
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.error(node, f"unsupported YAML node {type(node).__name__}", path=path)
        return None

    def scalar(self, node: Node, path: Path) -> Any:
        tag = node.tag or ""
        if not _encodable(node.value):
            self.error(node, "text with invalid Unicode (an unpaired surrogate escape such as \\ud800)", path=path)
            return ""
        if tag == _CORE + "str" or tag == _CORE + "timestamp":
            # Dates stay text: a blueprint has no date fields, and "2024-01-01" must not turn into an object.
            return node.value
        if tag in (_CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
            self.source.raw[path] = node.value
            try:
                return self.construct(node)
            except (_ConstructError, ValueError, OverflowError):
                self.error(node, f"cannot read {tag.removeprefix(_CORE)} value {node.value!r}", path=path)
                return node.value
        self.error(
            node,
            f"unsupported YAML tag {tag!r}",
            hint="blueprints use plain YAML: remove the '!' tag",
            path=path,
        )
        return node.value

    def key(self, node: Node, path: Path) -> str | None:
        """The key as text, or None (reported) when it is not a plain name."""
        if node.id != "scalar" or node.tag not in (_CORE + "str", _CORE + "int"):
            self.error(node, "mapping keys must be plain names", path=path)
            return None
        if not _encodable(str(node.value)):
            self.error(node, "key with invalid Unicode (an unpaired surrogate escape)", path=path)
            return None
        return str(node.value)

    def mapping(self, node: Node, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Pos] = {}
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _CORE + "merge":
                sources = value_node.value if value_node.id == "sequence" else [value_node]
                for src in sources:
                    if src.id == "mapping":
                        merged.extend(src.value)
                    else:
                        self.error(src, "'<<' merge needs a mapping (or a list of mappings)", path=path)
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            child = path + (key,)
            if key in seen:
                line, col = seen[key]
                self.error(
                    key_node,
                    f"duplicate key '{key}'",
                    hint=f"'{key}' is already set at line {line}, column {col}; keep only one",
                    path=child,
                )
                continue
            seen[key] = _pos(key_node)
            self.source.keys[child] = _pos(key_node)
            result[key] = self.build(value_node, child)
        # Explicit keys win over merged ones, as in YAML's merge-key spec.
        for key_node, value_node in merged:
            key = self.key(key_node, path)
            if key is not None and key not in result:
                child = path + (key,)
                self.source.keys.setdefault(child, _pos(key_node))
                result[key] = self.build(value_node, child)
        return result


def _encodable(text: str) -> bool:
    if text.isascii():  # nearly every scalar; no surrogate is ASCII
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _TooLarge(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


class _TooDeep(_TooLarge):
    pass


def _too_deep(file: str, line: int, column: int) -> Diagnostic:
    return Diagnostic(file, line, column, f"nested deeper than {MAX_DEPTH} levels", hint="a blueprint nests ~10 levels")


def _deep_position(yaml: Any, text: str) -> tuple[int, int]:
    """Where the nesting first goes deeper than MAX_DEPTH: composing recursed too deep to say it, the parser's event
    stream (not recursive) can."""
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent

    depth = 0
    try:
        for event in yaml.parse(text):
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1
    except YAMLError:
        pass
    return 1, 1


def _reader_error(file: str, exc: Any, text: str) -> Diagnostic:
    """A character YAML does not allow (NUL, most control characters), at its line and column (`exc`: ruamel's
    ReaderError)."""
    at = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
    return Diagnostic(
        file, line, column, f"character U+{code:04X} is not allowed in YAML", hint="remove it (a NUL or control byte)"
    )


# The parser's own words for what it expected, and what a person would call it.
_TOKENS = {
    "<block end>": "the end of the section",
    "<block mapping start>": "a field",
    "<block sequence start>": "a list",
    "<flow mapping start>": "a '{'",
    "<flow sequence start>": "a '['",
    "<document start>": "the start of the document",
    "<stream end>": "the end of the file",
    "'-'": "a list item ('- ')",
    "'?'": "a '?'",
}


def _plain(problem: str) -> str:
    problem = problem.replace("'<", "<").replace(">'", ">")
    for token, words in _TOKENS.items():
        problem = problem.replace(token, words)
    return problem


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> str:
    """The line without its comment (a '#' after a space, outside quotes: close enough for hints)."""
    stripped = line.strip()
    if stripped.startswith("#"):
        return ""
    return stripped.split(" #", 1)[0].rstrip()


def _previous(lines: list[str], index: int) -> int | None:
    for before in range(index - 1, -1, -1):
        if _content(lines[before]):
            return before
    return None


def _misplaced_colon(lines: list[str], line: int, column: int) -> tuple[int, int, str, str] | None:
    """'mapping values are not allowed here', said where the problem is: a value holding ': ', a key without
    its ':' on the line before (the parser notices only at the next key), or a line indented under a value."""
    if not 0 <= line < len(lines):
        return None
    text = lines[line]
    before = text[:column].strip().removeprefix("- ")
    if ": " in before:
        key = before.split(":", 1)[0]
        return (
            line,
            column,
            f"a ': ' inside the value of '{key}': YAML reads it as the start of another field",
            f'put the value in quotes: {key}: "{text.split(": ", 1)[1].strip()}"',
        )
    above = _previous(lines, line)
    if above is None:
        return None
    prior = _content(lines[above])
    if ":" not in prior.removeprefix("- ") and _indent(lines[above]) == _indent(text):
        words = prior.removeprefix("- ").split(None, 1)
        fix = f"{words[0]}: {words[1]}" if len(words) == 2 else f"{words[0]}:"
        return above, _indent(lines[above]) + 1, f"'{prior}' has no ':' after its key", f"write '{fix}'"
    if _indent(text) > _indent(lines[above]) and not prior.endswith(":"):
        return (
            line,
            _indent(text) + 1,
            f"this line is indented deeper than line {above + 1}, which holds a value, not a section",
            f"line up this line with line {above + 1} (column {_indent(lines[above]) + 1}), or end line "
            f"{above + 1} with ':' to make it a section",
        )
    return None


def _misaligned(lines: list[str], line: int, problem: str) -> tuple[str, str] | None:
    """'expected <block end>, but found ...': a line that does not line up with the section it is in."""
    if not 0 <= line < len(lines):
        return None
    found = "a list item" if lines[line].lstrip().startswith("-") else "this line"
    levels = sorted({_indent(lines[i]) for i in range(line) if _content(lines[i])})
    column = _indent(lines[line]) + 1
    near = [level + 1 for level in levels if abs(level + 1 - column) <= 2 and level + 1 != column]
    where = f"column {' or '.join(str(n) for n in near)}" if near else "the column of its section's other fields"
    if found == "a list item":
        return (
            f"a list item where a field is expected ({_plain(problem)})",
            "a section holds either fields ('key: value') or list items ('- ...'), not both: check the line above",
        )
    return (
        f"this line starts in column {column} and lines up with no section above it ({_plain(problem)})",
        f"YAML reads indentation as structure: start it in {where}, like the fields it belongs with",
    )


def _yaml_error(file: str, exc: MarkedYAMLError, text: str = "") -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    message = f"YAML syntax error: {_plain(problem)}"
    hint = None
    lines = text.split("\n")
    if "\\t" in problem or "tab" in problem.lower():
        message = "YAML syntax error: tab character used for indentation"
        hint = "YAML allows only spaces for indentation; replace the tab with spaces"
    elif "expected a single document" in str(exc):
        message = "YAML syntax error: more than one document in the file"
        hint = "a blueprint is one YAML document; remove the '---' separator"
    elif "mapping values are not allowed" in problem and (found := _misplaced_colon(lines, line - 1, column - 1)):
        at, col, what, hint = found
        line, column, message = at + 1, col, f"YAML syntax error: {what}"
    elif "could not find expected ':'" in problem or "mapping values are not allowed" in problem:
        hint = "check the indentation, and that every key is followed by ': '"
    elif problem.startswith("expected <block end>") and (words := _misaligned(lines, line - 1, problem)):
        message, hint = f"YAML syntax error: {words[0]}", words[1]
    if exc.context and exc.context.startswith("while parsing a flow") and exc.context_mark is not None:
        # An unclosed [ or {: the parser notices late, at some later line; the cause is where it was opened.
        opener = "[" if "sequence" in exc.context else "{"
        hint = f"the parser noticed at line {line}, column {column}; close the '{opener}' or check its entries"
        line, column = exc.context_mark.line + 1, exc.context_mark.column + 1
        message = f"YAML syntax error: this '{opener}' is not closed properly ({problem})"
    return Diagnostic(file, line, column, message, hint=hint)


def _empty(file: str, source: SourceMap) -> Document:
    hint = "a blueprint starts with 'apiVersion: umhctl/v1' and 'kind: SiteBlueprint'; see blueprints/demo-site.yaml"
    return Document(None, source, [Diagnostic(file, 1, 1, "the file is empty", hint=hint)])


class _Unsure(Exception):
    """The fast path cannot vouch for a position: the reference parser reads the document instead."""


def _build(
    root: Node, file: str, source: SourceMap, construct: Callable[[Node], Any], *, fast: bool = False
) -> Document:
    builder = _Builder(source, construct, fast=fast)
    try:
        data = builder.build(root, ())
    except _TooDeep as too_deep:
        return Document(None, source, [_too_deep(file, *_pos(too_deep.node))])
    except _TooLarge as too_large:
        line, column = _pos(too_large.node)
        message = f"the document holds more than {_MAX_NODES:,} values (each use of a YAML alias counts anew)"
        return Document(None, source, [Diagnostic(file, line, column, message)])
    return Document(data, source, builder.diagnostics)


def parse_yaml(text: str, file: str) -> Document:
    """Parse `text`; syntax problems come back as diagnostics, never as exceptions."""
    fast = _parse_fast(text, file)
    return fast if fast is not None else _parse_reference(text, file)


def _parse_reference(text: str, file: str) -> Document:
    """ruamel.yaml's pure-Python parser: slower, but the one whose errors and marks the hints are written for."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    source = SourceMap(file)
    yaml = YAML(typ="safe", pure=True)
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        return Document(None, source, [_yaml_error(file, exc, text)])
    except ReaderError as exc:
        return Document(None, source, [_reader_error(file, exc, text)])
    except RecursionError:
        return Document(None, source, [_too_deep(file, *_deep_position(yaml, text))])
    except YAMLError as exc:
        return Document(None, source, [Diagnostic(file, 1, 1, f"YAML error: {exc}")])
    if root is None:
        return _empty(file, source)

    def construct(node: Node) -> Any:
        try:
            return yaml.constructor.construct_object(node, deep=True)
        except (YAMLError, KeyError, IndexError) as exc:  # `!!bool maybe`, `!!int ""`
            raise _ConstructError from exc

    return _build(root, file, source, construct)


# What the fast path leaves to the reference parser, unread: directives (`%YAML 1.1` changes scalar meanings),
# tabs (libyaml and ruamel.yaml accept them in different places), and the characters YAML 1.1 reads as line
# breaks but YAML 1.2 does not (NEL, LS, PS), which would shift line numbers; a tag before an anchor
# (`!!str &a x`), whose node ruamel.yaml marks at the anchor and libyaml at the tag.
_NOT_FAST = re.compile("[\t\x85\u2028\u2029\ufeff]|^%|!\\S*[ ]+&", re.MULTILINE)


def _parse_fast(text: str, file: str) -> Document | None:
    """libyaml's reading of `text`, or None when the reference parser must read it (see the module doc)."""
    if _NOT_FAST.search(text):
        return None
    loader = _fast_loader()
    if loader is None:
        return None
    source = SourceMap(file)
    try:
        root = loader(text).get_single_node()
    except Exception:  # any complaint at all: the reference parser says it properly
        return None
    if root is None:
        return None
    try:
        doc = _build(root, file, source, _construct12, fast=True)
    except _Unsure:
        return None
    return doc if not doc.diagnostics and doc.data is not None else None


class _ConstructError(Exception):
    """A scalar whose tag and text do not go together (`!!int abc`)."""


_BOOLS = {"yes": True, "no": False, "y": True, "n": False, "true": True, "false": False, "on": True, "off": False}


def _construct12(node: Node) -> Any:
    """A core-schema scalar as ruamel.yaml's SafeConstructor builds it under YAML 1.2 (construct_yaml_int,
    _float, _bool, _null in ruamel/yaml/constructor.py): `0644` is 644, `0o644` is 420, `1_000` is 1000."""
    tag, text = node.tag, node.value
    if tag == _CORE + "null":
        return None
    if tag == _CORE + "bool":
        try:
            return _BOOLS[text.lower()]
        except KeyError:
            raise _ConstructError(text) from None
    digits = text.replace("_", "")
    sign = -1 if digits[:1] == "-" else 1
    if digits[:1] in ("+", "-"):
        digits = digits[1:]
    if tag == _CORE + "int":
        if not digits:
            raise _ConstructError(text)
        if digits == "0":
            return 0
        for prefix, base in (("0b", 2), ("0x", 16), ("0o", 8)):
            if digits.startswith(prefix):
                return sign * int(digits[2:], base)
        return sign * int(digits)
    digits = digits.lower()
    if digits == ".inf":
        return sign * float("inf")
    if digits == ".nan":
        return float("nan")
    return sign * float(digits)


_loader_class: Any = None
_STR, _SEQ, _MAP = _CORE + "str", _CORE + "seq", _CORE + "map"


def _fast_loader() -> Any:
    """PyYAML's libyaml parser with ruamel.yaml's YAML 1.2 resolver, or None without libyaml."""
    global _loader_class
    if _loader_class is None:
        try:
            from yaml.cyaml import CParser  # type: ignore[import-untyped, unused-ignore]
            from yaml.nodes import ScalarNode, SequenceNode  # type: ignore[import-untyped, unused-ignore]
            from yaml.resolver import BaseResolver  # type: ignore[import-untyped, unused-ignore]
        except ImportError:
            _loader_class = False
            return None

        class _Resolver12(BaseResolver):  # type: ignore[misc]
            pass

        for tag, pattern, first in _RESOLVERS_12:
            _Resolver12.add_implicit_resolver(_CORE + tag, re.compile(pattern, re.X), list(first))

        table = _Resolver12.yaml_implicit_resolvers

        class _Loader(CParser, _Resolver12):  # type: ignore[misc]
            def __init__(self, stream: str) -> None:
                CParser.__init__(self, stream)
                _Resolver12.__init__(self)

            # BaseResolver.resolve with what a blueprint does not use left out (path resolvers): the parser
            # calls it for every node, and the general version is most of the parse time.
            def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
                if kind is ScalarNode:
                    if implicit[0]:
                        for tag, regexp in table.get(value[:1], ()):
                            if regexp.match(value):
                                return tag  # type: ignore[no-any-return]
                    return _STR
                return _SEQ if kind is SequenceNode else _MAP

            def descend_resolver(self, current_node: Any, current_index: Any) -> None:
                pass

            def ascend_resolver(self) -> None:
                pass

        _loader_class = _Loader
    return _loader_class or None


# ruamel.yaml's implicit resolvers for YAML 1.2, copied from ruamel/yaml/resolver.py (`implicit_resolvers`,
# the entries whose versions include (1, 2)), in its order: (tag, pattern, first characters).
_RESOLVERS_12 = [
    ("bool", r"""^(?:true|True|TRUE|false|False|FALSE)$""", "tTfF"),
    (
        "float",
        r"""^(?:
         [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        "-+0123456789.",
    ),
    (
        "int",
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0o?[0-7_]+
        |[-+]?[0-9_]+
        |[-+]?0x[0-9a-fA-F_]+)$""",
        "-+0123456789",
    ),
    ("merge", r"^(?:<<)$", "<"),
    (
        "null",
        r"""^(?: ~
        |null|Null|NULL
        | )$""",
        ["~", "n", "N", ""],
    ),
    (
        "timestamp",
        r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
        (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
        "0123456789",
    ),
    ("value", r"^(?:=)$", "="),
    ("yaml", r"^(?:!|&|\*)$", "!&*"),
]
