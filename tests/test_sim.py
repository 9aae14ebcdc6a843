"""The simulated site, for real: sshd processes in roots the real Ignition provisioned, reached over loopback.

The demo site is brought up once for the module (through the CLI) and taken down by the last test; in between
the tests log in with strict host-key checking, look at what Ignition placed, use the stand-ins, reset and
reboot a device. Needs root, ignition, openssh-server, sudo and paramiko.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from umhctl.blueprint.loader import load_blueprint
from umhctl.cli.sim import sim_app
from umhctl.errors import UmhctlError
from umhctl.render import DeviceRender, render_site
from umhctl.secrets import SecretStore
from umhctl.sim import process
from umhctl.sim import site as sim_site
from umhctl.sim.net import assert_loopback, listeners
from umhctl.sim.provision import IGNITION
from umhctl.sim.site import SimSite, process_reboots, reboot_device, sweep_check

from .conftest import BLUEPRINTS

paramiko = pytest.importorskip("paramiko")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not IGNITION.exists()
    or not Path("/usr/sbin/sshd").exists()
    or not Path("/usr/bin/sudo").exists(),
    reason="simulated devices need root, ignition, openssh-server and sudo",
)

DEMO = BLUEPRINTS / "demo-site.yaml"
# Per test run, so a developer's own simulated demo site (default addresses) is never in the way.
BASE = f"127.77.{os.getpid() % 250 + 1}.10"


def cli_app() -> typer.Typer:
    """How umhctl/cli.py mounts the sub-app: `app.add_typer(sim_app, name="sim")`."""
    app = typer.Typer()
    app.add_typer(sim_app, name="sim")

    @app.callback()
    def main() -> None:
        pass

    return app


def invoke(*args: str) -> tuple[int, str]:
    """The exit code, and stdout (JSON alone there) with -o json, else everything a terminal would show."""
    result = CliRunner().invoke(cli_app(), list(args))
    return result.exit_code, result.stdout if "json" in args else result.output


@dataclass
class Sim:
    state: Path
    base: Path
    secrets: Path
    renders: dict[str, DeviceRender]
    up_output: dict

    @property
    def site(self) -> SimSite:
        return SimSite.load(self.state)

    def host_name(self, device: str) -> str:
        return load_blueprint(DEMO).blueprint.device(device).host_name


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    base = Path(tempfile.mkdtemp(prefix="umhctl-test-sim-", dir="/tmp"))
    base.chmod(0o755)
    state = base / "state"
    secrets = base / "secrets"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UMHCTL_SECRETS_DIR", str(secrets))
        mp.setenv("XDG_STATE_HOME", str(base / "xdg-state"))  # where sim up records the --state-dir it used
        mp.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
        try:
            code, output = invoke(
                "sim", "up", "-f", str(DEMO), "--state-dir", str(state), "--base-address", BASE, "-o", "json"
            )
            assert code == 0, output
            loaded = load_blueprint(DEMO)
            store = SecretStore.for_blueprint(loaded.blueprint, DEMO.parent, secrets / "demo-site")
            renders = {r.device: r for r in render_site(loaded, store)}
            yield Sim(state, base, secrets, renders, json.loads(output))
        finally:
            invoke("sim", "down", "-f", str(DEMO), "--state-dir", str(state))
            shutil.rmtree(base, ignore_errors=True)


def test_plan_with_sim_finds_a_site_started_with_state_dir(sim: Sim) -> None:
    from umhctl.cli import app

    result = CliRunner().invoke(app, ["plan", "--sim", "-f", str(DEMO), "-o", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    addresses = {d["device"]: d["address"] for d in plan["devices"]}
    assert addresses == {name: f"{a}:{p}" for name, (a, p) in sim.site.endpoints().items()}
    assert all(d["error"] is None for d in plan["devices"])


def connect(sim: Sim, device: str, known_hosts: Path | None = None) -> paramiko.SSHClient:
    site = sim.site
    address, port = site.endpoint(device)
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts or site.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        address,
        port=port,
        username="core",
        key_filename=str(site.identity),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=20)
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out, stderr.read().decode()


def system_ssh(sim: Sim, device: str, command: str, known_hosts: Path | None = None) -> subprocess.CompletedProcess:
    site = sim.site
    address, port = site.endpoint(device)
    return subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts or site.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "KexAlgorithms=curve25519-sha256",
            "-i",
            str(site.identity),
            "-p",
            str(port),
            f"core@{address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


# -- up -----------------------------------------------------------------------------------------------------------


def test_up_starts_every_device_on_its_own_loopback_address(sim: Sim) -> None:
    devices = sim.up_output["devices"]
    assert [d["device"] for d in devices] == ["hub-01", "edge-01", "edge-02"]
    assert all(d["status"] == "running" and d["action"] == "started" for d in devices), devices
    addresses = [d["address"] for d in devices]
    assert addresses == [BASE, BASE[:-2] + "11", BASE[:-2] + "12"]
    for address in addresses:
        assert_loopback(address)
        assert (address, 22) in listeners()


def test_known_hosts_holds_the_keys_the_secret_store_gave_the_devices(sim: Sim) -> None:
    site = sim.site
    lines = sorted(site.known_hosts.read_text().splitlines())
    expected = sorted(
        f"{site.endpoint(name)[0]} {r.state.file('/etc/ssh/ssh_host_ed25519_key.pub').content.decode().strip()}"
        for name, r in sim.renders.items()
    )
    assert lines == expected


def test_acceptance_system_ssh_with_strict_host_keys_prints_the_hostname(sim: Sim) -> None:
    for device in sim.renders:
        proc = system_ssh(sim, device, "cat /etc/hostname; hostname; id -un; sudo -n id -u")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [sim.host_name(device), sim.host_name(device), "core", "0"]


def test_a_script_is_read_whole_before_it_runs(sim: Sim) -> None:
    """Connection.run: a command in the script that reads stdin finds end of file, not the rest of the script (as it
    would under `bash -s`, which reads its script one byte at a time); a large script (here 1 MB, as an apply's
    writes carry file contents) arrives whole; exit statuses come back, with and without sudo."""
    from umhctl.remote.ssh import connect as umhctl_connect

    site = sim.site.inventory()
    blob = base64.b64encode(os.urandom(750_000)).decode()
    with umhctl_connect(site.endpoint("edge-01")) as conn:
        swallowed = conn.run('rest=$(cat)\necho "read ${#rest} bytes"\necho after\n')
        assert (swallowed.status, swallowed.stdout) == (0, "read 0 bytes\nafter\n"), swallowed.stderr
        big = conn.run(f'blob={blob}\nprintf %s "$blob" | sha256sum\nid -u\n')
        assert big.status == 0, big.stderr
        assert big.stdout.split() == [hashlib.sha256(blob.encode()).hexdigest(), "-", "0"]
        assert conn.run("set -e\nfalse\necho not reached\n").status == 1
        unprivileged = conn.run("id -u\nexit 7\n", sudo=False)
        assert (unprivileged.status, unprivileged.stdout.strip()) == (7, "500")


def test_a_wrong_host_key_is_refused(sim: Sim) -> None:
    site = sim.site
    hub, edge = site.endpoint("hub-01")[0], "edge-01"
    wrong = sim.base / "wrong_known_hosts"
    edge_key = sim.renders[edge].state.file("/etc/ssh/ssh_host_ed25519_key.pub").content.decode().strip()
    wrong.write_text(f"{hub} {edge_key}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(sim, "hub-01", wrong)
    proc = system_ssh(sim, "hub-01", "true", wrong)
    assert proc.returncode == 255 and "Host key verification failed" in proc.stderr
    empty = sim.base / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(sim, "hub-01", empty)


def test_device_is_flatcar_shaped_and_has_no_python(sim: Sim) -> None:
    client = connect(sim, "edge-01")
    try:
        code, out, _ = run(client, "command -v bash sha256sum stat install mv find sudo systemctl flatcar-reset")
        assert code == 0 and len(out.split()) == 9, out
        code, out, err = run(client, "python3 -c 'print(1)'")
        assert code == 127 and "not found" in err
        code, _, _ = run(client, "ls /usr/bin/python3 /usr/lib/python3")
        assert code != 0
        code, _, err = run(client, "touch /usr/x; sudo -n touch /usr/y")
        assert "Read-only file system" in err
        code, out, _ = run(client, ". /etc/os-release; echo $ID; ps -e -o pid=,comm=")
        lines = out.splitlines()
        assert lines[0] == "flatcar"
        assert lines[1].split() == ["1", "sshd"], "sshd is the device's PID 1; no host process is visible"
        code, out, _ = run(client, "awk 'BEGIN{print 6*7}'; echo x | sha256sum; readlink /usr/share/oem")
        assert out.splitlines()[0] == "42" and out.splitlines()[-1] == "../../oem"
    finally:
        client.close()


def test_ignition_placed_the_rendered_files_with_mode_and_owner(sim: Sim) -> None:
    for device, render in sim.renders.items():
        files = render.state.files
        paths = " ".join(f.path for f in files)
        client = connect(sim, device)
        try:
            code, out, err = run(client, f"sudo -n stat -c '%n %a %U %G' {paths} && sudo -n sha256sum {paths}")
            assert code == 0, err
            lines = out.splitlines()
            stats = {line.split()[0]: line.split()[1:] for line in lines[: len(files)]}
            sums = {line.split()[1]: line.split()[0] for line in lines[len(files) :]}
            for f in files:
                assert stats[f.path] == [f"{f.mode:o}", f.owner, f.group], f"{device}:{f.path}"
                assert sums[f.path] == f.sha256, f"{device}:{f.path}"
            code, out, _ = run(client, "cat /etc/rancher/k3s/config.yaml")
            assert out.encode() == render.state.file("/etc/rancher/k3s/config.yaml").content
            for link in render.ignition["storage"]["links"]:
                assert run(client, f"readlink {link['path']}")[1].strip() == link["target"]
            # The k3s image comes with the first apply (artifacts.delivery: apply): no dangling link before it.
            assert run(client, "test -e /etc/extensions/k3s.raw || test -L /etc/extensions/k3s.raw")[0] == 1
            code, out, _ = run(client, "cat ~/.ssh/authorized_keys.d/ignition /run/umhctl-sim/authorized_keys/core")
            blueprint_keys = load_blueprint(DEMO).blueprint.access.authorized_keys
            operator_key = sim.site.identity.with_suffix(".pub").read_text().strip()
            assert out.splitlines() == [*blueprint_keys, operator_key], "the device's file is the render, untouched"
            # What sshd reads: authorized_keys, generated from authorized_keys.d by update-ssh-keys after Ignition.
            code, out, _ = run(client, "cat ~/.ssh/authorized_keys")
            assert out.splitlines() == ["# auto-generated by update-ssh-keys", *blueprint_keys]
        finally:
            client.close()


def test_status_cli_reports_every_device_answering_and_logging_in(sim: Sim) -> None:
    code, output = invoke("sim", "status", "-f", str(DEMO), "--state-dir", str(sim.state), "-o", "json")
    assert code == 0, output
    report = json.loads(output)
    assert report["format_version"] == "1"
    for entry in report["devices"]:
        assert entry["running"] and entry["answers"] and entry["banner"].startswith("SSH-2.0-OpenSSH")
        assert entry["login"] is True and entry["hostname"] == sim.host_name(entry["device"])
    code, output = invoke("sim", "status", "-f", str(DEMO), "--state-dir", str(sim.state))
    assert code == 0 and "3/3 devices answer" in output


def test_up_again_leaves_running_devices_alone(sim: Sim) -> None:
    before = {name: d.pid for name, d in sim.site.devices.items()}
    code, output = invoke("sim", "up", "-f", str(DEMO), "--state-dir", str(sim.state), "-o", "json")
    assert code == 0, output
    assert {d["action"] for d in json.loads(output)["devices"]} == {"unchanged"}
    assert {name: d.pid for name, d in sim.site.devices.items()} == before


# -- stand-ins ----------------------------------------------------------------------------------------------------


def test_systemctl_stand_in_records_calls_and_answers(sim: Sim) -> None:
    client = connect(sim, "hub-01")
    try:
        assert run(client, "systemctl is-enabled k3s.service")[:2] == (0, "enabled\n"), "Ignition's wants link"
        # k3s.service comes with the k3s system extension: no unit until an image is linked and merged.
        code, _, err = run(client, "sudo -n systemctl restart k3s.service")
        assert code == 5 and "Unit k3s.service not found" in err
        image = "/opt/extensions/k3s/k3s-v1.32.2+k3s1-x86-64.raw"
        done = run(
            client, f"sudo -n mkdir -p /opt/extensions/k3s /etc/extensions && echo stand-in | sudo -n tee {image}"
        )
        assert done[0] == 0, done
        assert run(client, f"sudo -n ln -sfn {image} /etc/extensions/k3s.raw")[0] == 0
        assert run(client, "sudo -n systemctl restart k3s.service")[0] == 5, "linked, but not merged yet"
        assert run(client, "sudo -n systemctl restart systemd-sysext")[0] == 0
        assert run(client, "sudo -n systemctl restart k3s.service")[0] == 0
        assert run(client, "systemctl is-active k3s")[:2] == (0, "active\n")
        assert run(client, "systemctl is-active never.service")[:2] == (3, "inactive\n")
        code, _, err = run(client, "systemctl restart k3s.service")
        assert code == 1 and "Interactive authentication required" in err, "unprivileged like the real one"
        assert run(client, "sudo -n systemctl mask demo.service && systemctl is-enabled demo.service")[1] == "masked\n"
        code, _, err = run(client, "sudo -n systemctl start demo.service")
        assert code == 1 and "masked" in err
        code, _, err = run(client, "systemctl list-timers")
        assert code == 1 and "not simulated" in err
        log = run(client, "cat /var/log/umhctl-sim/systemctl.log")[1]
        assert " uid=0 restart k3s.service" in log and " uid=500 is-active k3s" in log
        assert " uid=0 mask demo.service" in log
    finally:
        client.close()
    # The host side sees the unit state through the control directory.
    assert (sim.site.control("hub-01") / "active" / "k3s.service").exists()


def test_flatcar_reset_stand_in_validates_like_the_real_one(sim: Sim) -> None:
    client = connect(sim, "edge-01")
    try:
        code, _, err = run(client, "flatcar-reset -K /var/log")
        assert code == 1 and "Need to be root" in err
        code, _, err = run(client, "sudo -n flatcar-reset -K var/log")
        assert code == 1 and "Invalid path to keep" in err
        code, _, err = run(client, "sudo -n flatcar-reset -F /a -U http://x")
        assert code == 1 and "both Ignition URL and Ignition file" in err
        code, out, _ = run(
            client,
            "sudo -n flatcar-reset -K /var/log && cat /selective-os-reset && "
            "sudo -n flatcar-reset --stop && ls /selective-os-reset /boot/flatcar/first_boot",
        )
        assert out.splitlines()[-2] == "(/var/log/.*|/var/log|/flatcar-backup|/flatcar-backup/.*|/selective-os-reset)"
        assert code != 0, "--stop removed the staged reset"
    finally:
        client.close()


# -- reboot and reset ---------------------------------------------------------------------------------------------


def _wait_for_boot(sim: Sim, device: str, boots: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = sim.site.devices[device]
        if record.boots > boots and record.status == "running":
            return
        assert record.status != "failed", record.message
        time.sleep(0.05)
    raise AssertionError(f"{device} did not come back within {timeout}s")


def test_plain_reboot_keeps_the_disk(sim: Sim) -> None:
    before = sim.site.devices["hub-01"]
    client = connect(sim, "hub-01")
    run(client, "echo kept > ~/note")
    client.close()
    after = reboot_device(sim.state, "hub-01")
    assert after.boots == before.boots + 1 and after.pid != before.pid
    client = connect(sim, "hub-01")
    try:
        assert run(client, "cat ~/note")[1] == "kept\n"
        assert run(client, "systemctl is-active k3s.service")[1] == "active\n", "enabled units start at boot"
        assert run(client, "systemctl is-active demo.service")[1] == "inactive\n", "nothing else stays active"
    finally:
        client.close()
    assert process_reboots(sim.state) == [], "no request pending"


def test_reboot_command_in_the_device_reboots_it(sim: Sim) -> None:
    boots = sim.site.devices["edge-01"].boots
    client = connect(sim, "edge-01")
    try:
        assert run(client, "sudo -n reboot")[0] == 0
    finally:
        client.close()
    _wait_for_boot(sim, "edge-01", boots)
    assert system_ssh(sim, "edge-01", "hostname").stdout == "edge-01\n"


def test_staged_reset_and_reboot_rebuild_the_device_keeping_its_host_key(sim: Sim) -> None:
    device = "edge-02"
    site = sim.site
    boots = site.devices[device].boots
    # The new config has no host key: the one the device keeps (-K '/etc/ssh/ssh_host_.*') must survive.
    config = json.loads((site.device_dir(device) / "ignition.json").read_text())
    config["storage"]["files"] = [f for f in config["storage"]["files"] if not f["path"].startswith("/etc/ssh/")]
    config["storage"]["files"].append(
        {"path": "/etc/generation", "mode": 420, "overwrite": True, "contents": {"source": "data:,2%0A"}}
    )
    client = connect(sim, device)
    try:
        host_key = run(client, "sudo -n sha256sum /etc/ssh/ssh_host_ed25519_key")[1].split()[0]
        machine_id = run(client, "cat /etc/machine-id")[1]
        sftp = client.open_sftp()
        with sftp.open("/tmp/new.ign", "w") as handle:
            handle.write(json.dumps(config))
        sftp.close()
        code, out, err = run(
            client,
            "touch ~/junk && sudo -n touch /var/lib/junk /etc/junk && "
            "sudo -n flatcar-reset -M -F /tmp/new.ign -K '/etc/ssh/ssh_host_.*' /var/log",
        )
        assert code == 0 and "Staged OS reset" in out, err
        run(client, "sudo -n systemctl reboot")
    finally:
        client.close()
    _wait_for_boot(sim, device, boots)  # the site's watcher noticed the request
    client = connect(sim, device)  # strict host-key check: the same key is presented again
    try:
        assert run(client, "sudo -n sha256sum /etc/ssh/ssh_host_ed25519_key")[1].split()[0] == host_key
        assert run(client, "cat /etc/generation")[1] == "2\n", "Ignition ran again with /oem/config.ign"
        code, _, _ = run(client, "ls ~/junk /var/lib/junk /etc/junk /tmp/new.ign")
        assert code != 0, "what the keep-list does not match is gone"
        assert run(client, "cat /etc/machine-id")[1] == machine_id, "-M kept the machine id"
        log = run(client, "cat /var/log/umhctl-sim/systemctl.log")[1]
        assert " uid=0 reboot" in log, "/var/log was kept"
        code, _, _ = run(client, "ls /selective-os-reset /boot/flatcar/first_boot")
        assert code != 0, "the reset is done: no flag is left"
        assert run(client, "test -f /oem/config.ign && echo yes")[1] == "yes\n", "the OEM partition is not wiped"
        assert run(client, "hostname")[1] == "edge-02\n"
    finally:
        client.close()


def test_powered_off_device_is_started_again_by_up_with_its_disk(sim: Sim) -> None:
    off = reboot_device(sim.state, "hub-01", power_off=True)
    assert off.status == "stopped" and off.pid is None
    assert (sim.site.endpoint("hub-01"), 22)[0] not in listeners()
    code, output = invoke("sim", "up", "-f", str(DEMO), "--state-dir", str(sim.state), "-o", "json")
    assert code == 0, output
    actions = {d["device"]: d["action"] for d in json.loads(output)["devices"]}
    assert actions == {"hub-01": "started", "edge-01": "unchanged", "edge-02": "unchanged"}
    client = connect(sim, "hub-01")
    try:
        assert run(client, "cat ~/note")[1] == "kept\n", "powered on again, not re-provisioned"
    finally:
        client.close()


def test_up_with_device_starts_only_the_devices_named(sim: Sim) -> None:
    """A part of a large site: the others keep their addresses and stay as they are."""
    addresses = {name: d.address for name, d in sim.site.devices.items()}
    reboot_device(sim.state, "hub-01", power_off=True)
    code, output = invoke(
        "sim", "up", "-f", str(DEMO), "--state-dir", str(sim.state), "--device", "edge-02", "-o", "json"
    )
    assert code == 0, output
    actions = {d["device"]: d["action"] for d in json.loads(output)["devices"]}
    assert actions == {
        "hub-01": "not started (not named with --device)",
        "edge-01": "unchanged",
        "edge-02": "unchanged",
    }
    assert not sim.site.running("hub-01")
    code, output = invoke("sim", "up", "-f", str(DEMO), "--state-dir", str(sim.state), "--device", "hub-9")
    assert code == 1 and "no device 'hub-9' in the blueprint" in output and not sim.site.running("hub-01")
    code, output = invoke(
        "sim", "up", "-f", str(DEMO), "--state-dir", str(sim.state), "--device", "hub-01", "-o", "json"
    )
    assert code == 0, output
    assert {d["device"]: d["action"] for d in json.loads(output)["devices"]}["hub-01"] == "started"
    assert {name: d.address for name, d in sim.site.devices.items()} == addresses


def test_failed_first_boot_is_reported_and_up_reprovisions(sim: Sim) -> None:
    root = sim.site.root("edge-01")
    (root / "oem/config.ign").write_text('{"ignition": {"version": "9.9.9"}}')
    (root / "boot/flatcar/first_boot").touch()
    (root / "selective-os-reset").write_text("(/etc/ssh/ssh_host_.*)\n")
    failed = reboot_device(sim.state, "edge-01")
    assert failed.status == "failed" and "Ignition" in (failed.message or ""), failed
    code, output = invoke("sim", "status", "-f", str(DEMO), "--state-dir", str(sim.state), "--no-login")
    assert code == 1 and "2/3 devices answer" in output
    (root / "oem/config.ign").unlink()  # what a user would fix; `sim up` then runs first boot from the render
    code, output = invoke("sim", "up", "-f", str(DEMO), "--state-dir", str(sim.state))
    assert code == 0, output
    proc = system_ssh(sim, "edge-01", "cat /etc/hostname")
    assert proc.stdout == "edge-01\n", proc.stderr


# -- down ---------------------------------------------------------------------------------------------------------


def test_down_leaves_no_process_and_no_mount(sim: Sim) -> None:
    site = sim.site
    pids = [d.pid for d in site.devices.values() if d.pid] + [site.watcher_pid]
    addresses = set(site.endpoints().values())
    code, output = invoke("sim", "down", "-f", str(DEMO), "--state-dir", str(sim.state))
    assert code == 0 and "removed 3 simulated devices" in output
    assert sweep_check(sim.state) == ([], [])
    state = str(sim.state)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert state not in cmdline, f"process {entry} is left: {cmdline}"
    assert state not in Path("/proc/self/mountinfo").read_text()
    assert not any(process.alive(pid) for pid in pids if pid)
    assert not addresses & listeners()
    assert sorted(p.name for p in sim.state.iterdir()) == [".lock", "id_ed25519", "id_ed25519.pub"]
    code, output = invoke("sim", "status", "-f", str(DEMO), "--state-dir", str(sim.state))
    assert code == 1 and "no simulated site" in output


# -- errors and helpers (no devices needed) -----------------------------------------------------------------------


def test_only_loopback_addresses_are_accepted(tmp_path: Path) -> None:
    assert str(assert_loopback("127.1.2.3")) == "127.1.2.3"
    for bad in ("192.0.2.10", "10.0.0.1", "::1", "localhost", "128.0.0.1"):
        with pytest.raises(UmhctlError):
            assert_loopback(bad)
    (tmp_path / "site.json").write_text(
        json.dumps({"site": "x", "devices": {"a": {"name": "a", "hostname": "a", "address": "192.0.2.10"}}})
    )
    with pytest.raises(UmhctlError, match="only connects to loopback"):
        SimSite.load(tmp_path)


def test_taken_address_is_a_clean_error_and_starts_nothing(tmp_path: Path) -> None:
    address = f"127.78.{os.getpid() % 250 + 1}.11"
    with socket.socket() as blocker:
        blocker.bind((address, 22))
        blocker.listen()
        code, output = invoke(
            "sim", "up", "-f", str(DEMO), "--state-dir", str(tmp_path / "state"), "--base-address", address[:-2] + "10"
        )
    assert code == 1
    assert "addresses of the simulated site are taken" in output and f"edge-01 ({address}:22)" in output
    assert "hint:" in output
    assert not (tmp_path / "state" / "site.json").exists()
    assert process.processes_under(tmp_path) == []


def test_not_root_is_a_clean_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, output = invoke("sim", "up", "-f", str(DEMO), "--state-dir", str(tmp_path))
    assert code == 1 and "umhctl sim needs root" in output


@pytest.mark.parametrize(
    ("attribute", "package"), [("IGNITION", "ignition"), ("SSHD", "openssh-server"), ("SUDO", "sudo")]
)
def test_missing_binary_names_its_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, attribute: str, package: str
) -> None:
    monkeypatch.setattr(sim_site, attribute, tmp_path / "missing")
    code, output = invoke("sim", "up", "-f", str(DEMO), "--state-dir", str(tmp_path / "state"))
    assert code == 1 and f"apt-get install {package}" in output


def test_missing_unshare_names_util_linux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "unshare" else real_which(name))
    code, output = invoke("sim", "up", "-f", str(DEMO), "--state-dir", str(tmp_path / "state"))
    assert code == 1 and "unshare is missing" in output and "apt-get install util-linux" in output


def test_a_zombie_counts_as_gone() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert os.kill(child.pid, 0) is None, "kill -0 still succeeds on a zombie"
    assert not process.alive(child.pid)
    child.wait()
