"""`umhctl validate` through the CLI: exit codes, text and JSON reports, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app

from .conftest import BLUEPRINTS, EXAMPLES, ROOT

runner = CliRunner()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_exit_zero(path: Path) -> None:
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_json_report_of_a_valid_blueprint() -> None:
    result = runner.invoke(app, ["validate", "-f", str(BLUEPRINTS / "demo-site.yaml"), "-o", "json"])
    report = json.loads(result.stdout)
    assert report == {
        "format_version": "1",
        "command": "validate",
        "file": str(BLUEPRINTS / "demo-site.yaml"),
        "valid": True,
        "counts": {"devices": 3, "io_link_masters": 2, "sensors": 6, "dashboards": 1},
        "diagnostics": [],
    }


def test_json_report_lists_every_problem(tmp_path: Path, demo_text: str) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text(demo_text.replace("role: hub", "role: hubb").replace("    installDisk", "    instalDisk", 1))
    # Copies, not symlinks: files the blueprint pulls in must lie inside its directory, and
    # every check of the parts that parsed runs, so a missing template would be a third problem.
    shutil.copytree(BLUEPRINTS / "dashboards", tmp_path / "dashboards")
    shutil.copytree(BLUEPRINTS / "files", tmp_path / "files")
    result = runner.invoke(app, ["validate", "-f", str(path), "-o", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert len(report["diagnostics"]) == 2
    for d in report["diagnostics"]:
        assert {"file", "line", "column", "message", "severity", "hint", "path"} <= d.keys()
        assert d["file"] == str(path) and d["line"] > 0 and d["column"] > 0
    assert [d["path"] for d in report["diagnostics"]] == ["devices[0].role", "devices[0].instalDisk"]


def test_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "no such file" in result.output and "Traceback" not in result.output


def test_default_blueprint_comes_from_environment() -> None:
    result = runner.invoke(app, ["validate"], env={"UMHCTL_BLUEPRINT": str(BLUEPRINTS / "demo-site.yaml")})
    assert result.exit_code == 0, result.output


def test_real_process_no_colour_when_piped(tmp_path: Path) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text("apiVersion: umhctl/v2\nkind: SiteBlueprint\n")
    proc = subprocess.run(
        [sys.executable, "-m", "umhctl", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    assert f"{path}:1:13: error: unknown apiVersion 'umhctl/v2'" in proc.stdout
    assert "\x1b[" not in proc.stdout and "Traceback" not in proc.stderr
