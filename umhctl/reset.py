"""`umhctl reset device NAME`: rebuild one device from the blueprint, as one guarded list of phases.

A device that answers is reset in place: lock, optionally back up its data paths, stage `flatcar-reset` with
the freshly rendered Ignition config and a keep-list (the SSH host keys always) — the point of no return —,
reboot, wait until it answers again with its expected host key, then the same phases apply runs (lock, plan,
write, restart, verify). A dead or replaced device gets install media (`--media DIR`); `--wait` then finishes the
job once it is up. Every phase is timed for the summary.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from umhctl.artifacts import EXTENSIONS_DIR
from umhctl.blueprint.loader import LoadedBlueprint
from umhctl.converge import DeviceRun, Phases, disconnect
from umhctl.errors import UmhctlError
from umhctl.gitinfo import commit_file
from umhctl.hints import Hints
from umhctl.inventory import Inventory
from umhctl.knownhosts import host_pattern, set_host_key, site_known_hosts
from umhctl.phases import Outcome, Phase, Reporter, run_fleet
from umhctl.remote import scripts
from umhctl.remote.gate import Remote
from umhctl.remote.ssh import HostKeyMismatch

BACKUP_STALL_SECONDS = 120.0  # no byte of the backup for this long: the device or the link is stuck


@dataclass
class ResetRun(DeviceRun):
    ignition: str = ""  # the rendered Ignition config (JSON text) the device is rebuilt from
    keep: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    backup: Path | None = None
    wait_only: bool = False
    timeout: float = 600.0
    hostname: str = ""
    trust_new_key: Callable[[], None] | None = None  # --rotate-host-key: switch known_hosts once staged
    old_key_fingerprint: str | None = None  # with a rotation, the old system still answers with this key
    # Images the rebuilt system links at first boot (path, sha256): kept across the reset, so they must be there.
    boot_images: list[tuple[str, str]] = field(default_factory=list)


def dependent_edges(loaded: LoadedBlueprint, device: str) -> list[str]:
    return [d.name for d in loaded.blueprint.devices if d.role == "edge" and d.hub == device]


def _not_waiting(run: ResetRun) -> bool:
    return not run.wait_only


def _backup(run: ResetRun) -> None:
    assert run.remote is not None and run.backup is not None
    run.backup.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = run.backup / f"{run.device}-{stamp}.tar.gz"
    try:
        size = run.remote.backup(run.data, target, stall=BACKUP_STALL_SECONDS)
    except UmhctlError as exc:
        raise UmhctlError(f"{exc}; nothing was reset") from None
    run.notes.append(f"backup: {target} ({size} bytes)")


def _check_images(run: ResetRun) -> None:
    """Before the point of no return: the images the rebuilt system links at first boot (the tailnet's: without
    it the device could not enroll again, and nothing could reach it through the tailnet) are on the device."""
    assert run.remote is not None
    facts = run.remote.probe([path for path, _ in run.boot_images], [])
    missing = [path for path, sha256 in run.boot_images if facts.path(path).sha256 != sha256]
    if missing:
        raise UmhctlError(
            f"{', '.join(missing)} is not on the device (or not the pinned image): the rebuilt system links it at "
            "first boot to enroll in the tailnet again; nothing was changed",
            hint="apply first, so that the device holds the image, then reset it",
        )


def _stage(run: ResetRun) -> None:
    assert run.remote is not None
    # The host keys (the device keeps its identity) and the extension images (a rebuild needs no download).
    keep = [scripts.HOST_KEYS_KEEP, EXTENSIONS_DIR, *run.keep]
    run.remote.stage_reset(run.ignition, keep)
    run.notes.append("kept " + ", ".join(keep))


def _trust(run: ResetRun) -> None:
    # Right after staging: from here on the device's next system presents the new key; the wait tells the old
    # key (the reboot has not happened yet) from any other (refused).
    assert run.trust_new_key is not None
    run.trust_new_key()
    run.notes.append("known_hosts now expects the new host key")


def _reboot(run: ResetRun) -> None:
    assert run.remote is not None
    run.remote.reboot()
    disconnect(run)
    run.locked = False  # the lock lived on the root filesystem that the reset wipes


def _wait(run: ResetRun) -> None:
    """Until the device answers with its expected host key and the reset is done (the marker is gone)."""
    deadline = time.monotonic() + run.timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            remote = Remote.connect(run.target.endpoint, timeout=5)
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
            hostname = remote.reset_state()
        except UmhctlError as exc:  # it answered, then went down: the reboot is just starting
            hostname, last = None, str(exc).removeprefix(f"{run.device}: ")
        else:
            if hostname is None:
                last = "still the old system: the reboot has not happened yet"
        if hostname is not None:
            if hostname != run.hostname:
                remote.close()
                raise UmhctlError(f"the device answers as '{hostname}', not '{run.hostname}'")
            run.remote = remote
            return
        remote.close()
        time.sleep(1)
    raise UmhctlError(f"{run.device} did not come back within {run.timeout:.0f} s after the reset reboot ({last})")


class ResetPhases:
    """Reset's own phases, followed by the apply phases of `converge` (the same instances)."""

    def __init__(self, converge: Phases) -> None:
        self.converge = converge
        self.connect = Phase("connect", "connecting", converge._connect, should_run=_not_waiting)
        self.lock = Phase("lock-before-reset", "locking", converge.lock_only, should_run=_not_waiting)
        self.images = Phase(
            "check-images",
            "checking kept images",
            _check_images,
            should_run=lambda run: bool(run.boot_images) and not run.wait_only,
        )
        self.backup = Phase(
            "backup", "backing up data", _backup, should_run=lambda run: run.backup is not None and not run.wait_only
        )
        self.stage = Phase(
            "stage", "staging the reset", _stage, should_run=_not_waiting, changes_device=True, point_of_no_return=True
        )
        self.trust = Phase(
            "trust-key",
            "trusting the new host key",
            _trust,
            should_run=lambda run: run.trust_new_key is not None,
        )
        self.reboot = Phase("reboot", "rebooting", _reboot, should_run=_not_waiting, changes_device=True)
        self.wait = Phase("wait", "waiting for the device", _wait)

    def phases(self) -> list[Phase[ResetRun]]:
        own: list[Phase[ResetRun]] = [
            self.connect,
            self.lock,
            self.images,
            self.backup,
            self.stage,
            self.trust,
            self.reboot,
            self.wait,
        ]
        return own + list(self.converge.converge_phases())  # type: ignore[arg-type]


def run_reset(run: ResetRun, phases: ResetPhases, reporter: Reporter | None) -> Outcome:
    (outcome,) = run_fleet([run], phases.phases(), parallel=1, reporter=reporter, activity="reset")
    outcome.notes += run.notes
    return outcome


def failure_hint(outcome: Outcome, device: str, hints: Hints, *, wait_only: bool) -> str:
    """What state a failed reset left the device in, and the command that finishes the job."""
    finish = hints.command("reset", "device", device, "--wait")
    if wait_only or outcome.past_no_return:
        if outcome.failed_phase == "reboot":
            return f"the reset is staged and happens at the device's next reboot; after it, finish with: {finish}"
        return f"the device is being rebuilt (or was); once it answers, finish with: {finish}"
    return "nothing was changed on the device: fix the problem and run the same command again"


def trust_host_key(
    loaded: LoadedBlueprint, device: str, public_key: str, inventory: Inventory, key_files: tuple[Path, ...] = ()
) -> None:
    """Point the site's known_hosts (and the inventory's, when it has its own) at a device's new host key, and
    commit the site's known_hosts, with the key's files when the site keeps its secrets in git (`key_files`)."""
    spec = loaded.blueprint.device(device)
    site = site_known_hosts(loaded)
    set_host_key(site, host_pattern(str(spec.address), spec.ssh_port), public_key)
    commit_file(site, f"Rotate the SSH host key of {device}", key_files)
    if inventory.known_hosts.resolve() != site.resolve():
        set_host_key(inventory.known_hosts, inventory.host(device), public_key)


def write_media(loaded: LoadedBlueprint, device: str, ignition: str, media: Path, hints: Hints) -> Path:
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
5. At the engineering PC, in the site repository, run:

     {hints.command("reset", "device", device, "--wait")}

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
