"""What a Grafana dashboard asks UMH's database for: the tag names and asset filters in its SQL targets.

Not a SQL parser: a lexer plus the few predicate shapes dashboards on UMH's historian use, so that a name that no
sensor stores is caught before a panel shows "No data". Recognised, on the tables `tag` and `tag_string` (by name
or alias) and `asset`:

    name = 'x'    name IN ('x', 'y')    name LIKE 'x%'    name ILIKE 'x%'    (qualified or not)
    a.enterprise | a.site | a.area | a.line | a.workcell | a.origin_id = 'x'
    get_asset_id('e', 's', 'a', 'l', 'w')  (also _stable, _immutable; get_asset_ids[_stable] with '' as "any")

Negated tests (NOT IN, <>, NOT LIKE) and literals holding a Grafana variable ('$tag', '${tag}') say nothing
checkable and are skipped. Asset filters are applied only when the query has no OR, where they are a conjunction.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from umhctl.blueprint.datapath import Asset

TAG_TABLES = ("tag", "tag_string")
ASSET_COLUMNS = ("enterprise", "site", "area", "line", "workcell", "origin_id")
_EXACT_ASSET_FUNCTIONS = ("get_asset_id", "get_asset_id_stable", "get_asset_id_immutable")
_PREFIX_ASSET_FUNCTIONS = ("get_asset_ids", "get_asset_ids_stable")
# Words that end a table reference: what follows `FROM tag` when no alias is given.
_KEYWORDS = {
    "where", "join", "inner", "left", "right", "full", "cross", "natural", "outer", "on", "using", "group", "order",
    "limit", "offset", "union", "except", "intersect", "having", "window", "as", "and", "or", "not", "select",
    "lateral", "fetch", "for",
}  # fmt: skip

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^']|'')*')
    |(?P<quoted>"(?:[^"]|"")*")
    |(?P<variable>\$__\w+|\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>\d+(?:\.\d+)?)
    |(?P<op>::|<>|!=|<=|>=|\|\||[=<>(),.;*+\-/%\[\]:])
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int  # offset in the SQL text

    @property
    def word(self) -> str:
        """Identifiers compare case-insensitively, as PostgreSQL folds unquoted names."""
        if self.kind == "quoted":
            return self.text[1:-1].replace('""', '"')
        return self.text.lower() if self.kind == "word" else ""

    @property
    def value(self) -> str:
        return self.text[1:-1].replace("''", "'")


def tokens(sql: str) -> list[Token]:
    return [Token(m.lastgroup or "other", m.group(), m.start()) for m in _TOKEN.finditer(sql) if m.lastgroup != "space"]


@dataclass(frozen=True)
class Literal:
    value: str
    start: int  # offset of its opening quote in the SQL text


@dataclass(frozen=True)
class NameTest:
    """`name = 'x'` (op "=") or `name LIKE 'x%'` (op "like"/"ilike") on `tag` or `tag_string`."""

    op: str
    literal: Literal

    def matches(self, name: str) -> bool:
        if self.op == "=":
            return name == self.literal.value
        return like(self.literal.value, name, ignore_case=self.op == "ilike")

    def describe(self) -> str:
        if self.op == "=":
            return f"'{self.literal.value}'"
        return f"{self.op.upper()} '{self.literal.value}'"


@dataclass(frozen=True)
class AssetFilter:
    """Fixed asset columns. With `any_empty`, an empty value matches every value (get_asset_ids)."""

    columns: tuple[tuple[str, str], ...]
    literal: Literal  # where it is written
    any_empty: bool = False

    def matches(self, asset: Asset) -> bool:
        return all(
            (self.any_empty and value == "") or getattr(asset, column) == value for column, value in self.columns
        )

    def describe(self) -> str:
        # An empty value of get_asset_id*() is a column left out (get_asset_ids: any value; umhctl's origin_id: '').
        return " AND ".join(f"{column} = '{value}'" for column, value in self.columns if value)


@dataclass
class TagQuery:
    """What one SQL target reads from `tag`/`tag_string`."""

    names: list[NameTest] = field(default_factory=list)
    assets: list[AssetFilter] = field(default_factory=list)
    has_or: bool = False
    # A query on several tag tables, or with a join to `asset`, may mean to mix sensors; one without cannot tell.
    filters_by_asset: bool = False

    def asset_matches(self, asset: Asset) -> bool:
        return self.has_or or all(f.matches(asset) for f in self.assets)

    def describe_assets(self) -> str:
        return " AND ".join(f.describe() for f in self.assets)


def like(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """SQL LIKE: % is any run, _ any one character, backslash escapes."""
    return _like_regex(pattern, ignore_case).fullmatch(text) is not None


@functools.lru_cache(maxsize=1024)  # a pattern is tested against every tag a hub stores
def _like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    out, escaped = "", False
    for char in pattern:
        if escaped:
            out += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out += ".*"
        elif char == "_":
            out += "."
        else:
            out += re.escape(char)
    return re.compile(out, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _checkable(token: Token) -> bool:
    # A literal holding a Grafana variable is filled in at query time: nothing to check here.
    return token.kind == "string" and "$" not in token.value and "[[" not in token.value


def _table_aliases(toks: list[Token]) -> dict[str, str]:
    """alias (or bare table name) -> table name, from FROM and JOIN clauses."""
    aliases: dict[str, str] = {}
    for i, tok in enumerate(toks):
        if tok.word not in ("from", "join"):
            continue
        j = i + 1
        if j >= len(toks) or toks[j].kind not in ("word", "quoted"):
            continue  # a subquery or a function call
        name = toks[j].word
        while j + 2 < len(toks) and toks[j + 1].text == "." and toks[j + 2].kind in ("word", "quoted"):
            j += 2
            name = toks[j].word  # schema-qualified: public.tag, umh_v2.public.tag
        if j + 1 < len(toks) and toks[j + 1].text == "(":
            continue  # FROM generate_series(...) and friends
        aliases[name] = name
        k = j + 1
        if k < len(toks) and toks[k].word == "as":
            k += 1
        if k < len(toks) and toks[k].kind in ("word", "quoted") and toks[k].word not in _KEYWORDS:
            aliases[toks[k].word] = name
    return aliases


def _strings_in_parens(toks: list[Token], open_at: int) -> tuple[list[Token], int] | None:
    """The string literals of `( 'a', 'b' )` starting at toks[open_at]; None if it is not such a list."""
    if open_at >= len(toks) or toks[open_at].text != "(":
        return None
    found, j = [], open_at + 1
    while j < len(toks):
        if toks[j].kind != "string":
            return None
        found.append(toks[j])
        if j + 1 < len(toks) and toks[j + 1].text == ",":
            j += 2
            continue
        if j + 1 < len(toks) and toks[j + 1].text == ")":
            return found, j + 1
        return None
    return None


def parse_query(sql: str) -> TagQuery | None:
    """The tag names and asset filters of one SQL target; None when it does not read `tag` or `tag_string`."""
    toks = tokens(sql)
    aliases = _table_aliases(toks)
    if not any(table in TAG_TABLES for table in aliases.values()):
        return None
    query = TagQuery(has_or=any(t.word == "or" for t in toks))
    query.filters_by_asset = "asset" in aliases.values() or sum(t in TAG_TABLES for t in set(aliases.values())) > 1
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.word in _EXACT_ASSET_FUNCTIONS + _PREFIX_ASSET_FUNCTIONS:
            args = _strings_in_parens(toks, i + 1)
            if args and args[0] and all(_checkable(a) for a in args[0]):
                values = [a.value for a in args[0]] + [""] * (len(ASSET_COLUMNS) - len(args[0]))
                query.assets.append(
                    AssetFilter(
                        tuple(zip(ASSET_COLUMNS, values, strict=False)),
                        Literal(args[0][0].value, args[0][0].start),
                        any_empty=tok.word in _PREFIX_ASSET_FUNCTIONS,
                    )
                )
                query.filters_by_asset = True
            i += 1
            continue
        if tok.kind not in ("word", "quoted"):
            i += 1
            continue
        table, column, j = None, tok.word, i + 1
        if j + 1 < len(toks) and toks[j].text == "." and toks[j + 1].kind in ("word", "quoted"):
            table, column, j = aliases.get(tok.word), toks[j + 1].word, j + 2
        elif column == "name":
            table = next((t for t in aliases.values() if t in TAG_TABLES), None)
        elif column in ASSET_COLUMNS:
            table = "asset" if "asset" in aliases.values() else None
        negated = j < len(toks) and toks[j].word == "not"
        if negated:
            j += 1
        op = (toks[j].word or toks[j].text) if j < len(toks) else ""
        literals: list[Token] = []
        end = j
        if op in ("=", "like", "ilike") and j + 1 < len(toks) and toks[j + 1].kind == "string":
            literals, end = [toks[j + 1]], j + 2
        elif op == "in":
            parsed = _strings_in_parens(toks, j + 1)
            if parsed:
                literals, end = parsed[0], parsed[1] + 1
        if not literals or negated:
            i += 1
            continue
        checkable = [t for t in literals if _checkable(t)]
        if table in TAG_TABLES and column == "name":
            kind = "=" if op in ("=", "in") else op
            query.names += [NameTest(kind, Literal(t.value, t.start)) for t in checkable]
        elif table == "asset" and column in ASSET_COLUMNS and op == "=" and checkable:
            literal = Literal(checkable[0].value, checkable[0].start)
            query.assets.append(AssetFilter(((column, literal.value),), literal))
        i = end
    return query


@dataclass(frozen=True)
class SqlTarget:
    """The SQL of one panel target, and where it sits in the dashboard file."""

    sql: str
    panel: str
    _raw_offsets: tuple[int, ...] = ()  # SQL offset -> offset in the file text; empty when not found
    _text: str = ""

    def position(self, sql_offset: int) -> tuple[int, int] | None:
        """1-based line and column in the dashboard file of the SQL character at `sql_offset`."""
        if not self._raw_offsets:
            return None
        at = self._raw_offsets[min(sql_offset, len(self._raw_offsets) - 1)]
        line = self._text.count("\n", 0, at) + 1
        return line, at - (self._text.rfind("\n", 0, at) + 1) + 1


def _targets(data: Any, panel: str = "") -> Iterator[tuple[str, str]]:
    """(SQL, panel title) of every target with rawSql, in document order (dicts keep the file's key order)."""
    if isinstance(data, dict):
        raw_title = data.get("title")
        title = raw_title if isinstance(raw_title, str) else panel
        if isinstance(data.get("rawSql"), str):
            yield data["rawSql"], panel
        for value in data.values():
            yield from _targets(value, title)
    elif isinstance(data, list):
        for item in data:
            yield from _targets(item, panel)


def _raw_offsets(text: str, content_start: int, length: int) -> tuple[int, ...]:
    """For each character of a decoded JSON string, the offset in `text` of what encodes it."""
    offsets: list[int] = []
    at = content_start
    while len(offsets) < length:
        offsets.append(at)
        if text[at] != "\\":
            at += 1
        elif text[at + 1] == "u":
            high = int(text[at + 2 : at + 6], 16)
            pair = 0xD800 <= high < 0xDC00 and text[at + 6 : at + 8] == "\\u"
            at += 12 if pair else 6  # json decodes a surrogate pair into one character
        else:
            at += 2
    return tuple(offsets)


def sql_targets(data: Any, text: str) -> list[SqlTarget]:
    """Every SQL target of a dashboard, each able to say where its characters are in `text`."""
    located: list[tuple[str, int]] = []
    decoder = json.JSONDecoder()
    for match in re.finditer(r'"rawSql"\s*:\s*"', text):
        try:
            value, _ = decoder.raw_decode(text, match.end() - 1)  # from the string's opening quote
        except ValueError:
            continue
        if isinstance(value, str):
            located.append((value, match.end()))
    result = []
    for sql, panel in _targets(data):
        index = next((k for k, (value, _) in enumerate(located) if value == sql), None)
        if index is None:
            result.append(SqlTarget(sql, panel))
            continue
        _, start = located.pop(index)
        result.append(SqlTarget(sql, panel, _raw_offsets(text, start, len(sql)), text))
    return result
