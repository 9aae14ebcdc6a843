"""Remote access through plant firewalls: Tailscale enrolled by Ignition (or apply), devices reached by tailnet name.

Rendering is checked by its consumers (ignition-validate, the real Ignition files stage). Tailscale itself cannot run
here (no control server, no internet): on the simulated site a FAKE `tailscale` CLI records an enrollment, and the
site's stand-in for MagicDNS resolves `<hostname>.<tailnet>` only for a device that enrolled under that hostname.
Everything else is real: the enroll unit runs as systemd would run it (conditions, dependency, Exec lines), sshd
answers on the device's address, host keys are checked strictly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.api import validate
from umhctl.blueprint.loader import load_blueprint
from umhctl.cli import app
from umhctl.render import render_site
from umhctl.render.ignition import ignition_json
from umhctl.render.tailscale import AUTH_KEY, ENROLL_UNIT, ENROLL_UNIT_PATH, TAILSCALED_UNIT
from umhctl.secrets import SecretStore
from umhctl.sim.provision import TAILNET_NODE, make_base_root, run_ignition

from .conftest import SiteRepo, needs_simulated_devices, simulated_demo_site
from .leaks import leaks, needles, scan
from .tailnet import AUTH_KEY as KEY
from .tailnet import enable_tailscale, tailscale_site

TAILNET = "example-plant.ts.net"
WANTS = "etc/systemd/system/multi-user.target.wants"
BASE = f"127.93.{os.getpid() % 250 + 1}.10"


@pytest.fixture
def blueprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAILSCALE_AUTHKEY", KEY)
    monkeypatch.setenv("UMHCTL_SECRETS_DIR", str(tmp_path / "secrets"))
    return tailscale_site(tmp_path / "site")


def test_the_demo_blueprint_keeps_tailscale_off_so_the_quick_start_needs_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from umhctl import api

    from .conftest import BLUEPRINTS

    monkeypatch.delenv("TAILSCALE_AUTHKEY", raising=False)
    monkeypatch.setenv("UMHCTL_SECRETS_DIR", str(tmp_path / "secrets"))
    bp = load_blueprint(BLUEPRINTS / "demo-site.yaml").blueprint
    assert bp.access.tailscale is not None and bp.access.enabled_tailscale is None and bp.access.via == "management"
    result = api.render(BLUEPRINTS / "demo-site.yaml", out=tmp_path / "render", devices=["edge-01"])
    assert result.devices and not (tmp_path / "render/edge-01/rootfs" / AUTH_KEY.lstrip("/")).exists()


@pytest.mark.parametrize("reset_in_place", [False, True], ids=["first-boot", "reset-in-place"])
def test_the_config_passes_ignition_validate_and_the_files_stage_writes_key_unit_and_links(
    blueprint: Path, device_roots: Path, tmp_path: Path, reset_in_place: bool
) -> None:
    loaded = load_blueprint(blueprint)
    store = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    (r,) = render_site(loaded, store, devices=["edge-01"], self_contained=reset_in_place, kept_images=reset_in_place)
    config = tmp_path / "edge-01.ign"
    config.write_text(ignition_json(r.ignition))
    proc = subprocess.run(["ignition-validate", str(config)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr

    root = device_roots / "edge-01"
    make_base_root(root)
    run_ignition(r.ignition, root)
    key = root / AUTH_KEY.lstrip("/")
    assert key.read_text() == KEY + "\n"
    assert key.stat().st_mode & 0o7777 == 0o600 and (key.stat().st_uid, key.stat().st_gid) == (0, 0)
    unit = (root / ENROLL_UNIT_PATH.lstrip("/")).read_text()
    assert f"--auth-key=file:{AUTH_KEY} --hostname=edge-01 --login-server=https://controlplane.tailscale.com" in unit
    assert "--advertise-tags=tag:plant-cologne" in unit and f"ConditionPathExists={AUTH_KEY}\n" in unit
    assert "ExecCondition=/bin/sh -c '! /usr/bin/tailscale status --json | grep -q \"BackendState.*Running\"'" in unit
    assert KEY not in unit  # the key is read from its file: never on a command line
    assert os.readlink(root / WANTS / ENROLL_UNIT) == ENROLL_UNIT_PATH
    assert os.readlink(root / WANTS / "tailscaled.service") == TAILSCALED_UNIT
    image = next(a for a in r.state.artifacts if a.name.startswith("tailscale-"))
    assert image.name == "tailscale-v1.80.0-x86-64.raw" and image.path == "/opt/extensions/tailscale/" + image.name
    # First boot does not bring the image (apply uploads it), so it links it only when a reset keeps it.
    link = root / "etc/extensions/tailscale.raw"
    if reset_in_place:
        assert os.readlink(link) == image.path
    else:
        assert not os.path.lexists(link)


def test_with_delivery_by_ignition_first_boot_fetches_the_pinned_image_and_links_it(
    blueprint: Path, tmp_path: Path
) -> None:
    from umhctl.artifacts import LockFile, Pin, lock_path

    blueprint.write_text(blueprint.read_text().replace("\nos:\n", "\nartifacts:\n  delivery: ignition\n\nos:\n", 1))
    digest = "ab" * 32
    names = ["k3s-v1.32.2+k3s1-x86-64.raw", "tailscale-v1.80.0-x86-64.raw"]
    LockFile(lock_path(blueprint), {n: Pin(digest, None, "test") for n in names}).save()
    loaded = load_blueprint(blueprint)
    (r,) = render_site(loaded, SecretStore.for_blueprint(loaded.blueprint, blueprint.parent), devices=["edge-01"])
    files = {f["path"]: f for f in r.ignition["storage"]["files"]}
    image = files["/opt/extensions/tailscale/tailscale-v1.80.0-x86-64.raw"]["contents"]
    assert image == {
        "source": "https://extensions.flatcar.org/extensions/tailscale-v1.80.0-x86-64.raw",
        "verification": {"hash": f"sha256-{digest}"},
    }
    links = {link["path"]: link["target"] for link in r.ignition["storage"]["links"]}
    assert links["/etc/extensions/tailscale.raw"] == "/opt/extensions/tailscale/tailscale-v1.80.0-x86-64.raw"
    config = tmp_path / "edge-01.ign"
    config.write_text(ignition_json(r.ignition))
    proc = subprocess.run(["ignition-validate", str(config)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_systemd_reads_the_enroll_unit_without_a_complaint(blueprint: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` in a root that has systemd's own units, a stand-in tailscaled.service (the
    extension's) and executables where the unit's commands are (their existence is part of the check)."""
    loaded = load_blueprint(blueprint)
    (r,) = render_site(loaded, SecretStore.for_blueprint(loaded.blueprint, blueprint.parent), devices=["edge-01"])
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / TAILSCALED_UNIT.lstrip("/")).write_text("[Service]\nExecStart=/usr/bin/tailscale\n")
    for command in ("usr/bin/tailscale", "bin/sh"):
        (root / command).parent.mkdir(parents=True, exist_ok=True)
        (root / command).write_text("#!/bin/true\n")
        (root / command).chmod(0o755)
    unit = root / ENROLL_UNIT_PATH.lstrip("/")
    unit.parent.mkdir(parents=True)
    unit.write_bytes(r.state.file(ENROLL_UNIT_PATH).content)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", ENROLL_UNIT_PATH], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_a_headscale_server_and_per_device_names_go_into_the_enroll_unit(blueprint: Path) -> None:
    text = blueprint.read_text().replace(
        "    tailnet: example-plant.ts.net\n",
        "    tailnet: example-plant.ts.net\n    loginServer: https://headscale.plant.example:8443\n",
    )
    text = text.replace("  - name: edge-02\n", "  - name: edge-02\n    tailnetHostname: paint-edge\n")
    blueprint.write_text(text)
    loaded = load_blueprint(blueprint)
    store = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    (r,) = render_site(loaded, store, devices=["edge-02"])
    unit = r.state.file(ENROLL_UNIT_PATH).content.decode()
    assert "--hostname=paint-edge --login-server=https://headscale.plant.example:8443 " in unit


def test_two_devices_with_one_tailnet_name_are_an_error_at_the_second(blueprint: Path) -> None:
    text = blueprint.read_text().replace("  - name: edge-02\n", "  - name: edge-02\n    tailnetHostname: edge-01\n")
    blueprint.write_text(text)
    result = validate(blueprint)
    (problem,) = [d for d in result.diagnostics if d.severity == "error"]
    line = text.splitlines().index("    tailnetHostname: edge-01") + 1
    assert (problem.line, problem.column) == (line, 22)
    assert "duplicate tailnet hostname 'edge-01'" in problem.message


def test_via_tailscale_without_the_section_is_refused_for_one_run(blueprint: Path) -> None:
    from .conftest import BLUEPRINTS

    result = CliRunner().invoke(
        app, ["plan", "-f", str(BLUEPRINTS / "demo-site.yaml"), "--via", "tailscale", "-o", "json"]
    )
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert "--via tailscale needs access.tailscale" in error["message"] and "--via management" in error["hint"]


# -- on the simulated site -----------------------------------------------------------------------------------


@dataclass
class Site(SiteRepo):
    def run(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "-f", str(self.blueprint)])
        return result.exit_code, result.stdout + result.stderr

    def plan(self, *extra: str) -> tuple[int, dict]:
        result = CliRunner().invoke(app, ["plan", "--sim", "-f", str(self.blueprint), "-o", "json", *extra])
        assert result.stdout, result.stderr
        return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    saved = os.environ.get("TAILSCALE_AUTHKEY")
    os.environ["TAILSCALE_AUTHKEY"] = KEY
    try:
        with simulated_demo_site(BASE) as blueprint:
            s = Site(blueprint.parent, blueprint)
            assert s.run("apply", "--sim", "--yes")[0] == 0  # the site as it runs before Tailscale is turned on
            yield s
    finally:
        if saved is None:
            os.environ.pop("TAILSCALE_AUTHKEY", None)
        else:
            os.environ["TAILSCALE_AUTHKEY"] = saved


SYSTEMCTL_LOG = "/var/log/umhctl-sim/systemctl.log"


def _enrollments(site: Site, device: str) -> list[str]:
    """The `tailscale up` runs the fake CLI logged in a device."""
    log = site.file(device, "/var/log/umhctl-sim/tailscale.log")
    return [line for line in log.read_text().splitlines() if " up " in line] if log.exists() else []


def _addresses(plan: dict) -> dict[str, str]:
    return {d["device"]: d["address"] for d in plan["devices"]}


@needs_simulated_devices
def test_a_device_not_yet_enrolled_is_reported_with_the_way_through_its_management_address(site: Site) -> None:
    site.commit(enable_tailscale(site.blueprint.read_text()), "Reach the plant through the tailnet")
    assert site.run("lock", "--sim")[0] == 0  # the simulated site publishes and pins its stand-in image
    code, out = site.run("fetch", "--sim")
    assert code == 0 and "tailscale-v1.80.0-x86-64.raw" in out

    code, plan = site.plan("--via", "tailscale")
    assert code == 1
    for device in plan["devices"]:
        assert device["address"].startswith(f"{device['device']}.{TAILNET}:")
        assert "not enrolled in the tailnet yet" in device["error"] and "--via management" in device["error"]
    code, out = site.run("plan", "--sim", "--via", "tailscale")
    assert code == 1 and "not enrolled in the tailnet yet" in out
    # status goes the same way (issue 15: plan/apply/reset/status over the tailnet)
    code, out = site.run("status", "--sim", "--via", "tailscale", "-o", "json")
    assert code == 1
    for device in json.loads(out)["devices"]:
        assert "not enrolled in the tailnet yet" in json.dumps(device) and "--via management" in json.dumps(device)

    # Through the management addresses the plan shows what enrolling takes: key, unit, image, restarts.
    code, plan = site.plan("--via", "management")
    assert code == 0
    edge = next(d for d in plan["devices"] if d["device"] == "edge-01")
    targets = {c["target"]: c for c in edge["changes"]}
    assert targets[AUTH_KEY]["sensitive"] is True
    assert ENROLL_UNIT_PATH in targets and "/opt/extensions/tailscale/tailscale-v1.80.0-x86-64.raw" in targets
    assert {"systemd-sysext.service", "tailscaled.service", ENROLL_UNIT} <= set(targets)


@needs_simulated_devices
def test_apply_enrolls_every_device_which_is_then_reached_by_its_tailnet_name(site: Site) -> None:
    code, out = site.run("apply", "--sim", "--yes")
    assert code == 0, out
    for name in ("hub-01", "edge-01", "edge-02"):
        assert len(_enrollments(site, name)) == 1
        record = site.file(name, TAILNET_NODE).read_text()
        assert f"hostname={name}\n" in record and "tags=tag:plant-cologne\n" in record
        assert "login_server=https://controlplane.tailscale.com\n" in record
        log = site.file(name, SYSTEMCTL_LOG).read_text()
        assert f"restart -- {ENROLL_UNIT}" in log

    code, plan = site.plan("--via", "tailscale", "--detailed-exitcode")
    assert code == 0, plan
    assert all(a.startswith(f"{d}.{TAILNET}:") for d, a in _addresses(plan).items())

    # Enrolled devices stay as they are: a changed key file restarts the enroll unit, which then does nothing.
    site.file("edge-01", AUTH_KEY).write_text("tskey-tampered\n")
    code, out = site.run("apply", "--sim", "--yes")
    assert code == 0 and f"restart -- {ENROLL_UNIT}" in site.file("edge-01", SYSTEMCTL_LOG).read_text()
    assert len(_enrollments(site, "edge-01")) == 1
    assert site.file("edge-01", AUTH_KEY).read_text() == KEY + "\n"

    # The blueprint's choice is the default; --via management overrides it for one run.
    site.commit(site.blueprint.read_text().replace("  via: management\n", "  via: tailscale\n", 1), "via tailnet")
    code, plan = site.plan("--detailed-exitcode")
    assert code == 0 and _addresses(plan)["edge-02"] == f"edge-02.{TAILNET}:22"
    code, plan = site.plan("--via", "management")
    assert code == 0 and _addresses(plan)["edge-02"] == f"{site.sim.endpoint('edge-02')[0]}:22"

    # The name leads only to a device enrolled under it: without its enrollment, edge-02 is not in the tailnet.
    record = site.file("edge-02", TAILNET_NODE)
    saved = record.read_bytes()
    record.unlink()
    try:
        code, plan = site.plan()
        errors = {d["device"]: d["error"] for d in plan["devices"]}
        assert code == 1 and errors["hub-01"] is None and "not enrolled in the tailnet yet" in errors["edge-02"]
    finally:
        record.write_bytes(saved)


@needs_simulated_devices
def test_the_host_key_is_checked_as_strictly_through_the_tailnet(site: Site) -> None:
    known_hosts = site.sim.known_hosts
    saved = known_hosts.read_text()
    address = site.sim.endpoint("edge-01")[0]
    hub_key = next(
        line.split(" ", 1)[1] for line in saved.splitlines() if line.startswith(site.sim.endpoint("hub-01")[0])
    )
    # edge-01's entry now holds another device's key: through the tailnet it is refused just the same.
    known_hosts.write_text(
        "".join(
            (f"{address} {hub_key}" if line.startswith(address + " ") else line) + "\n" for line in saved.splitlines()
        )
    )
    try:
        code, plan = site.plan("--via", "tailscale")
        edge = next(d for d in plan["devices"] if d["device"] == "edge-01")
        assert code == 1 and "host key mismatch" in edge["error"]
    finally:
        known_hosts.write_text(saved)


@needs_simulated_devices
def test_a_reset_over_the_tailnet_enrolls_the_device_again_under_the_same_hostname(site: Site) -> None:
    assert load_blueprint(site.blueprint).blueprint.access.via == "tailscale"
    old_state = site.file("edge-02", "/var/lib/tailscale/tailscaled.state")
    old_state.write_text("the node identity of the old system\n")
    code, out = site.run("reset", "device", "edge-02", "--sim", "--yes")
    assert code == 0, out
    assert "checking kept images" in out or "check-images" in out
    # Its tailnet state went with the reset; its first boot enrolled it again, as edge-02, before umhctl came back.
    assert not old_state.exists()
    assert "hostname=edge-02\n" in site.file("edge-02", TAILNET_NODE).read_text()
    assert len(_enrollments(site, "edge-02")) == 1  # the rebuilt system's own: the old log went with the reset
    code, plan = site.plan("--detailed-exitcode")
    assert code == 0 and _addresses(plan)["edge-02"] == f"edge-02.{TAILNET}:22"


@needs_simulated_devices
def test_the_auth_key_appears_only_in_its_0600_file(site: Site, tmp_path: Path) -> None:
    found = needles([KEY])
    outputs = [
        site.run("plan", "--sim"),
        site.run("plan", "--sim", "-o", "json", "--out", str(tmp_path / "plan.json")),
        site.run("apply", "--sim", "--yes"),
        site.run("apply", "--sim", "--yes", "-o", "json"),
        site.run("render", "--out", str(tmp_path / "render")),
    ]
    for code, text in outputs:
        assert code == 0, text
        assert leaks(text, found) == []
    assert leaks((tmp_path / "plan.json").read_text(), found) == []
    # The render: only in files kept private (the key file itself and the configs that carry it to first boot).
    assert scan(tmp_path / "render", found) == {}
    # On the devices: the key in /etc/tailscale/authkey, root's and 0600, and nowhere else (logs, units, the
    # record); not even a digest of it outside root-only files (the applied-state record holds file hashes).
    for name in ("hub-01", "edge-01", "edge-02"):
        root = site.sim.root(name)
        holders = set(scan(root, {KEY}, skip_private=False))
        # A reset device also keeps the Ignition config flatcar-reset staged for its rebuild (root's, 0600).
        assert AUTH_KEY.lstrip("/") in holders and holders <= {AUTH_KEY.lstrip("/"), "oem/config.ign"}, name
        assert all((root / p).stat().st_mode & 0o777 == 0o600 for p in holders), name
        assert scan(root, found) == {}, name
        key = root / AUTH_KEY.lstrip("/")
        assert key.stat().st_mode & 0o7777 == 0o600 and key.stat().st_uid == 0
    # What umhctl keeps locally (content cache, run state, sim state beyond the devices' own configs).
    for local in ("XDG_CACHE_HOME", "XDG_STATE_HOME"):
        assert scan(Path(os.environ[local]), found, skip_private=False) == {}
    carriers = {p for p in scan(site.sim.state_dir, found, skip_private=False) if "/root/" not in p}
    assert all(p.endswith("/ignition.json") and p.startswith("devices/") for p in carriers), carriers
    assert all((site.sim.state_dir / p).stat().st_mode & 0o777 == 0o600 for p in carriers)


def test_hints_carry_via_to_the_commands_that_take_it_and_offer_the_management_way() -> None:
    from umhctl.hints import Hints

    hints = Hints(("-f", "site.yaml", "--sim", "--via", "tailscale"))
    assert hints.command("apply", "--retry-failed") == "umhctl apply --retry-failed -f site.yaml --sim --via tailscale"
    assert hints.command("fetch") == "umhctl fetch -f site.yaml --sim"  # fetch has no --via
    assert hints.via_management("reset", "device", "edge-01") == (
        "umhctl reset device edge-01 -f site.yaml --sim --via management"
    )
