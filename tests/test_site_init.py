"""`umhctl init`: a new site repository, valid and committed; its git hook refuses a broken blueprint (real git,
the real hook script run by `git commit`)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from umhctl.artifacts import lock_path
from umhctl.cli import app

from .conftest import git


@pytest.fixture
def operator_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op@test", "-f", str(key)], check=True)
    return key


def init(key: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["init", *args], env={"UMHCTL_AGE_IDENTITY": str(key)})
    return result.exit_code, result.output


def test_init_validate_and_the_hook_rejects_a_broken_blueprint(tmp_path: Path, operator_key: Path) -> None:
    repo = tmp_path / "plant"
    code, out = init(operator_key, str(repo), "--site", "cologne", "--git-hook", "-o", "json")
    assert code == 0, out
    document = json.loads(out)
    assert document["site"] == "cologne" and len(document["commit"]) == 40
    assert git(repo, "status", "--porcelain") == ""  # everything committed
    assert {"blueprint.yaml", "known_hosts", ".gitignore", ".pre-commit-config.yaml", "dashboards/line-1.json"} <= set(
        document["files"]
    )
    assert "secrets/cologne/recipients.txt" in document["files"]
    blueprint = repo / "blueprint.yaml"
    assert blueprint.read_text().startswith("# yaml-language-server: $schema=schema/site-blueprint.schema.json\n")
    assert json.loads((repo / "schema/site-blueprint.schema.json").read_text())["title"]
    # the operator's SSH key may log in, and known_hosts already holds every device's host key
    assert operator_key.with_suffix(".pub").read_text().split()[1] in blueprint.read_text()
    assert len((repo / "known_hosts").read_text().splitlines()) == 2

    result = CliRunner().invoke(app, ["validate", "-f", str(blueprint)])
    assert result.exit_code == 0, result.output

    blueprint.write_text(blueprint.read_text().replace("role: edge", "role: edgy"))
    done = subprocess.run(["git", "-C", str(repo), "commit", "-qam", "broken"], capture_output=True, text=True)
    assert done.returncode != 0
    assert "blueprint.yaml:" in done.stderr and "'edgy'" in done.stderr and "commit refused" in done.stderr
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "1"

    # the hook judges what is staged: a valid edit commits
    blueprint.write_text(blueprint.read_text().replace("role: edgy", "role: edge").replace("90d", "60d"))
    done = subprocess.run(["git", "-C", str(repo), "commit", "-qam", "retention"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_pre_commit_configuration_runs_validate(tmp_path: Path, operator_key: Path) -> None:
    repo = tmp_path / "plant"
    assert init(operator_key, str(repo))[0] == 0
    config = YAML(typ="safe").load((repo / ".pre-commit-config.yaml").read_text())
    (hook,) = config["repos"][0]["hooks"]
    assert config["repos"][0]["repo"] == "local"
    assert hook["entry"] == "umhctl validate -f blueprint.yaml" and hook["language"] == "system"
    assert hook["pass_filenames"] is False
    runs_on = re.compile(hook["files"])
    for name in ("blueprint.yaml", lock_path(Path("blueprint.yaml")).name, "dashboards/line-1.json"):
        assert runs_on.search(name), name
    assert not runs_on.search("README.md")


def test_init_refuses_a_directory_that_is_not_empty(tmp_path: Path, operator_key: Path) -> None:
    repo = tmp_path / "plant"
    repo.mkdir()
    (repo / "notes.txt").write_text("mine\n")
    code, out = init(operator_key, str(repo))
    assert code == 1 and "not empty" in out
    assert [p.name for p in repo.iterdir()] == ["notes.txt"]


def test_init_without_any_key_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "plant"
    code, out = init(tmp_path / "missing-key", str(repo))
    assert code == 1 and "nothing was written" in out
    assert not repo.exists()
