"""The team's questions on the simulated demo site: its secrets moved into git, then apply records who applied
which commit where (refs/umhctl/applied/...), `history` lists it, `status` judges each device truthfully."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app
from umhctl.sim.state import SimSite

from .conftest import git, needs_simulated_devices, simulated_demo_site

pytestmark = needs_simulated_devices

BASE = f"127.88.{os.getpid() % 250 + 1}.10"
JOURNALD = "etc/systemd/journald.conf.d/50-retention.conf"


def run(blueprint: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "-f", str(blueprint)])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The simulated demo site, its secrets moved into git (encrypted to a test age key), applied once."""
    from pyrage import x25519

    key = tmp_path_factory.mktemp("age") / "operator.txt"
    key.write_text(f"{x25519.Identity.generate()}\n")
    saved = os.environ.get("UMHCTL_AGE_IDENTITY")
    os.environ["UMHCTL_AGE_IDENTITY"] = str(key)
    try:
        with simulated_demo_site(BASE) as blueprint:
            code, out = run(blueprint, "secrets", "init")
            assert code == 0 and "Taken over from" in out, out  # the devices keep their host keys
            git(blueprint.parent, "add", "-A")
            git(blueprint.parent, "commit", "-qm", "Encrypted site secrets")
            code, out = run(blueprint, "apply", "--sim", "--yes")
            assert code == 0, out
            yield blueprint
    finally:
        if saved is None:
            os.environ.pop("UMHCTL_AGE_IDENTITY", None)
        else:
            os.environ["UMHCTL_AGE_IDENTITY"] = saved


def test_apply_records_the_applied_commit_in_a_ref_and_history_lists_it(site: Path) -> None:
    repo = site.parent
    head = git(repo, "rev-parse", "HEAD").strip()
    for device in ("hub-01", "edge-01", "edge-02"):
        assert git(repo, "rev-parse", f"refs/umhctl/applied/demo-site/{device}").strip() == head
    code, out = run(site, "history", "-o", "json")
    assert code == 0, out
    devices = {d["device"]: d for d in json.loads(out)["devices"]}
    (entry,) = devices["edge-01"]["applied"]
    assert entry["commit"] == head and entry["subject"] == "Encrypted site secrets"
    assert entry["verb"] == "applied" and entry["dirty"] is False and entry["who"] and entry["when"]

    text = site.read_text()
    site.write_text(text.replace("max_use: 512M", "max_use: 1G"))
    git(repo, "commit", "-qam", "Bigger journal")
    code, out = run(site, "apply", "--sim", "--yes", "--device", "edge-01")
    assert code == 0, out
    code, out = run(site, "history", "--device", "edge-01", "--live", "--sim")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("edge-01 (refs/umhctl/applied/demo-site/edge-01)")
    assert "Bigger journal" in lines[1] and "Encrypted site secrets" in lines[2]  # newest first
    assert "live: the device runs" in out and "matches the ref" in out
    # hub-01 still runs the older commit, and its own record agrees
    code, out = run(site, "history", "--device", "hub-01", "--live", "--sim", "-o", "json")
    (hub,) = json.loads(out)["devices"]
    assert code == 0 and hub["live_match"] is True and len(hub["applied"]) == 1


def test_apply_refuses_a_secret_generated_now_and_not_committed(site: Path) -> None:
    repo = site.parent
    store = repo / "secrets" / "demo-site"
    git(repo, "rm", "-q", str(store / "secret.db-nodered.age"))
    git(repo, "commit", "-qm", "Forget a secret")
    try:
        code, out = run(site, "apply", "--sim", "--yes")
        assert code == 1 and "new secrets were generated for this apply (secret.db-nodered)" in out, out
        assert "nothing was applied" in out
        assert git(repo, "status", "--porcelain").strip() == "?? secrets/demo-site/secret.db-nodered.age"
    finally:
        git(repo, "checkout", "-q", "HEAD~1", "--", str(store / "secret.db-nodered.age"))
        git(repo, "commit", "-qm", "The secret back")


def test_status_reports_a_drifted_and_an_unreachable_device(site: Path) -> None:
    from umhctl.sim.site import reboot_device

    assert run(site, "apply", "--sim", "--yes")[0] == 0
    sim = SimSite.load(site)
    (sim.root("edge-01") / JOURNALD).write_text("[Journal]\nSystemMaxUse=9G\n")
    reboot_device(sim.state_dir, "edge-02", power_off=True)
    try:
        code, out = run(site, "status", "--sim", "-o", "json")
        assert code == 1, out
        document = json.loads(out)
        devices = {d["device"]: d for d in document["devices"]}
        head = git(site.parent, "rev-parse", "HEAD").strip()
        assert document["head"] == head and document["healthy"] is False

        edge1 = devices["edge-01"]
        assert edge1["reachable"] is True and edge1["latency_ms"] > 0
        assert edge1["drift"] == 1 and "1 path drifted (changed on the device)" in edge1["problems"]
        applied = edge1["applied"]["commit"]
        behind = int(git(site.parent, "rev-list", "--count", f"{applied}..HEAD"))
        assert behind == 2 and edge1["applied"]["commits_behind"] == behind and edge1["applied"]["dirty"] is False
        assert edge1["problems"] == ["1 path drifted (changed on the device)", *edge1["problems"][1:]]
        assert not any("behind" in p for p in edge1["problems"]), "commits that change nothing on it are harmless"

        edge2 = devices["edge-02"]
        assert edge2["reachable"] is False and edge2["healthy"] is False
        assert edge2["problems"][0].startswith("unreachable:")

        hub = devices["hub-01"]
        assert hub["reachable"] is True and hub["drift"] == 0 and hub["failed_units"] == []
        # No k3s runs in a simulated device, and its os-release names no Flatcar version: said as it is.
        assert hub["k3s"] == {"k3s.service": {"active": "active", "running": False}}
        assert "k3s.service not running (systemd says active, but no process runs)" in hub["problems"]
        assert hub["flatcar"] == {"version": None, "pinned": "4152.2.3"}

        code, out = run(site, "status", "--sim", "--device", "edge-01")
        assert code == 1
        assert "edge-01: 1 path drifted" in out and "0 of 1 device healthy" in out
    finally:
        assert run(site, "sim", "up")[0] == 0
        assert run(site, "apply", "--sim", "--yes")[0] == 0


def test_status_says_what_a_new_commit_leaves_pending(site: Path) -> None:
    repo = site.parent
    site.write_text(site.read_text().replace("retention: 90d", "retention: 30d"))
    git(repo, "commit", "-qam", "Shorter retention")
    try:
        code, out = run(site, "status", "--sim", "--device", "hub-01")
        assert code == 1
        assert "hub-01: 1 change pending, 1 commit behind HEAD (see plan)" in out, out
        assert "hub-01: k3s.service not running" in out and "0 of 1 device healthy" in out
    finally:
        assert run(site, "apply", "--sim", "--yes")[0] == 0


def test_a_host_key_rotation_commits_the_new_encrypted_key_with_known_hosts(site: Path) -> None:
    repo = site.parent
    before = (repo / "secrets/demo-site/ssh-host-key.edge-02.pub").read_text()
    code, out = run(site, "reset", "device", "edge-02", "--sim", "--yes", "--rotate-host-key")
    assert code == 0, out
    after = (repo / "secrets/demo-site/ssh-host-key.edge-02.pub").read_text()
    assert after != before and after.split()[1] in (repo / "known_hosts").read_text()
    assert git(repo, "status", "--porcelain") == "", "a colleague's clone gets the new key with known_hosts"
    committed = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert committed == {
        "known_hosts",
        "secrets/demo-site/ssh-host-key.edge-02.age",
        "secrets/demo-site/ssh-host-key.edge-02.pub",
        "secrets/demo-site/ssh-host-key.edge-02.old.age",
        "secrets/demo-site/ssh-host-key.edge-02.old.pub",
    }
    code, out = run(site, "history", "--device", "edge-02", "-o", "json")
    (edge2,) = json.loads(out)["devices"]
    assert edge2["applied"][0]["verb"] == "reset"
    assert run(site, "plan", "--sim", "--detailed-exitcode")[0] == 0


def test_reset_refuses_before_touching_the_device_when_a_secret_is_not_in_git(site: Path) -> None:
    repo = site.parent
    token = repo / "secrets/demo-site/k3s-token.edge-01.age"
    boots = SimSite.load(site).devices["edge-01"].boots
    git(repo, "rm", "-q", str(token))
    git(repo, "commit", "-qm", "Forget a token")
    try:
        code, out = run(site, "reset", "device", "edge-01", "--sim", "--yes")
        assert code == 1, out
        assert "new secrets were generated for this reset (k3s-token.edge-01); nothing was changed" in out
        assert SimSite.load(site).devices["edge-01"].boots == boots
    finally:
        git(repo, "checkout", "-q", "HEAD~1", "--", str(token))
        git(repo, "commit", "-qm", "The token back")
