"""reset device against the simulated demo site: a real flatcar-reset stand-in, reboot, Ignition, apply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app

from .conftest import SiteRepo, git, needs_simulated_devices, simulated_demo_site

pytestmark = needs_simulated_devices

BASE = f"127.82.{os.getpid() % 250 + 1}.10"


@dataclass
class Site(SiteRepo):
    def run(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout + result.stderr

    def reset(self, device: str, *extra: str) -> tuple[int, str]:
        return self.run("reset", "device", device, "--sim", "-f", str(self.blueprint), "--yes", *extra)

    def plan_code(self) -> int:
        return self.run("plan", "--sim", "-f", str(self.blueprint), "--detailed-exitcode")[0]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with simulated_demo_site(BASE) as blueprint:
        s = Site(blueprint.parent, blueprint)
        assert s.run("apply", "--sim", "-f", str(blueprint), "--yes")[0] == 0
        yield s


def test_reset_of_a_reachable_edge_rebuilds_it_and_nothing_else(site: Site) -> None:
    junk = site.file("edge-01", "/opt/junk/left-over.bin")
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"x" * 1024)
    site.file("edge-01", "/etc/rancher/k3s/config.yaml").write_text("mangled: true\n")
    host_key = site.file("edge-01", "/etc/ssh/ssh_host_ed25519_key.pub").read_text()
    other = site.file("edge-02", "/opt/keep-me")
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text("edge-02's own file\n")
    other_record = site.file("edge-02", "/var/lib/umhctl/applied.json").read_text()

    code, out = site.reset("edge-01")
    assert code == 0, out
    assert "edge-01 is rebuilt and matches the blueprint" in out
    for phase in ("staging the reset", "rebooting", "waiting for the device", "verifying", "total"):
        assert phase in out
    assert not junk.exists(), "the reset wiped what the keep-list does not name"
    assert site.file("edge-01", "/etc/ssh/ssh_host_ed25519_key.pub").read_text() == host_key
    assert "mangled" not in site.file("edge-01", "/etc/rancher/k3s/config.yaml").read_text()
    assert site.plan_code() == 0
    assert other.read_text() == "edge-02's own file\n"
    assert site.file("edge-02", "/var/lib/umhctl/applied.json").read_text() == other_record


def test_media_for_a_replaced_device(site: Site, tmp_path: Path) -> None:
    code, out = site.run("reset", "device", "edge-02", "-f", str(site.blueprint), "--media", str(tmp_path))
    assert code == 0, out
    media = tmp_path / "edge-02"
    config = media / "ignition.json"
    assert config.stat().st_mode & 0o777 == 0o600
    assert subprocess.run(["ignition-validate", str(config)], capture_output=True).returncode == 0
    command = (media / "install-command.txt").read_text().strip()
    assert command == "sudo flatcar-install -d /dev/sda -C stable -V 4152.2.3 -i ignition.json"
    sheet = (media / "INSTRUCTIONS.txt").read_text()
    assert command in sheet and f"umhctl reset device edge-02 --wait -f {site.blueprint}" in sheet
    assert json.loads(config.read_text())["ignition"]["version"] == "3.3.0"


def test_reset_that_times_out_reports_clearly_and_a_rerun_with_wait_completes(site: Site) -> None:
    watcher = site.sim.watcher_pid
    assert watcher
    os.kill(watcher, signal.SIGSTOP)  # the device "does not come back": nobody processes its reboot
    try:
        code, out = site.reset("edge-02", "--timeout", "5")
    finally:
        os.kill(watcher, signal.SIGCONT)
    assert code == 1
    assert "did not come back within 5 s" in out and "umhctl reset device edge-02 --wait" in out
    code, out = site.reset("edge-02", "--wait", "--timeout", "60")
    assert code == 0, out
    assert site.plan_code() == 0


def test_guard_rails(site: Site) -> None:
    code, out = site.reset("hub-01")
    assert code == 1 and "hub of edge-01, edge-02" in out and "--force" in out
    code, out = site.run("reset", "device", "edge-01", "--sim", "-f", str(site.blueprint))
    assert code == 1 and "--yes" in out
    site.blueprint.write_text(site.blueprint.read_text() + "\n# local edit\n")
    try:
        code, out = site.reset("edge-01")
        assert code == 1 and "uncommitted changes" in out
    finally:
        git(site.repo, "checkout", "--", site.blueprint.name)
    code, out = site.reset("edge-9")
    assert code == 1 and "no device 'edge-9'" in out


def test_backup_saves_the_data_paths_first(site: Site, tmp_path: Path) -> None:
    volume = site.file("edge-01", "/var/lib/rancher/k3s/storage/pvc-1/data.txt")
    volume.parent.mkdir(parents=True)
    volume.write_text("production data\n")
    code, out = site.reset("edge-01", "--backup", str(tmp_path))
    assert code == 0, out
    (archive,) = tmp_path.glob("edge-01-*.tar.gz")
    with tarfile.open(archive) as tar:
        member = tar.extractfile("var/lib/rancher/k3s/storage/pvc-1/data.txt")
        assert member is not None and member.read() == b"production data\n"
    assert not volume.exists(), "data paths are backed up, not kept, unless the blueprint keeps them"


def test_rotate_host_key_updates_and_commits_known_hosts(site: Site) -> None:
    before = site.file("edge-02", "/etc/ssh/ssh_host_ed25519_key.pub").read_text()
    head = git(site.repo, "rev-parse", "HEAD")
    code, out = site.reset("edge-02", "--rotate-host-key")
    assert code == 0, out
    after = site.file("edge-02", "/etc/ssh/ssh_host_ed25519_key.pub").read_text()
    assert after != before
    assert after.split()[1] in (site.repo / "known_hosts").read_text()
    assert git(site.repo, "rev-parse", "HEAD") != head
    assert "Rotate the SSH host key of edge-02" in git(site.repo, "log", "-1", "--format=%s")
    assert site.plan_code() == 0


def test_rotation_is_undone_when_the_reset_cannot_start(site: Site) -> None:
    from umhctl.sim.site import reboot_device

    store = Path(os.environ["UMHCTL_SECRETS_DIR"]) / "demo-site" / "ssh-host-key.edge-01.pub"
    before, known = store.read_text(), (site.repo / "known_hosts").read_text()
    reboot_device(site.sim.state_dir, "edge-01", power_off=True)
    try:
        code, out = site.reset("edge-01", "--rotate-host-key")
        assert code == 1 and "failed while connecting" in out and "rotation was undone" in out
        assert store.read_text() == before and (site.repo / "known_hosts").read_text() == known
    finally:
        assert site.run("sim", "up", "-f", str(site.blueprint))[0] == 0
    assert site.plan_code() == 0
