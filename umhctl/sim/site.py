"""A simulated site: bring every blueprint device up as a real sshd in a root the real Ignition provisioned,
take it down, reboot devices (applying staged flatcar-resets), report status.

Sim-only deviations from a real device: there is no internet (Ignition fetches only from 127.0.0.0/8, where the
site's stand-in publisher serves stand-in images), and the device's sshd also accepts the sim operator's key
(generated in the state dir; the blueprint's keys have no private halves here) from
/run/umhctl-sim/authorized_keys/<user>, a file outside the device's disk. So the device's own files, the
authorized_keys files included, are exactly what Ignition and apply put there, and plan/apply see no sim-made
drift.

Reboots: `systemctl reboot` (or `reboot`) inside a device writes /run/umhctl-sim/reboot-request, which is
devices/<name>/control/reboot-request on the host. `process_reboots(state_dir)` handles pending requests;
the watcher `sim up` starts (`python -m umhctl.sim.watch STATE_DIR`) calls it a few times a second, so a
device reboots by itself as a real one would. `reboot_device()` does the same on demand.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from umhctl.blueprint.loader import LoadedBlueprint
from umhctl.errors import UmhctlError
from umhctl.fsutil import write_atomic
from umhctl.render.system import HOST_KEY
from umhctl.results import LockResult
from umhctl.sim import layer as sim_layer
from umhctl.sim import process, publisher, reset
from umhctl.sim.net import address_taken, allocate, assert_loopback, is_listening, site_base_address
from umhctl.sim.provision import (
    IGNITION,
    SYSEXT_UNITS,
    apply_presets,
    ensure_groups,
    make_base_root,
    merge_ssh_keys,
    new_machine_id,
    run_ignition,
    sysext_merge,
)
from umhctl.sim.state import (
    SimDevice,
    SimSite,
    default_state_dir,
    locked,
    register,
    resolve_state_dir,
    unregister,
)

__all__ = [
    "DeviceResult",
    "DeviceStatus",
    "SimDevice",
    "SimSite",
    "assert_loopback",
    "default_state_dir",
    "down",
    "preflight",
    "process_reboots",
    "reboot_device",
    "status",
    "up",
]

SSHD = Path("/usr/sbin/sshd")
SUDO = Path("/usr/bin/sudo")
START_TIMEOUT = 10.0
WORKERS = 4  # Ignition and sshd start are short subprocesses: a few in parallel fill 2 cores


@dataclass(frozen=True)
class DeviceResult:
    device: str
    address: str
    port: int
    status: str  # running | stopped | failed
    action: str  # started | unchanged | failed | stopped | ...
    message: str | None = None


def preflight() -> None:
    """Everything a simulated site needs from the host, with the Debian package that provides it."""
    if os.geteuid() != 0:
        raise UmhctlError(
            "umhctl sim needs root: devices are chroots in their own mount and pid namespaces",
            hint="run it as root (sudo umhctl sim ...)",
        )
    needed = [
        (IGNITION, "ignition"),
        (SSHD, "openssh-server"),
        (SUDO, "sudo"),  # a device's core user has passwordless sudo, as on Flatcar
    ]
    for path, package in needed:
        if not path.exists():
            raise UmhctlError(f"{path} is missing: simulated devices need it", hint=f"apt-get install {package}")
    for tool, package in [("unshare", "util-linux"), ("ssh-keygen", "openssh-client"), ("chroot", "coreutils")]:
        if shutil.which(tool) is None:
            raise UmhctlError(f"{tool} is missing: simulated devices need it", hint=f"apt-get install {package}")
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise UmhctlError(
            "the kernel has no overlayfs: a simulated device's /usr is a read-only overlay", hint="modprobe overlay"
        )


# -- up ---------------------------------------------------------------------------------------------------------


def up(
    blueprint: Path,
    *,
    state_dir: Path | None = None,
    base_address: str | None = None,
    port: int = 22,
    devices: Sequence[str] | None = None,
    workers: int = WORKERS,
    progress: Callable[[str, str], None] | None = None,
) -> tuple[SimSite, list[DeviceResult]]:
    """Render the blueprint and bring every device up (or those named in `devices`: a part of a large site);
    running devices are left alone, stopped ones start. Every device of the blueprint gets its address either way,
    so that a device started later keeps the one it would have had. `progress(device, what)` hears of each device
    as it comes up."""
    say = progress or (lambda device, what: None)
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.render import chosen_devices, render_site
    from umhctl.secrets import SecretStore

    preflight()
    loaded = load_blueprint(blueprint)
    bp = loaded.blueprint
    wanted = {d.name for d in chosen_devices(bp, devices)}
    state_dir = (state_dir or resolve_state_dir(loaded)).absolute()
    for bad in (":", ","):  # overlayfs' lowerdir= cannot carry them
        if bad in str(state_dir):
            raise UmhctlError(f"the state dir {state_dir} contains '{bad}'", hint="choose another --state-dir")
    if base_address is not None:
        assert_loopback(base_address)
    store = SecretStore.for_blueprint(bp, loaded.path.parent)

    _refuse_foreign_dir(state_dir)
    with locked(state_dir):
        site = _load_or_new(state_dir, bp.metadata.name)
        if site.site != bp.metadata.name:
            raise UmhctlError(f"{state_dir} holds the simulated site '{site.site}', not '{bp.metadata.name}'")
        other = site.blueprint
        if other and Path(other) != loaded.path and any(site.running(n) for n in site.devices):
            # Same site name from another checkout: re-pointing the running site would serve the other's devices
            # from this blueprint's renders.
            raise UmhctlError(
                f"the simulated site '{site.site}' in {state_dir} was started from {other}, and it runs",
                hint=f"stop it first (umhctl sim down -f {other}), or give this checkout its own site: "
                f"umhctl sim up -f {blueprint} --state-dir DIR",
            )
        site.user = bp.access.user
        site.blueprint = str(loaded.path)
        site.base_address = base_address or site.base_address or str(site_base_address(site.site))
        new = [d for d in bp.devices if d.name not in site.devices]
        addresses = allocate(IPv4Address(site.base_address), len(new), {d.address for d in site.devices.values()})
        for bp_device, address in zip(new, addresses, strict=True):
            site.devices[bp_device.name] = SimDevice(bp_device.name, bp_device.host_name, address, port)
        bp_names = {d.name for d in bp.devices}
        todo = [name for name in site.devices if name in wanted and not site.running(name)]
        _check_addresses(site, todo)
        # The watcher serves the stand-in artifact publisher: it runs before devices are provisioned, because a
        # first boot may fetch from it (artifacts.delivery: ignition).
        site.save()
        if not site.watcher_running():
            site.watcher_pid = _start_watcher(site)
            site.save()
        lock_standins(loaded, site)
        source = site.artifact_source()

        renders = {r.device: r for r in render_site(loaded, store, source, devices=todo)} if todo else {}
        operator_key = site.ensure_identity()
        layer = sim_layer.build_layer(site.layers_dir)

        def bring_up(name: str) -> DeviceResult:
            device = site.devices[name]
            try:
                if _needs_provisioning(site, name):
                    say(name, "provisioning with Ignition")
                    _provision(site, name, renders[name].ignition, layer)
                _start(site, name, layer, operator_key)
                say(name, f"running, sshd on {device.address}:{device.port}")
                return _result(device, "started")
            except UmhctlError as exc:
                device.status, device.message = "failed", str(exc)
                say(name, "failed")
                return _result(device, "failed")
            except Exception as exc:  # recorded, not raised: the other devices of the pool are running by now
                device.status, device.message = "failed", f"internal error: {type(exc).__name__}: {exc}"
                say(name, "failed")
                return _result(device, "failed")

        results = {
            name: _result(site.devices[name], _left(name in bp_names, site.running(name)))
            for name in site.devices
            if name not in todo
        }
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for result in pool.map(bring_up, todo):
                results[result.device] = result
        for name, result in results.items():
            device = site.devices[name]
            if name in bp_names and device.host_key and device.host_key != store.host_key(name).public.strip():
                # Not re-provisioned: it still presents the key it was given; known_hosts says so.
                results[name] = replace(
                    result,
                    message="its host key is not the one the secret store holds now (another UMHCTL_SECRETS_DIR?); "
                    "a reset re-provisions it",
                )
        site.write_known_hosts()
        register(loaded.path, state_dir)
        site.save()
    return site, [results[name] for name in site.devices]


_OWN_ENTRIES = {
    ".lock",
    "id_ed25519",
    "id_ed25519.pub",
    "site.json",
    "known_hosts",
    "watcher.log",
    "devices",
    "layers",
    publisher.DIRECTORY,
    publisher.URL_FILE,
    publisher.LOCK_FILE,
}


def lock_standins(loaded: LoadedBlueprint, site: SimSite, *, timeout: float = START_TIMEOUT) -> LockResult:
    """Publish stand-ins of the artifacts the blueprint needs and pin them in the simulated site's lock, through
    the publisher's HTTP (the same code path `umhctl lock` takes against a real mirror)."""
    from umhctl import api
    from umhctl.artifacts import needed

    deadline = time.monotonic() + timeout
    while (base := publisher.url(site.state_dir)) is None or not is_listening(*_host_port(base)):
        if time.monotonic() > deadline:
            raise UmhctlError(
                f"the simulated site's artifact publisher did not start: see {site.state_dir}/watcher.log"
            )
        time.sleep(0.02)
    for artifact in needed(loaded.blueprint):
        publisher.publish(site.state_dir, artifact)
    return dataclasses.replace(api.lock(loaded.path, artifacts=site.artifact_source()), committed=False)


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    return host, int(port)


def _refuse_foreign_dir(state_dir: Path) -> None:
    """Create the state dir private (it holds host keys and the operator key); never adopt a directory that
    holds anything else: `sim down` removes what is in it."""
    if not state_dir.exists():
        state_dir.mkdir(parents=True, mode=0o700)
        os.chmod(state_dir, 0o700)
        return
    foreign = sorted(entry.name for entry in state_dir.iterdir() if entry.name not in _OWN_ENTRIES)
    if foreign:
        raise UmhctlError(
            f"{state_dir} is not a simulated site's state dir: it holds {', '.join(foreign[:5])}",
            hint="choose an empty or new --state-dir",
        )


def _is_state_dir(state_dir: Path) -> bool:
    return (state_dir / "site.json").exists() or ((state_dir / "devices").is_dir() and (state_dir / "layers").is_dir())


def _load_or_new(state_dir: Path, name: str) -> SimSite:
    try:
        site = SimSite.load(state_dir)
    except UmhctlError:
        if (state_dir / "site.json").exists():
            raise
        return SimSite(state_dir=state_dir, site=name)
    for device in site.devices.values():
        if not site.running(device.name) and device.status == "running":
            device.status, device.pid = "stopped", None
    return site


def _check_addresses(site: SimSite, names: list[str]) -> None:
    taken = []
    for name in names:
        device = site.devices[name]
        reason = address_taken(device.address, device.port)
        if reason:
            taken.append(f"{name} ({device.address}:{device.port}): {reason}")
    if taken:
        raise UmhctlError(
            "addresses of the simulated site are taken:\n  " + "\n  ".join(taken),
            hint="stop what uses them, or choose other ones: umhctl sim up --base-address 127.X.Y.Z / --port N",
        )


def _left(in_blueprint: bool, running: bool) -> str:
    """What `up` did with a device it did not start."""
    if not in_blueprint:
        return "not in the blueprint"
    return "unchanged" if running else "not started (not named with --device)"


def _result(device: SimDevice, action: str) -> DeviceResult:
    return DeviceResult(device.name, device.address, device.port, device.status, action, device.message)


def _needs_provisioning(site: SimSite, name: str) -> bool:
    # A device whose root Ignition completed is only powered on again: its disk keeps what was done to it.
    return not (site.root(name) / "etc/.ignition-result.json").exists()


def _provision(site: SimSite, name: str, config: dict[str, Any], layer: Path) -> None:
    """First boot: a fresh Flatcar-shaped root, then Ignition with the rendered config."""
    device_dir = site.device_dir(name)
    device_dir.mkdir(parents=True, exist_ok=True)
    root = site.root(name)
    if root.exists():
        _remove_tree(root)
    make_base_root(root)
    write_atomic(device_dir / "ignition.json", json.dumps(config, indent=2) + "\n", 0o600)
    _ignite(root, config, layer)
    new_machine_id(root)
    site.devices[name].host_key = host_key_of(config)


def _ignite(root: Path, config: dict[str, Any], layer: Path) -> None:
    """A provisioning boot: Ignition, then what Flatcar runs once after it (presets, update-ssh-keys)."""
    try:
        ensure_groups(root, config)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # A config staged by hand can be any JSON: let Ignition's own error speak for what it can parse.
        raise UmhctlError(f"Ignition config is malformed: {type(exc).__name__}: {exc}") from None
    run_ignition(config, root)
    apply_presets(root)
    merge_ssh_keys(root, layer)


def _start(site: SimSite, name: str, layer: Path, operator_key: str) -> None:
    """Boot the device: its own namespaces, read-only /usr, sshd on its loopback address."""
    device = site.devices[name]
    root = site.root(name)
    assert_loopback(device.address)
    hostname = _hostname(root, device.hostname)
    hosts = root / "etc/hosts"
    if not hosts.exists():  # sudo resolves the host name; Flatcar ships an /etc/hosts with localhost
        hosts.write_text(f"127.0.0.1\tlocalhost\n{device.address}\t{hostname}\n")
    control = site.control(name)
    _boot_control(root, control)
    keys = control / "authorized_keys"
    keys.mkdir(mode=0o755)
    (keys / site.user).write_text(operator_key + "\n")
    device.layer = str(layer)
    pid = process.spawn_device(root, layer, control, device.address, device.port, hostname, site.console(name))
    device.pid, device.status, device.message = pid, "running", None
    deadline = time.monotonic() + START_TIMEOUT
    while not is_listening(device.address, device.port):
        if not process.alive(pid) or time.monotonic() > deadline:
            process.stop([pid])
            device.pid, device.status = None, "failed"
            raise UmhctlError(f"{name}: sshd did not start:\n{_tail(site.console(name))}")
        time.sleep(0.01)
    device.boots += 1


def _hostname(root: Path, fallback: str) -> str:
    try:
        return (root / "etc/hostname").read_text().strip() or fallback
    except OSError:
        return fallback


BOOT_ONESHOTS = "boot-oneshots"  # in the control dir: the device's own oneshot units devinit starts at boot


def _own_oneshot(units: Path, name: str) -> bool:
    unit = units / name
    if not unit.is_file() or unit.is_symlink():
        return False
    return any(line.strip().replace(" ", "") == "Type=oneshot" for line in unit.read_text().splitlines())


def _boot_control(root: Path, control: Path) -> None:
    """A clean /run/umhctl-sim for this boot: no pending request; systemd-sysext merges the extensions whose
    images are there; enabled units are active (systemd starts them) if their unit file exists. The device's own
    oneshot units (the tailnet enroll unit) are not marked: devinit starts them through the systemctl stand-in,
    which runs them as systemd would (conditions, dependencies, Exec lines)."""
    if control.exists():
        shutil.rmtree(control)
    (control / "active").mkdir(parents=True)
    (control / "sysext").mkdir()
    os.chmod(control, 0o755)
    merged = sysext_merge(root, control)
    units = root / "etc/systemd/system"
    oneshots: list[str] = []
    for wants in [*units.glob("*.wants"), *units.glob("*.requires")]:
        for link in wants.iterdir():
            masked = (units / link.name).is_symlink() and os.readlink(units / link.name) == "/dev/null"
            if masked:
                continue
            extension = SYSEXT_UNITS.get(link.name)
            if extension is not None and extension not in merged:
                continue  # its unit file comes with an extension that is not merged: systemd finds no unit
            if _own_oneshot(units, link.name):
                oneshots.append(link.name)
                continue
            (control / "active" / link.name).touch()
    (control / BOOT_ONESHOTS).write_text("".join(f"{name}\n" for name in sorted(set(oneshots))))


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no console log)"


def _start_watcher(site: SimSite) -> int:
    (site.state_dir / publisher.URL_FILE).unlink(missing_ok=True)  # the new watcher writes its own
    # The package's parent goes on PYTHONPATH so the watcher finds umhctl also when it runs from a checkout.
    package_parent = str(Path(__file__).resolve().parent.parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    with open(site.state_dir / "watcher.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", process.WATCHER_MODULE, str(site.state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    return proc.pid


# -- reboot -----------------------------------------------------------------------------------------------------


def process_reboots(state_dir: Path) -> list[str]:
    """Handle every pending reboot/poweroff request of the site's devices; returns the devices handled."""
    state_dir = resolve_state_dir(state_dir)
    with locked(state_dir):
        site = SimSite.load(state_dir)
        handled = []
        for name in site.devices:
            request = site.control(name) / "reboot-request"
            if not request.exists():
                continue
            kind = request.read_text().strip()
            request.unlink()
            _reboot(site, name, power_off=kind == "poweroff")
            handled.append(name)
        if handled:
            site.save()
    return handled


def reboot_device(state_dir: Path, device: str, *, power_off: bool = False) -> SimDevice:
    """Reboot one device now (as `systemctl reboot` in it would); returns its new record."""
    state_dir = resolve_state_dir(state_dir)
    with locked(state_dir):
        site = SimSite.load(state_dir)
        site.endpoint(device)  # a clean error for unknown devices
        _reboot(site, device, power_off=power_off)
        site.save()
        return site.devices[device]


def _reboot(site: SimSite, name: str, *, power_off: bool) -> None:
    """Stop the device; on the way up apply a staged reset and run Ignition if first_boot is flagged."""
    device = site.devices[name]
    _stop(site, name)
    if power_off:
        return
    root = site.root(name)
    try:
        layer = Path(device.layer) if device.layer else sim_layer.build_layer(site.layers_dir)
        if reset.staged_first_boot(root):
            reset.selective_reset(root)
            make_base_root(root, keep_existing=True)
            config = _first_boot_config(site, name)
            _ignite(root, config, layer)
            # A config without a host key leaves the device the one it kept (flatcar-reset -K '/etc/ssh/ssh_host_.*').
            device.host_key = host_key_of(config) or device.host_key
            if not (root / "etc/machine-id").exists():
                new_machine_id(root, reset.kernel_args(root).get("systemd.machine_id"))
            reset.clear_first_boot(root)
        _start(site, name, layer, site.ensure_identity())
    except UmhctlError as exc:
        device.status, device.message, device.pid = "failed", str(exc), None


def _first_boot_config(site: SimSite, name: str) -> dict[str, Any]:
    """What Ignition reads on a first boot: /oem/config.ign, else the platform's user data (the original render)."""
    root = site.root(name)
    oem = root / reset.OEM_CONFIG
    if oem.exists():
        source = oem
    elif "ignition.config.url" in reset.kernel_args(root):
        raise UmhctlError(
            f"{name}: ignition.config.url is set in /oem/grub.cfg; simulated devices are offline and cannot fetch it",
            hint="stage the reset with flatcar-reset -F FILE",
        )
    else:
        source = site.device_dir(name) / "ignition.json"
    try:
        config: dict[str, Any] = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        raise UmhctlError(f"{name}: cannot read the Ignition config {source}: {exc}") from None
    return config


def host_key_of(config: dict[str, Any]) -> str | None:
    """The public host key an Ignition config writes (the source of the sim's known_hosts), if it writes one."""
    for entry in config.get("storage", {}).get("files", []):
        if entry.get("path") == HOST_KEY + ".pub":
            source = entry.get("contents", {}).get("source", "")
            header, _, data = source.partition(",")
            if not header.startswith("data:"):
                return None
            text = base64.b64decode(data).decode() if header.endswith(";base64") else unquote(data)
            return text.strip() or None
    return None


def _stop(site: SimSite, name: str) -> None:
    device = site.devices[name]
    pid = device.pid
    if pid is not None and process.is_device_process(pid, site.root(name)):
        leftover = process.stop([pid, *process.descendants(pid)])
        if leftover:
            raise UmhctlError(f"{name}: processes {leftover} would not stop")
    device.pid, device.status = None, "stopped"


# -- down -------------------------------------------------------------------------------------------------------


def down(state_dir: Path) -> list[str]:
    """Stop and remove every device of the site; no process and no mount is left. Keeps the operator key."""
    state_dir = state_dir.absolute()
    if not state_dir.is_dir() or not _is_state_dir(state_dir):
        return []  # nothing of a simulated site here: sweeping processes "under" an arbitrary dir is not ours to do
    try:
        site: SimSite | None = SimSite.load(state_dir)
    except UmhctlError:
        site = None
    if site is not None and site.watcher_running() and site.watcher_pid is not None:
        process.stop([site.watcher_pid])  # first, so it does not reboot a device while it is being removed
    with locked(state_dir):
        stopped: list[str] = []
        if site is not None:
            for name in site.devices:
                _stop(site, name)
                stopped.append(name)
        stray = process.processes_under(state_dir)
        leftover = process.stop(stray + [d for p in stray for d in process.descendants(p)])
        if leftover:
            raise UmhctlError(f"processes {leftover} of the simulated site would not stop")
        for entry in ("devices", "layers", publisher.DIRECTORY):
            if (state_dir / entry).exists():
                _remove_tree(state_dir / entry)
        for entry in ("site.json", "known_hosts", "watcher.log", publisher.URL_FILE, publisher.LOCK_FILE):
            (state_dir / entry).unlink(missing_ok=True)
        unregister(state_dir)
    return stopped


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory` in this process's mount namespace."""
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def _remove_tree(path: Path) -> None:
    # A device root has /usr as a mount point; were a device's mount visible here, rmtree would walk into it.
    mounted = mounts_under(path)
    if mounted:
        raise UmhctlError(f"refusing to remove {path}: mounted inside: {', '.join(mounted)}")
    shutil.rmtree(path)


# -- status -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceStatus:
    device: str
    address: str
    port: int
    pid: int | None
    running: bool
    banner: str | None
    login: bool | None  # None: not tried (the device does not answer)
    hostname: str | None
    boots: int
    message: str | None

    @property
    def answers(self) -> bool:
        return self.banner is not None


def status(site: SimSite, *, login: bool = True) -> list[DeviceStatus]:
    """For every device: does its sshd run, send a banner, and accept the operator's login?"""
    from umhctl.sim import probe

    def one(name: str) -> DeviceStatus:
        device = site.devices[name]
        address, port = site.endpoint(name)
        running = site.running(name)
        banner = probe.banner(address, port) if running else None
        ok: bool | None = None
        hostname: str | None = None
        message = device.message
        if banner and login:
            try:
                hostname = probe.run(site, name, "hostname").strip()
                ok = True
            except UmhctlError as exc:
                ok, message = False, str(exc)
        return DeviceStatus(
            name, address, port, device.pid if running else None, running, banner, ok, hostname, device.boots, message
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, site.devices))


def sweep_check(state_dir: Path) -> tuple[list[int], list[str]]:
    """What of the site is still on the host (for tests and `sim down` verification): processes and mounts."""
    with contextlib.suppress(FileNotFoundError):
        return process.processes_under(state_dir), mounts_under(state_dir)
    return [], []
