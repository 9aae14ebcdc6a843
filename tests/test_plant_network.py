"""A plant without internet, on the simulated demo site: k3s upgrades by apply, rebuilds from the operator's cache,
and SSH keys that take effect the way Flatcar applies them.

The simulated site serves stand-in images from its own publisher; the tests fetch them into a scratch cache, as an
operator fetches at the office, and then take the publisher away.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.artifacts import ArtifactCache, LockFile
from umhctl.cli import app
from umhctl.sim import publisher

from .conftest import SiteRepo, needs_simulated_devices, simulated_demo_site

pytestmark = needs_simulated_devices

BASE = f"127.86.{os.getpid() % 250 + 1}.10"


@dataclass
class Site(SiteRepo):
    def run(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "-f", str(self.blueprint)])
        return result.exit_code, result.stdout + result.stderr

    def plan(self) -> dict:
        result = CliRunner().invoke(app, ["plan", "--sim", "-f", str(self.blueprint), "-o", "json"])
        return json.loads(result.stdout)

    def pin(self, version: str) -> str:
        lock = LockFile.load(self.sim.state_dir / publisher.LOCK_FILE)
        return lock.pins[f"k3s-{version}-x86-64.raw"].sha256


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with simulated_demo_site(BASE) as blueprint:
        s = Site(blueprint.parent, blueprint)
        assert s.run("apply", "--sim", "--yes")[0] == 0
        yield s


def test_a_k3s_upgrade_uploads_the_verified_image_switches_restarts_and_removes_the_old(site: Site) -> None:
    old, new = "v1.32.2+k3s1", "v1.32.3+k3s1"
    old_image = site.file("hub-01", f"/opt/extensions/k3s/k3s-{old}-x86-64.raw")
    assert hashlib.sha256(old_image.read_bytes()).hexdigest() == site.pin(old)
    site.edit(f"k3s: {old}", f"k3s: {new}", "k3s 1.32.3")
    code, out = site.run("plan", "--sim")
    assert code == 1 and f"k3s-{new}-x86-64.raw not pinned" in out and "umhctl lock" in out
    assert site.run("lock", "--sim")[0] == 0
    code, out = site.run("apply", "--sim", "--yes")
    assert code == 1 and "not in the local artifact cache" in out and "umhctl fetch" in out
    assert old_image.exists(), "refused before touching the device"
    assert site.run("fetch", "--sim")[0] == 0

    plan = site.plan()
    hub = next(d for d in plan["devices"] if d["device"] == "hub-01")
    changes = {(c["action"], c["kind"], c["target"]): c for c in hub["changes"]}
    image = f"/opt/extensions/k3s/k3s-{new}-x86-64.raw"
    upload = changes[("+", "artifact", image)]
    assert upload["after"]["sha256"] == site.pin(new) and upload["after"]["size"] == publisher.STANDIN_SIZE
    assert "0.3 MB" in upload["reason"] or "262144 bytes" in upload["reason"]
    assert ("~", "link", "/etc/extensions/k3s.raw") in changes
    assert ("-", "artifact", f"/opt/extensions/k3s/k3s-{old}-x86-64.raw") in changes
    restarts = [c["target"] for c in hub["changes"] if c["action"] == "↻"]
    assert restarts == ["systemd-sysext.service", "k3s.service"]

    code, out = site.run("apply", "--sim", "--yes")
    assert code == 0, out
    placed = site.file("hub-01", image)
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == site.pin(new)
    assert os.readlink(site.file("hub-01", "/etc/extensions/k3s.raw")) == image
    assert not old_image.exists(), "the old image goes once the new one is in use"
    assert (site.sim.control("hub-01") / "active" / "k3s.service").exists()
    assert all(not d["changes"] for d in site.plan()["devices"])


def test_a_rebuild_needs_no_mirror_only_the_operators_cache(site: Site) -> None:
    url_file = site.sim.state_dir / publisher.URL_FILE
    url = url_file.read_text()
    url_file.write_text("http://127.0.0.1:9\n")  # the plant has no way to the publisher any more
    image = next(site.file("edge-01", "/opt/extensions/k3s").iterdir())
    pinned = hashlib.sha256(image.read_bytes()).hexdigest()
    image.unlink()  # the device lost its image too: it must come from the cache
    try:
        code, out = site.run("reset", "device", "edge-01", "--sim", "--yes")
        assert code == 0, out
        assert "uploaded" in out
        assert hashlib.sha256(image.read_bytes()).hexdigest() == pinned
    finally:
        url_file.write_text(url)
    assert all(not d["changes"] for d in site.plan()["devices"])


def test_a_reset_that_could_not_finish_is_refused_before_anything_happens(site: Site, tmp_path: Path) -> None:
    cache = ArtifactCache()
    moved = tmp_path / "cache"
    cache.directory.rename(moved)
    try:
        before = site.sim.devices["edge-02"].boots
        code, out = site.run("reset", "device", "edge-02", "--sim", "--yes")
        assert code == 1 and "not in the local artifact cache" in out and "nothing was changed" in out
        assert site.sim.devices["edge-02"].boots == before
    finally:
        moved.rename(cache.directory)


def _login(site: Site, device: str, key: Path) -> subprocess.CompletedProcess[str]:
    address, port = site.sim.endpoint(device)
    return subprocess.run(
        [
            "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={site.sim.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes", "-i", str(key), "-p", str(port), f"core@{address}", "echo in",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip


def test_a_key_added_by_apply_lets_its_holder_in_and_a_removed_one_no_longer(site: Site, tmp_path: Path) -> None:
    key = tmp_path / "colleague"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "colleague", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    assert _login(site, "edge-02", key).returncode != 0
    anchor = "  authorizedKeys:\n"
    site.edit(anchor, f"{anchor}    - {public}\n", "a colleague's key")
    plan = site.plan()
    edge = next(d for d in plan["devices"] if d["device"] == "edge-02")
    assert ("↻", "refresh", "update-ssh-keys:core") in {(c["action"], c["kind"], c["target"]) for c in edge["changes"]}
    assert site.run("apply", "--sim", "--yes")[0] == 0
    assert _login(site, "edge-02", key).stdout == "in\n", "update-ssh-keys merged the new key set"
    site.edit(f"{anchor}    - {public}\n", anchor, "the colleague left")
    assert site.run("apply", "--sim", "--yes")[0] == 0
    refused = _login(site, "edge-02", key)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
