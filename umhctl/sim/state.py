"""The state of a simulated site on disk, and the API other commands use to reach its devices.

STATE_DIR (default `$XDG_STATE_HOME/umhctl/sim/<site>/`, i.e. ~/.local/state/umhctl/sim/<site>/; the base
`$XDG_STATE_HOME/umhctl/sim` is replaced by `$UMHCTL_SIM_STATE` when set; `--state-dir` names STATE_DIR itself):

    site.json             device -> address, port, pid, status, boots (written atomically)
    known_hosts           every device's host key, from the secret store (never scanned, never trusted on first use)
    id_ed25519{,.pub}     the sim operator key (generated once, kept by `sim down`)
    layers/<id>/          the /usr layer (stand-ins, Python whiteouts) devices mount under their read-only /usr
    devices/<name>/root   the device's root directory, provisioned by Ignition
    devices/<name>/control  /run/umhctl-sim inside the device: reboot requests, active units, the operator key
    devices/<name>/ignition.json  the rendered config first boot used (the platform's "user data")
    devices/<name>/sshd.log       the device's console: devinit and sshd -e output
    watcher.log           the reboot watcher's log
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umhctl.artifacts import ArtifactSource, LockFile
from umhctl.errors import UmhctlError
from umhctl.fsutil import write_atomic, xdg_dir
from umhctl.inventory import Inventory
from umhctl.secrets import generate_ed25519
from umhctl.sim.net import assert_loopback
from umhctl.sim.process import WATCHER_MODULE, alive, cmdline, is_device_process

if TYPE_CHECKING:
    from umhctl.blueprint.loader import LoadedBlueprint

FORMAT_VERSION = "1"
STATE_ENV = "UMHCTL_SIM_STATE"
SITE_FILE = "site.json"


def default_state_dir(site: str) -> Path:
    override = os.environ.get(STATE_ENV)
    if override:
        return Path(override) / site
    return xdg_dir("state") / "umhctl" / "sim" / site


@dataclass
class SimDevice:
    name: str
    hostname: str
    address: str
    port: int = 22
    pid: int | None = None  # the device's `unshare` on the host
    status: str = "new"  # new | running | stopped | failed
    boots: int = 0
    layer: str | None = None
    message: str | None = None  # why it failed
    host_key: str | None = None  # the public host key the device's Ignition config gave it

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> SimDevice:
        device = cls(**data)
        assert_loopback(device.address)
        return device


@dataclass
class SimSite:
    """A simulated site as recorded in its state dir."""

    state_dir: Path
    site: str
    user: str = "core"
    blueprint: str | None = None
    base_address: str | None = None
    watcher_pid: int | None = None
    devices: dict[str, SimDevice] = field(default_factory=dict)

    # -- the API for plan/apply/reset/status in sim mode --------------------------------------------------

    @classmethod
    def load(cls, where: Path | str | LoadedBlueprint) -> SimSite:
        """The site recorded in a state dir, or the one `sim up` made for a blueprint (file or loaded)."""
        state_dir = resolve_state_dir(where)
        path = state_dir / SITE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UmhctlError(
                f"no simulated site in {state_dir}", hint="start it with: umhctl sim up -f BLUEPRINT"
            ) from None
        except (OSError, ValueError) as exc:
            raise UmhctlError(f"{path}: unreadable simulated-site state: {exc}") from None
        return cls(
            state_dir=state_dir,
            site=data["site"],
            user=data.get("user", "core"),
            blueprint=data.get("blueprint"),
            base_address=data.get("base_address"),
            watcher_pid=data.get("watcher_pid"),
            devices={name: SimDevice.from_data(d) for name, d in data.get("devices", {}).items()},
        )

    def endpoint(self, device: str) -> tuple[str, int]:
        """Where to connect for `device`: always a loopback address (refused otherwise)."""
        try:
            entry = self.devices[device]
        except KeyError:
            raise UmhctlError(
                f"device '{device}' is not part of the simulated site '{self.site}'",
                hint="devices: " + ", ".join(self.devices),
            ) from None
        return str(assert_loopback(entry.address)), entry.port

    def endpoints(self) -> dict[str, tuple[str, int]]:
        return {name: self.endpoint(name) for name in self.devices}

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def inventory(self) -> Inventory:
        """What plan/apply/reset use in place of the blueprint's addresses: loopback endpoints, the site's own
        known_hosts (from the rendered host keys), the sim operator key, and its stand-in artifacts."""
        return Inventory(
            f"the simulated site in {self.state_dir}",
            self.endpoints(),
            self.known_hosts,
            self.identity,
            self.user,
            self.artifact_source(),
            tailnet_lookup=self.tailnet_address,
        )

    def tailnet_address(self, name: str) -> str | None:
        """The simulated site's stand-in for MagicDNS: `<hostname>.<tailnet>` leads to the device whose (fake)
        enrollment registered that hostname, on its loopback address; no enrolled device has it: None. Tailscale
        cannot run here: the fake `tailscale up` in a device records its enrollment in its tailscaled state dir."""
        from umhctl.sim.provision import TAILNET_NODE

        hostname = name.split(".", 1)[0]
        for device, entry in sorted(self.devices.items()):
            try:
                record = (self.root(device) / TAILNET_NODE.lstrip("/")).read_text()
            except OSError:
                continue
            if f"hostname={hostname}\n" in record:
                return str(assert_loopback(entry.address))
        return None

    def artifact_source(self) -> ArtifactSource:
        """The stand-in publisher and the simulated site's own lock (never the site's lock file)."""
        from umhctl.sim import publisher

        base = publisher.url(self.state_dir)
        if base is None:
            raise UmhctlError(
                f"the simulated site in {self.state_dir} has no artifact publisher running",
                hint="start it again with: umhctl sim up -f BLUEPRINT",
            )
        return ArtifactSource(base, LockFile.load(self.state_dir / publisher.LOCK_FILE))

    @property
    def identity(self) -> Path:
        """The sim operator's private key (authorized for the blueprint's SSH user on every device)."""
        return self.state_dir / "id_ed25519"

    # -- layout ---------------------------------------------------------------------------------------------

    def device_dir(self, device: str) -> Path:
        return self.state_dir / "devices" / device

    def root(self, device: str) -> Path:
        return self.device_dir(device) / "root"

    def control(self, device: str) -> Path:
        return self.device_dir(device) / "control"

    def console(self, device: str) -> Path:
        return self.device_dir(device) / "sshd.log"

    @property
    def layers_dir(self) -> Path:
        return self.state_dir / "layers"

    def running(self, device: str) -> bool:
        pid = self.devices[device].pid
        return pid is not None and is_device_process(pid, self.root(device))

    def watcher_running(self) -> bool:
        pid = self.watcher_pid
        if pid is None or not alive(pid):
            return False
        args = cmdline(pid)
        return WATCHER_MODULE in args and str(self.state_dir) in args

    def to_data(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "site": self.site,
            "user": self.user,
            "blueprint": self.blueprint,
            "base_address": self.base_address,
            "watcher_pid": self.watcher_pid,
            "devices": {name: asdict(d) for name, d in self.devices.items()},
        }

    def save(self) -> None:
        write_atomic(self.state_dir / SITE_FILE, json.dumps(self.to_data(), indent=2) + "\n", 0o644)

    def write_known_hosts(self) -> None:
        """known_hosts from the keys the devices' Ignition configs gave them (rendered from the secret store)."""
        lines = []
        for _, device in sorted(self.devices.items()):
            if device.host_key:
                host = device.address if device.port == 22 else f"[{device.address}]:{device.port}"
                lines.append(f"{host} {device.host_key.strip()}\n")
        write_atomic(self.known_hosts, "".join(lines), 0o644)

    def ensure_identity(self) -> str:
        """The operator's public key; the key pair is generated once in the state dir."""
        if not self.identity.exists():
            generate_ed25519(self.identity, f"umhctl-sim@{self.site}")
        return self.identity.with_suffix(".pub").read_text().strip()


def sim_inventory(loaded: LoadedBlueprint) -> Inventory:
    """The inventory of the simulated site `sim up` started for this blueprint (--sim)."""
    site = SimSite.load(loaded)
    if site.site != loaded.blueprint.metadata.name:
        raise UmhctlError(
            f"{site.state_dir} holds the simulated site '{site.site}', not '{loaded.blueprint.metadata.name}'"
        )
    return site.inventory()


def _registry() -> Path:
    # Which state dir `sim up` used for which blueprint, so that `--sim` finds a site started with --state-dir.
    override = os.environ.get(STATE_ENV)
    base = Path(override) if override else xdg_dir("state") / "umhctl" / "sim"
    return base / "registry.json"


def _read_registry() -> dict[str, str]:
    try:
        data = json.loads(_registry().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def register(blueprint: Path, state_dir: Path) -> None:
    entries = _read_registry()
    key = str(blueprint.resolve())
    if entries.get(key) != str(state_dir):
        entries[key] = str(state_dir)
        write_atomic(_registry(), json.dumps(entries, indent=2, sort_keys=True) + "\n", 0o644)


def unregister(state_dir: Path) -> None:
    entries = _read_registry()
    kept = {k: v for k, v in entries.items() if v != str(state_dir)}
    if kept != entries:
        write_atomic(_registry(), json.dumps(kept, indent=2, sort_keys=True) + "\n", 0o644)


def resolve_state_dir(where: Path | str | LoadedBlueprint) -> Path:
    """The state dir of a simulated site: given as one, or the one `sim up` used for a blueprint (file or
    loaded): the registered one if `sim up --state-dir` chose it, else the default for the site's name."""
    from umhctl.blueprint.loader import LoadedBlueprint, load_blueprint

    if isinstance(where, LoadedBlueprint):
        loaded = where
    else:
        path = Path(where)
        if path.is_dir():
            return path.absolute()
        if not (path.is_file() or path.suffix in (".yaml", ".yml")):
            return path.absolute()  # a state dir that does not exist (yet): load() says there is no site in it
        loaded = load_blueprint(path)
    registered = _read_registry().get(str(loaded.path.resolve()))
    if registered and (Path(registered) / SITE_FILE).exists():
        return Path(registered)
    return default_state_dir(loaded.blueprint.metadata.name).absolute()


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """One writer at a time per site (sim up/down and the reboot watcher)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
