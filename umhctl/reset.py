"""`umhctl reset device NAME`: rebuild one device from the blueprint, as one guarded list of phases.

A device that answers is reset in place: lock, optionally back up its data paths, stage `flatcar-reset` with
the freshly rendered Ignition config and a keep-list (the SSH host keys always), reboot, wait until it answers
again with the same host key, apply the blueprint and verify. A dead or replaced device gets install media
(`--media DIR`); `--wait` then finishes the job once it is up. Every phase is timed for the summary.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from umhctl.blueprint.loader import LoadedBlueprint
from umhctl.converge import (
    Applier,
    ContentCache,
    DeviceRun,
    close_connection,
    has_restarts,
    has_writes,
    make_device_plan,
    open_connection,
    read_facts,
)
from umhctl.device.facts import STATE_DIR
from umhctl.device.ssh import HostKeyMismatch, connect
from umhctl.errors import UmhctlError
from umhctl.fleet import Outcome, Phase, run_fleet
from umhctl.gitinfo import commit_file
from umhctl.knownhosts import host_pattern, set_host_key

HOST_KEYS = "/etc/ssh/ssh_host_.*"
# Written before the reboot and not kept: finding it gone proves the reset really happened.
PENDING = f"{STATE_DIR}/reset-pending"
# A failure in one of these phases leaves the device as it was (nothing staged or rebooted yet).
BEFORE_REBOOT = ("connecting", "locking", "backing up data", "staging the reset")
BACKUP_STALL_SECONDS = 120.0  # no byte of the backup for this long: the device or the link is stuck
q = shlex.quote


@dataclass
class ResetRun(DeviceRun):
    ignition: str = ""  # the rendered Ignition config (JSON text) the device is rebuilt from
    keep: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    backup: Path | None = None
    wait_only: bool = False
    timeout: float = 600.0
    hostname: str = ""
    trust_new_key: Callable[[], None] | None = None  # --rotate-host-key: switch known_hosts after the reboot
    old_key_fingerprint: str | None = None  # with a rotation, the old system still answers with this key


def dependent_edges(loaded: LoadedBlueprint, device: str) -> list[str]:
    return [d.name for d in loaded.blueprint.devices if d.role == "edge" and d.hub == device]


def _backup(run: ResetRun) -> None:
    assert run.conn is not None and run.backup is not None
    run.backup.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = run.backup / f"{run.device}-{stamp}.tar.gz"
    # The archive streams to stdout over SSH: nothing is written on the device's (maybe full) disk.
    listing = " ".join(q(p.lstrip("/")) for p in run.data)
    script = f'cd / && for p in {listing}; do [ -e "$p" ] && printf \'%s\\0\' "$p"; done | tar -czf - --null -T -\n'
    import paramiko

    transport = run.conn.client.get_transport()
    assert transport is not None
    try:
        channel = transport.open_session()
        channel.settimeout(BACKUP_STALL_SECONDS)
        try:
            channel.exec_command("sudo -n bash -s")
            channel.sendall(script.encode())
            channel.shutdown_write()
            # The archive holds the site's data: readable by the operator only.
            with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                while chunk := channel.recv(1 << 16):
                    out.write(chunk)
            status = channel.recv_exit_status()
        finally:
            channel.close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        target.unlink(missing_ok=True)
        raise UmhctlError(
            f"backing up {', '.join(run.data)} failed: {exc or type(exc).__name__}; nothing was reset"
        ) from None
    if status != 0:
        target.unlink(missing_ok=True)
        raise UmhctlError(f"backing up {', '.join(run.data)} failed (exit {status}); nothing was reset")
    run.notes.append(f"backup: {target} ({target.stat().st_size} bytes)")


def _stage(run: ResetRun) -> None:
    assert run.conn is not None
    keep = [HOST_KEYS, *run.keep]
    config = base64.b64encode(run.ignition.encode()).decode()
    script = f"""set -euo pipefail
tmp=$(mktemp /var/tmp/umhctl-reset.XXXXXX)
trap 'rm -f "$tmp"' EXIT
chmod 0600 "$tmp"
printf '%s' {q(config)} | base64 -d > "$tmp"
flatcar-reset --keep-machine-id --ignition-file "$tmp" --keep-paths {" ".join(q(k) for k in keep)}
mkdir -p {STATE_DIR}
date +%s > {PENDING}
echo STAGED
"""
    result = run.conn.run(script)
    if result.status != 0 or "STAGED" not in result.stdout:
        raise UmhctlError(
            f"staging the reset failed (exit {result.status}): {result.stderr.strip()[-300:]}; "
            "nothing was reset, the device runs as before"
        )
    run.notes.append("kept " + ", ".join(keep))


def _reboot(run: ResetRun) -> None:
    assert run.conn is not None
    # The connection may die with the reboot (then there is no answer); an answer must be a success.
    try:
        result = run.conn.run("systemctl reboot\n", timeout=15)
    except UmhctlError:
        result = None
    # -1: paramiko's "the channel closed without an exit status": the reboot took the connection down.
    if result is not None and result.status not in (0, -1):
        raise UmhctlError(
            f"the device refused to reboot (exit {result.status}): {result.stderr.strip()[-200:]}; the reset is "
            f"staged and happens at its next reboot"
        )
    close_connection(run)
    run.locked = False  # the lock lives on the disk that is being wiped


def _trust(run: ResetRun) -> None:
    assert run.trust_new_key is not None
    run.trust_new_key()
    run.notes.append("known_hosts now expects the new host key")


def trust_host_key(loaded: LoadedBlueprint, device: str, public_key: str, *, sim: bool) -> None:
    """Point the site's known_hosts (and the simulated site's) at a device's new host key; commit the change."""
    bp = loaded.blueprint
    spec = bp.device(device)
    site_known_hosts = loaded.path.parent / bp.access.known_hosts_file
    set_host_key(site_known_hosts, host_pattern(str(spec.address), spec.ssh_port), public_key)
    commit_file(site_known_hosts, f"Rotate the SSH host key of {device}")
    if sim:
        from umhctl.sim.state import SimSite

        site = SimSite.load(loaded)
        set_host_key(site.known_hosts, host_pattern(*site.endpoint(device)), public_key)


def _wait(run: ResetRun) -> None:
    """Until the device answers with its expected host key and the reset is done (the marker is gone)."""
    deadline = time.monotonic() + run.timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            conn = connect(run.target.endpoint, timeout=5)
        except HostKeyMismatch as exc:
            if exc.presented != run.old_key_fingerprint:
                raise  # a key that is neither the new nor the old one is never waited out
            last = "still the old system (old host key): the reboot has not happened yet"
            time.sleep(1)
            continue
        except UmhctlError as exc:
            last = str(exc).removeprefix(f"{run.device}: ")
            time.sleep(1)
            continue
        try:
            answer = conn.run(f"test -e {PENDING} && echo PENDING || echo RESET\n").stdout
        except UmhctlError as exc:  # it answered, then went down: the reboot is just starting
            answer, last = "", str(exc).removeprefix(f"{run.device}: ")
        if answer.startswith("RESET"):
            run.conn = conn
            return
        conn.close()
        if answer.startswith("PENDING"):
            last = "still the old system: the reboot has not happened yet"
        time.sleep(1)
    raise UmhctlError(
        f"{run.device} did not come back within {run.timeout:.0f} s after the reset reboot ({last}). "
        "The reset is staged or under way; the device may still be reinstalling",
        hint=f"once it is up, finish with: umhctl reset device {run.device} --wait",
    )


def _verify_identity(run: ResetRun) -> None:
    assert run.conn is not None
    hostname = run.conn.run("hostname\n", sudo=False).stdout.strip()
    if hostname != run.hostname:
        raise UmhctlError(f"the device answers as '{hostname}', not '{run.hostname}'")


def reset_phases(applier: Applier, cache: ContentCache) -> list[Phase[ResetRun]]:
    def not_waiting(run: ResetRun) -> bool:
        return not run.wait_only

    def plan(run: ResetRun) -> None:
        read_facts(run)
        run.plan = make_device_plan(run, cache)

    return [
        Phase("connecting", open_connection, should_run=not_waiting),
        Phase("locking", applier.lock, should_run=not_waiting),
        Phase("backing up data", _backup, should_run=lambda run: run.backup is not None and not run.wait_only),
        Phase("staging the reset", _stage, should_run=not_waiting),
        Phase("rebooting", _reboot, should_run=not_waiting),
        Phase("trusting the new host key", _trust, should_run=lambda run: run.trust_new_key is not None),
        Phase("waiting for the device", _wait),
        Phase("checking its identity", _verify_identity),
        Phase("locking", applier.lock),
        Phase("planning", plan),
        Phase("applying the blueprint", applier.apply, should_run=has_writes),
        Phase("restarting units", applier.restart, should_run=has_restarts),
        Phase("verifying", applier.verify),
        Phase("unlocking", applier.unlock, cleanup=True),
        Phase("disconnecting", close_connection, cleanup=True),
    ]


def run_reset(run: ResetRun, applier: Applier, cache: ContentCache, console: Console) -> Outcome:
    (outcome,) = run_fleet([run], reset_phases(applier, cache), parallel=1, console=console)
    outcome.notes += run.notes
    return outcome


def write_media(loaded: LoadedBlueprint, device: str, ignition: str, media: Path) -> Path:
    """What a technician needs to install a replaced device: its Ignition config, the exact install command,
    and a printable instruction sheet."""
    bp = loaded.blueprint
    spec = bp.device(device)
    flatcar = bp.versions.flatcar
    target = media / device
    target.mkdir(parents=True, exist_ok=True)
    config = target / "ignition.json"
    config.touch(mode=0o600)
    config.chmod(0o600)  # it carries the device's host key and tokens
    config.write_text(ignition)
    command = f"sudo flatcar-install -d {spec.install_disk} -C {flatcar.channel} -V {flatcar.version} -i ignition.json"
    (target / "install-command.txt").write_text(command + "\n")
    sheet = f"""Rebuild of {device} ({bp.metadata.name}) — instruction sheet
{"=" * 60}

Device:        {device} ({spec.role}{f", hub {spec.hub}" if spec.hub else ""})
Address:       {spec.address} (SSH port {spec.ssh_port})
Install disk:  {spec.install_disk}   <- everything on this disk is erased
Flatcar:       {flatcar.version} ({flatcar.channel} channel)

1. Boot the replacement machine from a Flatcar live USB stick (any recent {flatcar.channel} release).
2. Copy ignition.json from this folder onto it (second USB stick, or scp to the live system).
3. In the folder with ignition.json, run exactly:

     {command}

4. Remove the USB stick and reboot. The device configures itself on first boot; connect it to the
   network at {spec.address}.
5. At the engineering PC, run:

     umhctl reset device {device} --wait

   umhctl waits for the device, checks it presents its known SSH host key, applies the blueprint
   and verifies it. Nothing else is needed.

ignition.json holds this device's SSH host key and secrets: keep it private, delete it afterwards.
"""
    (target / "INSTRUCTIONS.txt").write_text(sheet)
    return target


def validate_ignition(path: Path) -> str | None:
    """Problems ignition-validate reports for the media's config (None when clean or not installed)."""
    try:
        proc = subprocess.run(["ignition-validate", str(path)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return None
    if proc.returncode != 0 or proc.stdout.strip() or proc.stderr.strip():
        return (proc.stdout + proc.stderr).strip() or f"exit {proc.returncode}"
    return None
