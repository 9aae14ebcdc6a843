"""The dashboard check: what a dashboard's SQL asks UMH's database for, against what the site's sensors store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from umhctl.blueprint.dashboards import like, parse_query, sql_targets
from umhctl.blueprint.datapath import Asset, stored_tags
from umhctl.blueprint.loader import load_blueprint, validate_text
from umhctl.diagnostics import Diagnostic

from .conftest import BLUEPRINTS, EXAMPLES

PRESS = Asset("acme", "cologne", "assembly", "line-1", "press")
PAINT = Asset("acme", "cologne", "assembly", "line-2", "paint")


def _names(sql: str) -> list[tuple[str, str]]:
    query = parse_query(sql)
    assert query is not None
    return [(n.op, n.literal.value) for n in query.names]


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT timestamp AS time, value FROM tag WHERE name = 'vibration'", [("=", "vibration")]),
        ("SELECT * FROM public.tag t WHERE t.name IN ('a', 'b') AND x = 1", [("=", "a"), ("=", "b")]),
        ('SELECT * FROM umh_v2.public."tag" AS t WHERE t."name" LIKE \'%Vibration\'', [("like", "%Vibration")]),
        ("SELECT * FROM tag_string s WHERE s.name ILIKE 'state%'", [("ilike", "state%")]),
        ("SELECT * FROM tag WHERE name NOT IN ('a') AND name <> 'b' AND name NOT LIKE 'c%'", []),
        ("SELECT * FROM tag WHERE name = '$tag' OR name = '${other}' OR name IN ([[x]])", []),
        ("SELECT * FROM tag WHERE name = 'it''s'", [("=", "it's")]),
        ("SELECT name FROM tag -- name = 'commented'\nWHERE name = 'real' /* name = 'no' */", [("=", "real")]),
    ],
)
def test_names_a_query_asks_for(sql: str, names: list[tuple[str, str]]) -> None:
    assert _names(sql) == names


def test_queries_without_tag_tables_are_not_checked() -> None:
    assert parse_query("SELECT * FROM asset WHERE workcell = 'press'") is None
    assert parse_query("SELECT * FROM work_order WHERE name = 'x'") is None
    assert parse_query("SELECT 1 FROM generate_series(1, 3) tag") is None


def test_asset_filters() -> None:
    query = parse_query(
        "SELECT * FROM tag t JOIN asset a ON a.id = t.asset_id WHERE a.line = 'line-1' AND a.workcell = 'press' "
        "AND t.name = 'temperature'"
    )
    assert query is not None and query.filters_by_asset
    assert query.asset_matches(PRESS) and not query.asset_matches(PAINT)
    exact = parse_query("SELECT * FROM tag WHERE asset_id = get_asset_id_immutable('acme', 'cologne', 'assembly')")
    assert exact is not None and not exact.asset_matches(PRESS), "get_asset_id: omitted levels are ''"
    prefix = parse_query("SELECT * FROM tag WHERE asset_id IN (SELECT get_asset_ids('acme', 'cologne', 'assembly'))")
    assert prefix is not None and prefix.asset_matches(PRESS) and prefix.asset_matches(PAINT)
    either = parse_query("SELECT * FROM tag t JOIN asset a ON a.id = t.asset_id WHERE a.line = 'x' OR a.line = 'y'")
    assert either is not None and either.asset_matches(PRESS), "under OR the filters are not a conjunction"


def test_like() -> None:
    assert like("%Vibration", "spindleVibration") and not like("%Vibration", "spindleVibrationPeak")
    assert like("a_c", "abc") and not like("a_c", "abbc")
    assert like("100\\%", "100%") and not like("100\\%", "1000")
    assert like("VIB%", "vibration", ignore_case=True) and not like("VIB%", "vibration")


def test_positions_are_those_of_the_dashboard_file() -> None:
    sql = "SELECT timestamp AS \"time\" FROM tag WHERE note = 'é\u2603\U0001f600' AND name = 'vibration'"
    text = json.dumps({"panels": [{"title": "P", "targets": [{"rawSql": sql}]}]}, indent=2)  # escapes ", é, ☃, 😀
    (target,) = sql_targets(json.loads(text), text)
    query = parse_query(target.sql)
    assert query is not None
    position = target.position(query.names[0].literal.start)
    assert position is not None
    line, column = position
    assert text.splitlines()[line - 1][column - 1 :].startswith("'vibration'")
    assert target.panel == "P"


def test_every_example_dashboard_query_names_a_stored_tag() -> None:
    """Acceptance: for both examples every name queried is one the bridge stores (validate reports no problem)."""
    for path in EXAMPLES:
        loaded = load_blueprint(path)
        assert loaded.warnings == []
        names = {t.name for t in stored_tags(loaded.blueprint)}
        for dashboard in loaded.blueprint.dashboards:
            text = (path.parent / dashboard.file).read_text()
            targets = sql_targets(json.loads(text), text)
            assert targets
            for target in targets:
                query = parse_query(target.sql)
                assert query is not None, target.sql
                for test in query.names:
                    assert any(test.matches(n) for n in names), (dashboard.file, test.describe())


def _site(tmp_path: Path, text: str, dashboards: dict[str, str]) -> list[Diagnostic]:
    """Validate `text` in a scratch directory holding the demo's files and the given dashboards."""
    shutil.copytree(BLUEPRINTS / "files", tmp_path / "files")
    shutil.copy(BLUEPRINTS / "known_hosts", tmp_path)
    (tmp_path / "dashboards").mkdir()
    for name, content in dashboards.items():
        (tmp_path / "dashboards" / name).write_text(content)
    _, _, diagnostics = validate_text(text, str(tmp_path / "bp.yaml"), base_dir=tmp_path)
    return diagnostics


def _demo_dashboard(change_sql: dict[str, str] | None = None) -> str:
    data = json.loads((BLUEPRINTS / "dashboards" / "line-overview.json").read_text())
    for panel in data["panels"]:
        for target in panel["targets"]:
            for old, new in (change_sql or {}).items():
                target["rawSql"] = target["rawSql"].replace(old, new)
    return json.dumps(data, indent=2)


def test_a_tag_shared_by_two_sensors_without_an_asset_filter_is_a_warning(tmp_path: Path, demo_text: str) -> None:
    dashboard = _demo_dashboard(
        {"asset_id = get_asset_id_immutable('acme', 'cologne', 'assembly', 'line-1', 'press') AND ": ""}
    )
    diagnostics = _site(tmp_path, demo_text, {"line-overview.json": dashboard})
    assert not [d for d in diagnostics if d.severity == "error"]
    (warning, *more) = [d for d in diagnostics if d.severity == "warning"]
    assert warning.file.endswith("dashboards/line-overview.json") and warning.line == 46
    assert (
        "mixes 2 sensors: tag 'vibration' is stored for assembly/line-1/press, assembly/line-2/paint" in warning.message
    )
    assert warning.hint and "get_asset_id_immutable('acme', 'cologne', 'assembly', 'line-1', 'press')" in warning.hint
    assert len(more) == 1, "the press temperature panel mixes too; welding distance and paint temperature filter"


def test_each_hub_answers_only_for_its_own_sensors(tmp_path: Path) -> None:
    """A dashboard on two hubs queries two databases: each must hold the names it asks for."""
    text = (BLUEPRINTS / "retrofit-site.yaml").read_text()
    spindles = "file: dashboards/retrofit-machining-spindles.json\n    datasources: [timescaledb]\n"
    both = f"{spindles}    devices: [hub-machining, hub-assembly]"
    text = text.replace(f"{spindles}    devices: [hub-machining]", both)
    dashboards = {p.name: p.read_text() for p in (BLUEPRINTS / "dashboards").glob("retrofit-*.json")}
    errors = [d for d in _site(tmp_path, text, dashboards) if d.severity == "error"]
    assert errors
    assert all(
        "hub 'hub-assembly'" in d.message and d.file.endswith("retrofit-machining-spindles.json") for d in errors
    )
    assert any("queries tag 'wheelSpindleVibration', which no sensor stores" in d.message for d in errors)


def test_sensor_problems_are_reported_without_dashboard_echoes(demo_text: str) -> None:
    broken = demo_text.replace(
        "workCell: assembly/line-1/press,\n     values: [{processData: Temperature",
        "workCell: assembly/line-1/pres,\n     values: [{processData: Temperature",
    )
    _, _, diagnostics = validate_text(broken, "bp.yaml", base_dir=BLUEPRINTS)
    assert [d.message for d in diagnostics] == ["unknown work cell 'assembly/line-1/pres'"]
