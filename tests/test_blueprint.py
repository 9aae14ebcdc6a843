"""The blueprint model and loader: valid examples load; problems come back as positioned diagnostics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from umhctl.blueprint.loader import load_blueprint, validate_text
from umhctl.blueprint.model import IOLINK_MASTER_PORTS
from umhctl.errors import BlueprintInvalid

from .conftest import BLUEPRINTS, EXAMPLES


def _validate(text: str, base: Path = BLUEPRINTS) -> list[tuple[int, int, str]]:
    _, _, diags = validate_text(text, "bp.yaml", base_dir=base)
    return [(d.line, d.column, d.message) for d in diags if d.severity == "error"]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    loaded = load_blueprint(path)
    assert loaded.warnings == []
    assert loaded.blueprint.hubs()


def test_demo_has_what_the_readme_promises() -> None:
    bp = load_blueprint(BLUEPRINTS / "demo-site.yaml").blueprint
    assert [d.role for d in bp.devices].count("hub") == 1
    assert [d.role for d in bp.devices].count("edge") == 2
    assert len(bp.io_link_masters) == 2 and len(bp.sensors) == 6 and len(bp.dashboards) == 1
    assert bp.versions.umh_chart == "0.29.0"


def test_defaults() -> None:
    bp = load_blueprint(BLUEPRINTS / "demo-site.yaml").blueprint
    assert bp.access.user == "core"
    assert bp.device("hub-01").ssh_port == 22
    assert bp.device("hub-01").host_name == "hub-01"


def test_load_raises_with_all_diagnostics(tmp_path: Path, demo_text: str) -> None:
    bad = demo_text.replace("address: 192.0.2.21\n", "adress: 192.0.2.21\n").replace("role: hub", "role: hubb")
    path = tmp_path / "bp.yaml"
    path.write_text(bad)
    with pytest.raises(BlueprintInvalid) as info:
        load_blueprint(path)
    messages = [d.message for d in info.value.diagnostics]
    assert any("unknown field 'adress'" in m for m in messages)
    assert any("'hubb'" in m for m in messages)


def test_unknown_field_points_at_key_with_hint(demo_text: str) -> None:
    bad = demo_text.replace(
        "    installDisk: /dev/sda\n    location: assembly\n", "    instalDisk: /dev/sda\n    location: assembly\n"
    )
    _, _, diags = validate_text(bad, "bp.yaml", base_dir=BLUEPRINTS)
    (d,) = [d for d in diags if "instalDisk" in d.message]
    assert (d.line, d.column) == (_line_of(bad, "instalDisk"), 5)
    assert d.hint == "did you mean 'installDisk'?"


def test_every_shape_problem_is_reported_at_once(demo_text: str) -> None:
    bad = (
        demo_text.replace("sshPort", "x").replace("port: 1,", "port: one,").replace("k3s: v1.32.2+k3s1", "k3s: latest")
    )
    errors = _validate(bad)
    assert len(errors) >= 3
    assert any("floating k3s version 'latest'" in m for *_, m in errors)
    assert any("whole number" in m for *_, m in errors)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("k3s: v1.32.2+k3s1", "k3s: latest", "floating k3s version 'latest'"),
        ('version: "4152.2.3"', "version: stable", "floating Flatcar version 'stable'"),
        ('umhChart: "0.29.0"', 'umhChart: "^0.29.0"', "floating chart version"),
        ('umhChart: "0.29.0"', 'umhChart: "~0.29"', "floating chart version"),
        ('benthosUmh: "0.12.6"', 'benthosUmh: "0.12.x"', "floating image tag"),
        ('benthosUmh: "0.12.6"', 'benthosUmh: ">=0.12.0"', "floating image tag"),
        ('benthosUmh: "0.12.6"', 'benthosUmh: "0.12.*"', "floating image tag"),
        ('benthosUmh: "0.12.6"', "benthosUmh: edge", "floating image tag"),
        ('benthosUmh: "0.12.6"', 'benthosUmh: "0.12"', "not a valid image tag"),
    ],
)
def test_floating_versions_are_refused(demo_text: str, old: str, new: str, fragment: str) -> None:
    assert old in demo_text
    errors = _validate(demo_text.replace(old, new))
    assert any(fragment in m for *_, m in errors), errors


def test_private_key_is_refused_without_echoing_it(demo_text: str) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA -----END OPENSSH PRIVATE KEY-----"
    bad = demo_text.replace("    - ssh-ed25519 AAAAC3", f"    - {key}\n    - ssh-ed25519 AAAAC3")
    errors = _validate(bad)
    assert any("private key" in m for *_, m in errors)
    assert not any("b3BlbnNzaC1rZXktdjEAAAAA" in m for *_, m in errors)


def test_inline_secret_is_refused_without_echoing_it(demo_text: str) -> None:
    bad = demo_text.replace("  grafana-admin:\n    generate: {type: password}", "  grafana-admin: hunter2-very-secret")
    _, _, diags = validate_text(bad, "bp.yaml", base_dir=BLUEPRINTS)
    (d,) = diags
    assert "inline secret values are not allowed" in d.message
    assert "hunter2" not in d.format()


def test_cross_checks_report_all_problems(demo_text: str) -> None:
    bad = (
        demo_text.replace("master: master-line1, port: 2,", "master: master-line1, port: 9,")
        .replace("master: master-line2, port: 2,", "master: master-line2, port: 1,")
        .replace("workCell: assembly/line-2/paint,", "workCell: assembly/line-2/pain,", 1)
    )
    errors = _validate(bad)
    messages = " | ".join(m for *_, m in errors)
    assert "port 9 does not exist" in messages
    assert "duplicate sensor port 'master-line2 port 1'" in messages
    assert "unknown work cell 'assembly/line-2/pain'" in messages


def test_port_counts_of_known_masters() -> None:
    assert IOLINK_MASTER_PORTS["AL1350"] == 4
    assert IOLINK_MASTER_PORTS["AL1352"] == 8


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _repo_with_secret_file(tmp_path: Path, demo_text: str, *, track: bool, ignore: bool) -> Path:
    repo = tmp_path / "site"
    (repo / "dashboards").mkdir(parents=True)
    (repo / "files").mkdir()
    for rel in ("dashboards/line-overview.json", "files/journald-retention.conf.j2"):
        (repo / rel).write_text((BLUEPRINTS / rel).read_text())
    _git(repo, "init", "-q")
    (repo / "admin.secret").write_text("s3cret\n")
    if ignore:
        (repo / ".gitignore").write_text("*.secret\n")
    if track:
        _git(repo, "add", "-f", "admin.secret")
    text = demo_text.replace(
        "  grafana-admin:\n    generate: {type: password}", "  grafana-admin:\n    file: admin.secret"
    )
    (repo / "bp.yaml").write_text(text)
    return repo


def test_secret_file_tracked_by_git_is_an_error(tmp_path: Path, demo_text: str) -> None:
    repo = _repo_with_secret_file(tmp_path, demo_text, track=True, ignore=False)
    _, _, diags = validate_text((repo / "bp.yaml").read_text(), "bp.yaml", base_dir=repo)
    (d,) = diags
    assert d.severity == "error" and "tracked by git" in d.message
    assert d.line == _line_of((repo / "bp.yaml").read_text(), "file: admin.secret")


def test_secret_file_not_ignored_is_a_warning(tmp_path: Path, demo_text: str) -> None:
    repo = _repo_with_secret_file(tmp_path, demo_text, track=False, ignore=False)
    bp, _, diags = validate_text((repo / "bp.yaml").read_text(), "bp.yaml", base_dir=repo)
    assert bp is not None
    assert [d.severity for d in diags] == ["warning"] and "not git-ignored" in diags[0].message


def test_secret_file_ignored_is_fine(tmp_path: Path, demo_text: str) -> None:
    repo = _repo_with_secret_file(tmp_path, demo_text, track=False, ignore=True)
    bp, _, diags = validate_text((repo / "bp.yaml").read_text(), "bp.yaml", base_dir=repo)
    assert bp is not None and diags == []
