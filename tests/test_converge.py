"""plan and apply against the simulated demo site: real sshd, real files, real git.

One simulated site for the module. The blueprint lives in a scratch git repository so that commits, dirty
checks and blueprint edits are real. Tests run in order; each leaves the site converged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app
from umhctl.sim.state import SimSite

from .conftest import git, needs_simulated_devices, simulated_demo_site
from .leaks import leaks, needles, scan, secret_values

pytestmark = needs_simulated_devices

BASE = f"127.81.{os.getpid() % 250 + 1}.10"


@dataclass
class Site:
    repo: Path
    blueprint: Path
    sim: SimSite

    def run(self, *args: str, input: str | None = None) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args), input=input)
        return result.exit_code, result.stdout, result.stderr

    def plan(self, *extra: str) -> tuple[int, dict]:
        code, out, err = self.run("plan", "--sim", "-f", str(self.blueprint), "-o", "json", *extra)
        assert out, err
        return code, json.loads(out)

    def apply(self, *extra: str) -> tuple[int, str]:
        code, out, err = self.run("apply", "--sim", "-f", str(self.blueprint), "--yes", *extra)
        return code, out + err

    def edit(self, old: str, new: str, message: str) -> None:
        text = self.blueprint.read_text()
        assert old in text
        self.blueprint.write_text(text.replace(old, new))
        git(self.repo, "commit", "-qam", message)

    def device_file(self, device: str, path: str) -> Path:
        return self.sim.root(device) / path.lstrip("/")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with simulated_demo_site(BASE) as blueprint:
        yield Site(blueprint.parent, blueprint, SimSite.load(blueprint))


def test_fresh_site_first_apply_takes_ownership_then_nothing_changes(site: Site) -> None:
    code, plan = site.plan("--detailed-exitcode")
    assert code == 2
    assert plan["format_version"] == "1" and plan["command"] == "plan"
    # First boot brought no k3s image (artifacts.delivery: apply): the first apply uploads and links it.
    for device in plan["devices"]:
        assert {(c["action"], c["kind"]) for c in device["changes"]} == {
            ("+", "artifact"),
            ("+", "link"),
            ("↻", "unit"),
        }
    code, out = site.apply()
    assert code == 0, out
    code, plan = site.plan("--detailed-exitcode")
    assert code == 0, plan
    assert plan["summary"]["devices_changed"] == 0
    record = json.loads(site.device_file("edge-01", "/var/lib/umhctl/applied.json").read_text())
    assert record["blueprint"]["commit"] == git(site.repo, "rev-parse", "HEAD").strip()
    assert record["blueprint"]["dirty"] is False
    assert "/etc/rancher/k3s/config.yaml" in record["files"]


def test_sensor_change_touches_exactly_the_affected_files_on_the_affected_devices(site: Site) -> None:
    site.edit(
        "{name: welding-distance, master: master-line1, port: 3,",
        "{name: welding-distance, master: master-line2, port: 3,",
        "move the welding distance sensor to master-line2",
    )
    code, plan = site.plan("--detailed-exitcode")
    assert code == 2
    changed = {d["device"]: [(c["action"], c["target"]) for c in d["changes"]] for d in plan["devices"] if d["changes"]}
    manifests = "/var/lib/rancher/k3s/server/manifests"
    assert changed == {
        "edge-01": [("~", f"{manifests}/umhctl-converter-master-line1.yaml")],
        "edge-02": [("~", f"{manifests}/umhctl-converter-master-line2.yaml")],
    }
    code, out = site.apply()
    assert code == 0, out
    assert site.plan("--detailed-exitcode")[0] == 0
    converter = site.device_file("edge-02", f"{manifests}/umhctl-converter-master-line2.yaml").read_text()
    assert "umh/v1/acme/cologne/assembly/line-1/welding/_historian" in converter


def test_hand_edit_is_shown_as_drift_and_repaired(site: Site) -> None:
    journald = site.device_file("edge-01", "/etc/systemd/journald.conf.d/50-retention.conf")
    journald.write_text(journald.read_text() + "SystemMaxUse=50G\n")
    code, plan = site.plan("--detailed-exitcode")
    assert code == 2
    change, restart = next(d for d in plan["devices"] if d["device"] == "edge-01")["changes"]
    assert change["target"] == "/etc/systemd/journald.conf.d/50-retention.conf" and change["drift"] is True
    assert (restart["action"], restart["target"]) == ("↻", "systemd-journald.service")
    code, out, _ = site.run("plan", "--sim", "-f", str(site.blueprint))
    assert "(drift)" in out and "Plan: 0 to add, 1 to change, 0 to delete on 1 of 3 devices; 1 unit restart." in out
    assert site.apply()[0] == 0
    assert "50G" not in journald.read_text()


def test_secrets_are_sensitive_and_restarts_happen_in_order(site: Site) -> None:
    site.edit("        dns: [192.0.2.53]\n  - name: edge-01", "        dns: [192.0.2.54]\n  - name: edge-01", "hub dns")
    token = site.device_file("hub-01", "/etc/rancher/k3s/token")
    token.write_text("tampered\n")
    _, plan = site.plan()
    hub = next(d for d in plan["devices"] if d["device"] == "hub-01")
    by_target = {c["target"]: c for c in hub["changes"]}
    assert by_target["/etc/rancher/k3s/token"]["sensitive"] is True
    assert by_target["/etc/rancher/k3s/token"]["diff"] is None
    restarts = [c["target"] for c in hub["changes"] if c["action"] == "↻"]
    assert restarts == ["systemd-networkd.service", "k3s.service"]
    _, text, _ = site.run("plan", "--sim", "-f", str(site.blueprint))
    assert "tampered" not in text and "(sensitive)" in text
    log = site.device_file("hub-01", "/var/log/umhctl-sim/systemctl.log")
    before = log.read_text() if log.exists() else ""
    assert site.apply()[0] == 0
    calls = log.read_text()[len(before) :]
    assert calls.index("restart -- systemd-networkd.service") < calls.index("restart -- k3s.service")
    assert site.plan("--detailed-exitcode")[0] == 0


def test_removed_file_is_deleted(site: Site) -> None:
    text = site.blueprint.read_text()
    start = text.index("\nfiles:\n")
    site.blueprint.write_text(text[:start] + "\n")
    git(site.repo, "commit", "-qam", "drop the journald limits")
    _, plan = site.plan()
    deletes = {(d["device"], c["target"]) for d in plan["devices"] for c in d["changes"] if c["action"] == "-"}
    assert deletes == {
        (name, "/etc/systemd/journald.conf.d/50-retention.conf") for name in ("hub-01", "edge-01", "edge-02")
    }
    assert site.apply()[0] == 0
    assert not site.device_file("edge-01", "/etc/systemd/journald.conf.d/50-retention.conf").exists()
    assert site.plan("--detailed-exitcode")[0] == 0


def test_saved_plan_refuses_a_device_that_changed_and_retry_failed_finishes(site: Site, tmp_path: Path) -> None:
    hostname = site.device_file("edge-02", "/etc/hostname")
    hostname.write_text("wrong\n")
    planfile = tmp_path / "plan.json"
    assert site.plan("--out", str(planfile))[0] == 0
    saved = json.loads(planfile.read_text())
    assert "wrong" not in planfile.read_text() and saved["blueprint"]["commit"]
    hostname.write_text("changed again\n")
    code, text, err = site.run("apply", str(planfile), "--sim", "--yes")
    assert code == 1
    assert "plan is stale for edge-02: /etc/hostname changed since the plan was made" in text + err
    # The saved plan was what was reviewed: the way on is a new plan, for the same site (pasteable), not a retry.
    assert f"umhctl plan --out {planfile} -f {site.blueprint} --sim" in text + err
    assert "--retry-failed" not in text + err
    code, out = site.apply("--retry-failed")
    assert code == 0, out
    assert hostname.read_text() == "edge-02\n"


def test_locked_device_is_refused_naming_the_holder_and_force_unlock_clears_it(site: Site) -> None:
    lock = site.device_file("edge-01", "/var/lib/umhctl/lock.d")
    lock.mkdir(parents=True, exist_ok=True)  # a fresh device has no /var/lib/umhctl yet
    (lock / "info").write_text(f"{int(__import__('time').time())}\nalice <alice@example.com> pid 4242\n")
    site.device_file("edge-01", "/etc/hostname").write_text("x\n")
    code, out = site.apply()
    assert code == 1
    assert "locked by alice <alice@example.com> pid 4242" in out
    assert site.device_file("edge-01", "/etc/hostname").read_text() == "x\n", "nothing changed on a locked device"
    code, out = site.apply("--force-unlock")
    assert code == 0, out
    assert not lock.exists()
    assert site.plan("--detailed-exitcode")[0] == 0


def test_dirty_blueprint_is_refused_unless_allowed(site: Site) -> None:
    text = site.blueprint.read_text()
    site.blueprint.write_text(text.replace("description: Demo plant", "description: Dirty demo plant"))
    site.device_file("edge-02", "/etc/hostname").write_text("x\n")
    code, out = site.apply()
    assert code == 1 and "uncommitted changes" in out and "--allow-dirty" in out
    code, out = site.apply("--allow-dirty")
    assert code == 0, out
    record = json.loads(site.device_file("edge-02", "/var/lib/umhctl/applied.json").read_text())
    assert record["blueprint"]["dirty"] is True
    git(site.repo, "checkout", "--", site.blueprint.name)


def test_without_a_terminal_apply_needs_yes(site: Site) -> None:
    site.device_file("edge-02", "/etc/hostname").write_text("x\n")
    code, out, err = site.run("apply", "--sim", "-f", str(site.blueprint))
    assert code == 1 and "--yes" in out + err
    assert site.device_file("edge-02", "/etc/hostname").read_text() == "x\n"
    assert site.apply()[0] == 0


def test_host_key_mismatch_is_refused_with_both_fingerprints(site: Site) -> None:
    known_hosts = site.sim.known_hosts
    original = known_hosts.read_text()
    address = site.sim.endpoint("edge-01")[0]
    other_key = next(line.split(" ", 1)[1] for line in original.splitlines() if not line.startswith(address + " "))
    lines = [f"{address} {other_key}" if line.startswith(address + " ") else line for line in original.splitlines()]
    known_hosts.write_text("\n".join(lines) + "\n")
    try:
        code, plan = site.plan("--device", "edge-01")
        assert code == 1
        error = plan["devices"][0]["error"]
        assert "host key mismatch" in error and error.count("SHA256:") == 2
    finally:
        known_hosts.write_text(original)


def test_revoked_host_key_is_refused(site: Site) -> None:
    """An @revoked line (sshd(8)) is honoured: the device that presents that key is refused, the others are not;
    paramiko alone read the marker as a host name and failed with "internal error" on every device."""
    known_hosts = site.sim.known_hosts
    original = known_hosts.read_text()
    address = site.sim.endpoint("edge-01")[0]
    key = next(line.split(" ", 1)[1] for line in original.splitlines() if line.startswith(address + " "))
    known_hosts.write_text(original + f"@revoked * {key}\n@cert-authority *.plant.example {key}\n")
    try:
        code, plan = site.plan()
        assert code == 1
        errors = {d["device"]: d.get("error") for d in plan["devices"]}
        assert "is revoked" in errors["edge-01"] and "SHA256:" in errors["edge-01"]
        assert errors["hub-01"] is None and errors["edge-02"] is None
    finally:
        known_hosts.write_text(original)


def _device_tree(site: Site) -> dict[str, tuple[int, int]]:
    """Every file and directory of every simulated device (outside /proc-like mounts), with its size and mtime."""
    tree = {}
    for device in ("hub-01", "edge-01", "edge-02"):
        root = site.sim.root(device)
        for top in ("etc", "opt", "var", "home"):
            for path in (root / top).rglob("*"):
                if "/var/log/" in str(path) or path.is_symlink():
                    continue
                info = path.lstat()
                tree[f"{device}:{path.relative_to(root)}"] = (info.st_size, info.st_mtime_ns)
    return tree


# Hostile blueprints of issue 16: each one was applied (or hung) before validate refused it.
SITE_FILE = "\nfiles:\n  - path: {path}\n    template: {template}\n    vars: {{max_use: 1M, max_retention: 1day}}\n"
JOURNALD = "files/journald-retention.conf.j2"
HOSTILE = {  # name: (what the blueprint gets, the text on the line the error must point at)
    "ssh directory": (SITE_FILE.format(path="/etc/ssh", template=JOURNALD), "path: /etc/ssh"),
    "umhctl state": (SITE_FILE.format(path="/var/lib/umhctl", template=JOURNALD), "path: /var/lib/umhctl"),
    "include out": (SITE_FILE.format(path="/etc/app.conf", template="files/hostile-include.j2"), "hostile-include"),
    "runaway template": (SITE_FILE.format(path="/etc/app.conf", template="files/hostile-loop.j2"), "hostile-loop"),
    "dashboard fifo": ("", "file: dashboards/hostile.json"),
}


def test_hostile_blueprints_are_refused_before_any_device_is_touched(site: Site) -> None:
    files = site.repo / "files"
    (files / "hostile-link.j2").symlink_to("/etc/passwd")
    (files / "hostile-include.j2").write_text('{% include "hostile-link.j2" %}\n')
    (files / "hostile-loop.j2").write_text(
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    )
    os.mkfifo(site.repo / "dashboards" / "hostile.json")
    original = site.blueprint.read_text()
    # earlier tests may have removed the site files: each case brings its own ('files' is the last section)
    base = original[: original.index("\nfiles:\n")] + "\n" if "\nfiles:\n" in original else original
    before = _device_tree(site)
    try:
        for name, (extra, needle) in HOSTILE.items():
            text = base + extra if extra else base.replace("file: dashboards/line-overview.json", needle)
            assert needle in text
            site.blueprint.write_text(text)
            code, out = site.apply("--allow-dirty")
            assert code == 1, f"{name}: {out}"
            assert "Traceback" not in out and "internal error" not in out, f"{name}: {out}"
            line = next(i for i, row in enumerate(text.splitlines(), 1) if needle in row)
            assert f"{site.blueprint}:{line}:" in out, f"{name}: {out}"
        assert _device_tree(site) == before, "nothing reached a device"
    finally:
        site.blueprint.write_text(original)
        for leftover in ("files/hostile-link.j2", "files/hostile-include.j2", "files/hostile-loop.j2",
                         "dashboards/hostile.json"):  # fmt: skip
            (site.repo / leftover).unlink()
    assert site.plan("--detailed-exitcode")[0] == 0


def test_removed_dashboard_deletes_its_file(site: Site) -> None:
    text = site.blueprint.read_text()
    start = text.index("\ndashboards:\n")
    end = text.find("\nfiles:\n") if "\nfiles:\n" in text else len(text)
    site.blueprint.write_text(text[:start] + "\n" + text[end:])
    git(site.repo, "commit", "-qam", "drop the line-overview dashboard")
    dashboard = "/var/lib/rancher/k3s/server/manifests/umhctl-dashboard-line-overview.yaml"
    _, plan = site.plan()
    (hub,) = [d for d in plan["devices"] if d["changes"]]
    actions = {(c["action"], c["target"]) for c in hub["changes"]}
    assert ("-", dashboard) in actions
    assert ("~", "/var/lib/rancher/k3s/server/manifests/united-manufacturing-hub.yaml") in actions
    assert site.apply()[0] == 0
    assert not site.device_file("hub-01", dashboard).exists()
    assert site.plan("--detailed-exitcode")[0] == 0


def test_unreachable_device_does_not_stop_the_others(site: Site) -> None:
    from umhctl.sim.site import reboot_device

    for device in ("hub-01", "edge-01"):
        site.device_file(device, "/etc/hostname").write_text("x\n")
    reboot_device(site.sim.state_dir, "edge-02", power_off=True)
    try:
        code, out = site.apply()
        assert code == 1
        assert "edge-02: failed in planning" in out and "cannot reach" in out
        assert "hub-01: ok" in out and "edge-01: ok" in out
        assert site.device_file("hub-01", "/etc/hostname").read_text() == "hub-01\n"
    finally:
        assert site.run("sim", "up", "-f", str(site.blueprint))[0] == 0
    assert site.plan("--detailed-exitcode")[0] == 0


def test_secret_values_never_appear_in_plans_or_logs(site: Site, tmp_path: Path) -> None:
    store = Path(os.environ["UMHCTL_SECRETS_DIR"]) / "demo-site"
    values = secret_values(store)
    assert len(values) >= 6
    # Nor a plain digest of a secret or of a secret-bearing file (a weak password could be guessed from it).
    secret_files = [
        site.device_file(device, path).read_bytes()
        for device in ("hub-01", "edge-01")
        for path in ("/etc/rancher/k3s/token", "/etc/ssh/ssh_host_ed25519_key")
    ]
    secret_files.append(
        site.device_file("hub-01", "/var/lib/rancher/k3s/server/manifests/umhctl-secrets.yaml").read_bytes()
    )
    secrets = needles(values, secret_files)
    # Make secret-bearing files differ, so the plan has something to say about them.
    site.device_file("hub-01", "/etc/rancher/k3s/token").write_text("tampered\n")
    site.device_file("hub-01", "/var/lib/rancher/k3s/server/manifests/umhctl-secrets.yaml").write_text("x: 1\n")
    site.device_file("edge-01", "/etc/rancher/k3s/token").write_text("tampered too\n")
    planfile = tmp_path / "plan.json"
    outputs = [
        site.run("plan", "--sim", "-f", str(site.blueprint)),
        site.run("plan", "--sim", "-f", str(site.blueprint), "-o", "json", "--out", str(planfile)),
        site.run("apply", "--sim", "-f", str(site.blueprint), "--yes"),
        site.run("apply", "--sim", "-f", str(site.blueprint), "--yes", "-o", "json"),
    ]
    texts = [out + err for _, out, err in outputs] + [planfile.read_text()]
    assert "(sensitive)" in texts[0] and '"sensitive": true' in texts[1]
    for text in texts:
        assert leaks(text, secrets) == []
    # Nor in what umhctl keeps locally: the content cache and the run state.
    for local in ("XDG_CACHE_HOME", "XDG_STATE_HOME"):
        assert scan(Path(os.environ[local]), secrets, skip_private=False) == {}
    assert site.plan("--detailed-exitcode")[0] == 0


def test_a_unit_that_fails_to_restart_is_reported_and_retried(site: Site) -> None:
    broken = site.device_file("hub-01", "/etc/umhctl-sim/broken-units/k3s.service")
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.touch()  # simulation: k3s cannot start on hub-01
    site.device_file("hub-01", "/etc/rancher/k3s/token").write_text("tampered\n")
    try:
        code, out = site.apply()
        assert code == 1 and "restarting failed for k3s.service" in out and "files are in place" in out
        _, plan = site.plan()
        (hub,) = [d for d in plan["devices"] if d["changes"]]
        assert [(c["action"], c["target"], c["reason"]) for c in hub["changes"]] == [
            ("↻", "k3s.service", "failed on the device")
        ]
    finally:
        broken.unlink()
    code, out = site.apply()
    assert code == 0, out
    assert site.plan("--detailed-exitcode")[0] == 0


class RemoteCounts:
    """SSH connections and remote commands per device address, counted where umhctl meets paramiko (the real
    calls go through unchanged)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import paramiko

        self.connections: dict[str, int] = {}
        self.commands: dict[str, int] = {}
        for cls, method, counts in (
            (paramiko.Transport, "start_client", self.connections),
            (paramiko.Channel, "exec_command", self.commands),
        ):
            original = getattr(cls, method)

            def counted(this: object, *args: object, _o: object = original, _c: dict = counts, **kw: object) -> object:
                transport = this if isinstance(this, paramiko.Transport) else this.get_transport()  # type: ignore[attr-defined]
                address = "{}:{}".format(*transport.getpeername()[:2])
                _c[address] = _c.get(address, 0) + 1
                return _o(this, *args, **kw)  # type: ignore[operator]

            monkeypatch.setattr(cls, method, counted)


def where(site: Site, device: str) -> str:
    return "{}:{}".format(*site.sim.endpoint(device))


def test_a_one_change_apply_is_one_connection_and_three_commands(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe; lock and re-read facts; write, restart, verify and unlock: one connection, three round trips."""
    config = site.device_file("edge-01", "/etc/rancher/k3s/config.yaml")
    config.write_text(config.read_text() + "# changed by hand\n")
    log = site.device_file("edge-01", "/var/log/umhctl-sim/systemctl.log")
    before = log.read_text() if log.exists() else ""
    counts = RemoteCounts(monkeypatch)
    code, out = site.apply()
    assert code == 0, out
    edge = where(site, "edge-01")
    others = {where(site, d) for d in ("hub-01", "edge-02")}
    assert (counts.connections[edge], counts.commands[edge]) == (1, 3), (counts.connections, counts.commands)
    assert all((counts.connections[a], counts.commands[a]) == (1, 1) for a in others), "unchanged: the probe only"
    assert "by hand" not in config.read_text()
    assert not site.device_file("edge-01", "/var/lib/umhctl/lock.d").exists(), "the last round trip unlocked"
    assert "restart -- k3s.service" in log.read_text()[len(before) :]
    assert site.plan("--detailed-exitcode")[0] == 0


def test_an_unattended_apply_locks_a_device_behind_its_blueprint_in_the_plans_round_trip(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply --yes after a blueprint change: the probe also takes the lock (the device's record names another
    state), so write, restart, verify and unlock follow in one more round trip: two in all."""
    site.edit("ntp: [192.0.2.123]", "ntp: [192.0.2.123, 192.0.2.124]", "a second NTP server")
    counts = RemoteCounts(monkeypatch)
    code, out = site.apply()
    assert code == 0, out
    for device in ("hub-01", "edge-01", "edge-02"):
        at = where(site, device)
        assert (counts.connections[at], counts.commands[at]) == (1, 2), (device, counts.connections, counts.commands)
        assert not site.device_file(device, "/var/lib/umhctl/lock.d").exists()
        assert "192.0.2.124" in site.device_file(device, "/etc/systemd/timesyncd.conf.d/50-umhctl.conf").read_text()
    assert site.plan("--detailed-exitcode")[0] == 0


def test_an_apply_someone_reviews_takes_no_lock_before_the_answer(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from umhctl import api
    from umhctl.plan.model import Plan
    from umhctl.sim.state import sim_inventory

    site.edit("ntp: [192.0.2.123, 192.0.2.124]", "ntp: [192.0.2.123]", "one NTP server again")

    def review(plan: Plan) -> bool:
        held = [d for d in ("hub-01", "edge-01", "edge-02") if site.device_file(d, "/var/lib/umhctl/lock.d").exists()]
        assert held == [], "no lock is held while a person reads the plan"
        return True

    counts = RemoteCounts(monkeypatch)
    result = api.apply(site.blueprint, inventory=sim_inventory, confirm=review)
    assert result.ok, result.outcomes
    assert all(counts.commands[where(site, d)] == 3 for d in ("hub-01", "edge-01", "edge-02")), counts.commands


def test_locks_taken_early_are_released_when_the_apply_stops_before_writing(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from umhctl import api, converge
    from umhctl.errors import UmhctlError
    from umhctl.sim.state import sim_inventory

    site.edit("ntp: [192.0.2.123]", "ntp: [192.0.2.123, 192.0.2.125]", "another second NTP server")

    def stop(*args: object, **kwargs: object) -> object:
        for device in ("hub-01", "edge-01", "edge-02"):
            assert site.device_file(device, "/var/lib/umhctl/lock.d").exists(), "locked by the plan's round trip"
        raise UmhctlError("stopped before writing")

    monkeypatch.setattr(converge, "apply_plan", stop)
    with pytest.raises(UmhctlError, match="stopped before writing"):
        api.apply(site.blueprint, inventory=sim_inventory)
    for device in ("hub-01", "edge-01", "edge-02"):
        assert not site.device_file(device, "/var/lib/umhctl/lock.d").exists(), device
    monkeypatch.undo()
    assert site.apply()[0] == 0


def test_a_connection_lost_while_the_plan_is_read_is_made_again(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from umhctl import api, converge
    from umhctl.plan.model import Plan
    from umhctl.sim.state import sim_inventory

    made: list[converge.Phases] = []
    init = converge.Phases.__init__

    def remember(self: converge.Phases, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(converge.Phases, "__init__", remember)

    def drop_the_line(plan: Plan) -> bool:
        (phases,) = made
        assert set(phases.parked) == {"edge-01"}, "only the device with changes keeps its connection"
        transport = phases.parked["edge-01"].remote.conn.client.get_transport()
        assert transport is not None
        transport.close()  # the connection dies while the operator reads the plan
        return True

    site.device_file("edge-01", "/etc/hostname").write_text("x\n")
    counts = RemoteCounts(monkeypatch)
    result = api.apply(site.blueprint, inventory=sim_inventory, confirm=drop_the_line)
    assert [(o.device, o.ok) for o in result.outcomes] == [("edge-01", True)], result.outcomes
    assert counts.connections[where(site, "edge-01")] == 2, "a new connection, with the same checks"
    assert site.device_file("edge-01", "/etc/hostname").read_text() == "edge-01\n"
    assert made[0].parked == {}


def test_a_declined_apply_closes_the_connections_its_plan_kept(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from umhctl import api, converge
    from umhctl.sim.state import sim_inventory

    closed: list[str] = []
    close = converge.Remote.close

    def noting(self: converge.Remote) -> None:
        closed.append(self.device)
        close(self)

    monkeypatch.setattr(converge.Remote, "close", noting)
    site.device_file("edge-02", "/etc/hostname").write_text("x\n")
    try:
        result = api.apply(site.blueprint, inventory=sim_inventory, confirm=lambda plan: False)
        assert result.cancelled and sorted(closed) == ["edge-01", "edge-02", "hub-01"]
        assert site.device_file("edge-02", "/etc/hostname").read_text() == "x\n"
    finally:
        assert site.apply()[0] == 0


def test_blueprint_identity_file_is_used_for_real_devices(site: Site, tmp_path: Path) -> None:
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.errors import UmhctlError
    from umhctl.inventory import blueprint_inventory
    from umhctl.sim.state import sim_inventory

    key = tmp_path / "plant_ed25519"
    key.write_text("not used here\n")
    text = site.blueprint.read_text().replace(
        "  knownHostsFile: known_hosts\n", f"  knownHostsFile: known_hosts\n  identityFile: {key}\n"
    )
    blueprint = site.repo / "identity-test.yaml"  # next to dashboards/ and files/; removed again below
    blueprint.write_text(text)
    try:
        loaded = load_blueprint(blueprint)
    finally:
        blueprint.unlink()
    real = blueprint_inventory(loaded).endpoint("edge-01")
    assert real.identity == key and str(real.address) == "192.0.2.21"
    simulated = sim_inventory(loaded).endpoint("edge-01")
    assert simulated.identity == site.sim.identity, "in sim mode the simulated site's operator key"
    other = tmp_path / "other_key"
    assert blueprint_inventory(loaded, other).endpoint("edge-01").identity == other, "-i overrides"
    key.unlink()
    try:
        blueprint_inventory(loaded)
    except UmhctlError as exc:
        assert "identityFile" in str(exc)
    else:
        raise AssertionError("a missing identity file must be a clean error")


def test_a_plan_does_not_ask_git_who_is_applying(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two git processes fewer per plan: the operator's identity is read only for a lock or a record."""
    from umhctl import converge
    from umhctl.hints import Hints

    asked: list[str] = []
    monkeypatch.setattr(converge, "operator", lambda: asked.append("who") or "Ada <ada@example.com>")
    phases = converge.Phases({"site": "s", "path": "p"}, converge.ContentCache(), Hints(), command="plan")
    phases.plan_phases()
    assert asked == []
    assert phases.holder.startswith("Ada <ada@example.com>, pid ") and phases.holder.endswith("(umhctl plan)")
    assert phases.who == "Ada <ada@example.com>" and asked == ["who"]
