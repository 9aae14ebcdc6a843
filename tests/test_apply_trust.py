"""Apply and reset you can trust, on the simulated demo site: every planned change carried out or refused up
front, a record that names what the device really matches, and a reset that says where it stopped.

One simulated site for the module; each test leaves it converged.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl import api
from umhctl.cli import app
from umhctl.phases import Outcome
from umhctl.sim.state import sim_inventory

from .conftest import SiteRepo, git, needs_simulated_devices, simulated_demo_site

pytestmark = needs_simulated_devices

BASE = f"127.85.{os.getpid() % 250 + 1}.10"


@dataclass
class Site(SiteRepo):
    def run(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    def plan(self) -> dict:
        _, out, err = self.run("plan", "--sim", "-f", str(self.blueprint), "-o", "json")
        assert out, err
        return json.loads(out)

    def apply(self, *extra: str) -> tuple[int, dict]:
        code, out, err = self.run("apply", "--sim", "-f", str(self.blueprint), "--yes", "-o", "json", *extra)
        assert out, err
        return code, json.loads(out)

    def converged(self) -> bool:
        return self.run("plan", "--sim", "-f", str(self.blueprint), "--detailed-exitcode")[0] == 0


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with simulated_demo_site(BASE) as blueprint:
        s = Site(blueprint.parent, blueprint)
        assert s.apply()[0] == 0
        yield s


def _changes(plan: dict, device: str) -> list[tuple[str, str, str]]:
    entry = next(d for d in plan["devices"] if d["device"] == device)
    return [(c["action"], c["kind"], c["target"]) for c in entry["changes"]]


def test_every_action_kind_is_carried_out_or_refused_before_touching_the_device(site: Site) -> None:
    head = git(site.repo, "rev-parse", "HEAD").strip()
    # edge-01: a missing file (+), a changed one (~, restarts k3s), a symlink where a file belongs (±; a directory
    # umhctl did not create is never replaced: tests/test_interrupted_apply.py), and a file the blueprint no
    # longer gives it (-).
    site.file("edge-01", "/etc/hostname").unlink()
    config = site.file("edge-01", "/etc/rancher/k3s/config.yaml")
    config.write_text(config.read_text() + "# hand edit\n")
    update_conf = site.file("edge-01", "/etc/flatcar/update.conf")
    update_conf.unlink()
    update_conf.symlink_to("/etc/os-release")
    site.edit(
        "    template: files/journald-retention.conf.j2\n",
        "    template: files/journald-retention.conf.j2\n    devices: [hub-01, edge-02]\n",
        "journald limits: not on edge-01",
    )
    # edge-02: a hand edit, and an install disk only a reinstall can change (!).
    site.file("edge-02", "/etc/hostname").write_text("hand edit\n")
    site.edit(
        "    address: 192.0.2.22\n    installDisk: /dev/sda",
        "    address: 192.0.2.22\n    installDisk: /dev/sdb",
        "edge-02 on sdb",
    )
    # hub-01: its files match, but its record names another state (another tool wrote them).
    record_path = site.file("hub-01", "/var/lib/umhctl/applied.json")
    record = json.loads(record_path.read_text())
    record["desired_fingerprint"], record["blueprint"]["commit"] = "sha256:another", "0" * 40
    record_path.write_text(json.dumps(record))
    try:
        plan = site.plan()
        kinds = {(a, k) for d in plan["devices"] for a, k, _ in _changes(plan, d["device"])}
        assert {a for a, _ in kinds} == {"+", "~", "-", "±", "↻", "!"}
        assert ("~", "record") in kinds
        assert ("!", "device", "install disk") in _changes(plan, "edge-02")

        code, result = site.apply()
        assert code == 1
        outcomes = {r["device"]: r for r in result["results"]}
        refused = outcomes["edge-02"]
        assert not refused["ok"] and refused["failed_phase"] == "check-plan" and not refused["changed_device"]
        assert "install disk" in refused["error"] and "/dev/sda" in refused["error"] and "/dev/sdb" in refused["error"]
        assert f"umhctl reset device edge-02 --media DIR -f {site.blueprint} --sim" in refused["hint"]
        assert site.file("edge-02", "/etc/hostname").read_text() == "hand edit\n", "nothing was touched there"
        assert outcomes["edge-01"]["ok"] and outcomes["hub-01"]["ok"]

        after = site.plan()
        assert _changes(after, "edge-01") == [] and _changes(after, "hub-01") == []
        assert {a for a, _, _ in _changes(after, "edge-02")} == {"~", "!"}
        assert not site.file("edge-01", "/etc/systemd/journald.conf.d/50-retention.conf").exists()
        assert site.file("edge-01", "/etc/flatcar/update.conf").is_file()
        assert not site.file("edge-01", "/etc/flatcar/update.conf").is_symlink()
        record = json.loads(record_path.read_text())
        assert record["blueprint"]["commit"] == git(site.repo, "rev-parse", "HEAD").strip()
    finally:
        git(site.repo, "revert", "--no-edit", f"{head}..HEAD")
    assert site.apply()[0] == 0
    assert site.converged()


def test_a_record_that_names_an_older_state_than_the_files_match_is_updated(site: Site, tmp_path: Path) -> None:
    site.edit('rebootStrategy: "off"', "rebootStrategy: reboot", "reboot after updates")
    # Someone copies the new update.conf onto edge-01 by hand: its files now match the new commit.
    assert site.run("render", "-f", str(site.blueprint), "--out", str(tmp_path), "--device", "edge-01")[0] == 0
    shutil.copyfile(
        tmp_path / "edge-01/rootfs/etc/flatcar/update.conf", site.file("edge-01", "/etc/flatcar/update.conf")
    )
    plan = site.plan()
    assert _changes(plan, "edge-01") == [("~", "record", "/var/lib/umhctl/applied.json")]
    (change,) = next(d for d in plan["devices"] if d["device"] == "edge-01")["changes"]
    head = git(site.repo, "rev-parse", "HEAD").strip()
    assert f"the files match {head[:12]}" in change["reason"]
    assert site.apply()[0] == 0
    record = json.loads(site.file("edge-01", "/var/lib/umhctl/applied.json").read_text())
    assert record["blueprint"]["commit"] == head
    assert site.converged()


class LockDuringReset:
    """A reporter that, as reset's post-reboot lock phase starts, makes another run hold the device's lock."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def start(self, devices: Sequence[str], activity: str) -> None:
        pass

    def phase(self, device: str, key: str, title: str) -> None:
        if key == "lock":
            lock = self.root / "var/lib/umhctl/lock.d"
            lock.mkdir(parents=True)
            (lock / "token.otherrun").write_text("bob, pid 7 on laptop (umhctl apply)")

    def done(self, outcome: Outcome) -> None:
        pass

    def stop(self) -> None:
        pass


def test_a_reset_that_fails_after_its_reboot_says_so_and_keeps_the_new_host_key(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    from umhctl.cli import views

    known_hosts = site.repo / "known_hosts"
    before = site.file("edge-01", "/etc/ssh/ssh_host_ed25519_key.pub").read_text()
    result = api.reset_device(
        site.blueprint,
        "edge-01",
        inventory=sim_inventory,
        rotate_host_key=True,
        timeout=60,
        reporter=LockDuringReset(site.sim.root("edge-01")),
    )
    outcome = result.outcome
    assert outcome is not None and not outcome.ok
    assert outcome.failed_phase == "lock" and outcome.past_no_return
    assert "locked by bob" in (outcome.error or "")
    assert outcome.hint and "--wait" in outcome.hint and "nothing was changed" not in outcome.hint
    assert not result.rotation_undone
    new = site.file("edge-01", "/etc/ssh/ssh_host_ed25519_key.pub").read_text()
    assert new != before and new.split()[1] in known_hosts.read_text() and new.split()[1] in result.new_host_key
    capsys.readouterr()
    views.show_reset(result)
    text = capsys.readouterr().out
    assert text.count("(failed)") == 1, "only the phase that failed is marked, not the other 'locking'"

    shutil.rmtree(site.file("edge-01", "/var/lib/umhctl/lock.d"))
    code, out, err = site.run("reset", "device", "edge-01", "--wait", "--sim", "-f", str(site.blueprint), "--yes")
    assert code == 0, out + err
    assert site.converged()
