"""`umhctl diff`: the desired-state change per device between two commits, from git objects, with no secret and
no SSH (real git repositories)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app

from .conftest import BLUEPRINTS, git

JOURNALD = "/etc/systemd/journald.conf.d/50-retention.conf"
DB_SETUP = "/var/lib/rancher/k3s/server/manifests/umhctl-timescaledb-setup.yaml"
SECRETS = "/var/lib/rancher/k3s/server/manifests/umhctl-secrets.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "site"
    shutil.copytree(BLUEPRINTS, repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "site")
    return repo


def edit(repo: Path, old: str, new: str, message: str | None = None) -> None:
    blueprint = repo / "demo-site.yaml"
    text = blueprint.read_text()
    assert old in text
    blueprint.write_text(text.replace(old, new, 1))
    if message:
        git(repo, "commit", "-qam", message)


def diff(repo: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    store = tmp_path / "secret-store"
    result = CliRunner().invoke(
        app, ["diff", *args, "-f", str(repo / "demo-site.yaml")], env={"UMHCTL_SECRETS_DIR": str(store)}
    )
    assert not store.exists(), "diff must read and write no secret"
    return result.exit_code, result.output


def changed(document: dict[str, object]) -> dict[str, dict[str, str]]:
    devices = document["devices"]
    assert isinstance(devices, list)
    return {d["device"]: {c["path"]: c["change"] for c in d["changes"]} for d in devices if d["changes"]}


def test_diff_between_two_commits_shows_exactly_the_changed_artifacts(repo: Path, tmp_path: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    edit(repo, "retention: 90d", "retention: 60d")
    edit(repo, "max_use: 512M", "max_use: 1G", "shorter retention, bigger journal")
    code, out = diff(repo, tmp_path, first, "HEAD", "-o", "json")
    assert code == 0, out
    document = json.loads(out)
    assert document["old"]["commit"] == first and document["new"]["rev"] == "HEAD"
    assert changed(document) == {
        "hub-01": {JOURNALD: "changed", DB_SETUP: "changed"},
        "edge-01": {JOURNALD: "changed"},
        "edge-02": {JOURNALD: "changed"},
    }
    journald = next(c for c in document["devices"][1]["changes"] if c["path"] == JOURNALD)
    assert "-SystemMaxUse=512M\n+SystemMaxUse=1G\n" in journald["diff"]
    assert journald["restarts"] == ["systemd-journald.service"]
    # the same commits the other way round: the same paths
    code, out = diff(repo, tmp_path, "HEAD", first, "-o", "json")
    assert changed(json.loads(out)) == changed(document)


def test_default_is_head_against_the_working_tree_which_stays_untouched(repo: Path, tmp_path: Path) -> None:
    code, out = diff(repo, tmp_path)
    assert code == 0 and "No device changes." in out
    edit(repo, "max_use: 512M", "max_use: 2G")
    status = git(repo, "status", "--porcelain")
    code, out = diff(repo, tmp_path)
    assert code == 0, out
    assert "demo-site.yaml: HEAD → working tree" in out and "+SystemMaxUse=2G" in out
    assert git(repo, "status", "--porcelain") == status
    code, out = diff(repo, tmp_path, "HEAD", "HEAD")
    assert "No device changes." in out


def test_markdown_names_secret_files_but_never_shows_them(repo: Path, tmp_path: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    edit(repo, "  grafana-admin:\n", "  grafana-admin:\n    generate: {type: password}\n  grafana-root:\n")
    edit(repo, "adminPasswordSecret: grafana-admin", "adminPasswordSecret: grafana-root", "new admin secret")
    code, out = diff(repo, tmp_path, first, "-o", "json")
    assert code == 0, out
    secrets = next(c for c in json.loads(out)["devices"][0]["changes"] if c["path"] == SECRETS)
    assert secrets["secret"] is True and secrets["diff"] is None
    code, out = diff(repo, tmp_path, first, "-o", "markdown")
    assert out.startswith("### umhctl diff: `demo-site.yaml`")
    assert "| hub-01 | changed | 0 | 1 | 0 |" in out and "| edge-01 | unchanged | 0 | 0 | 0 |" in out
    assert "<details><summary><b>hub-01</b>" in out and "holds a secret: not shown" in out
    assert "redacted" not in out


def test_an_unknown_revision_is_a_clean_error(repo: Path, tmp_path: Path) -> None:
    code, out = diff(repo, tmp_path, "no-such-branch", "-o", "json")
    assert code == 1
    assert json.loads(out)["error"]["message"].startswith("unknown revision 'no-such-branch'")
