"""Where each device is reached: address and port, the known_hosts that vouches for its key, the login key.

Plan, apply and reset take an Inventory as input. The blueprint's own inventory uses the management addresses
and the site's known_hosts; a stand-in site (the simulated site) hands in its own, so nothing on the production
path knows about the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from umhctl.artifacts import ArtifactSource
from umhctl.blueprint.loader import LoadedBlueprint
from umhctl.blueprint.model import SiteBlueprint
from umhctl.errors import UmhctlError
from umhctl.knownhosts import host_pattern, site_known_hosts
from umhctl.remote.ssh import Endpoint


@dataclass(frozen=True)
class Inventory:
    source: str  # what the addresses are: "the blueprint" or "the simulated site in DIR"
    endpoints: dict[str, tuple[str, int]]
    known_hosts: Path
    identity: Path | None  # None: ssh-agent and the user's default keys
    user: str
    artifacts: ArtifactSource | None = None  # where images come from, when not the blueprint's mirror and lock
    # Where a tailnet name (<hostname>.<tailnet>) leads here: an address, or None when no enrolled device has it.
    # Unset: ordinary DNS (MagicDNS on a machine in the tailnet). The simulated site hands in its stand-in.
    tailnet_lookup: Callable[[str], str | None] | None = None
    # Devices reached by their tailnet name: device -> the management endpoint their host key is recorded for.
    via_tailnet: dict[str, tuple[str, int]] = field(default_factory=dict)
    tailnet_hint: str | None = None

    def endpoint(self, device: str) -> Endpoint:
        try:
            address, port = self.endpoints[device]
        except KeyError:
            raise UmhctlError(
                f"device '{device}' is not in {self.source}",
                hint="devices there: " + (", ".join(self.endpoints) or "none"),
            ) from None
        endpoint = Endpoint(device, address, port, self.user, self.known_hosts, self.identity)
        if device not in self.via_tailnet:
            return endpoint
        return replace(
            endpoint,
            host_key_alias=host_pattern(*self.via_tailnet[device]),
            lookup=self.tailnet_lookup,
            hint=self.tailnet_hint,
        )

    def host(self, device: str) -> str:
        """The device's known_hosts host pattern here (its management entry, also when reached by tailnet name)."""
        return host_pattern(*self.via_tailnet.get(device, self.endpoints[device]))

    def with_identity(self, identity: Path | None) -> Inventory:
        """The same inventory logging in with another key (-i); None keeps the inventory's own."""
        return self if identity is None else replace(self, identity=identity)


def blueprint_inventory(loaded: LoadedBlueprint, identity: Path | None = None) -> Inventory:
    """The management addresses and the site's known_hosts; the login key is -i, else access.identityFile."""
    bp = loaded.blueprint
    key = identity
    if key is None and bp.access.identity_file:
        key = Path(bp.access.identity_file).expanduser()
        if not key.is_file():
            raise UmhctlError(
                f"access.identityFile {key} does not exist", hint="pass -i KEY, or fix the path in the blueprint"
            )
    return Inventory(
        "the blueprint",
        {d.name: (str(d.address), d.ssh_port) for d in bp.devices},
        site_known_hosts(loaded),
        key,
        bp.access.user,
    )


def through_tailnet(inventory: Inventory, bp: SiteBlueprint, hint: str) -> Inventory:
    """The same inventory reaching every device by its tailnet name, `<tailnetHostname>.<tailnet>`, with the same
    strict host-key check (against the key known_hosts has for its management address). `hint`: what to try
    when a device cannot be reached that way (its management address)."""
    tailnet = bp.access.enabled_tailscale
    if tailnet is None or tailnet.tailnet is None:
        raise UmhctlError(
            "--via tailscale needs access.tailscale with its tailnet domain in the blueprint",
            hint="add access.tailscale (version, authKeySecret, tailnet), or reach the devices by their management "
            "addresses (--via management)",
        )
    endpoints = dict(inventory.endpoints)
    for device in bp.devices:
        if device.name in endpoints:
            endpoints[device.name] = (f"{device.tailnet_name}.{tailnet.tailnet}", endpoints[device.name][1])
    return replace(
        inventory,
        source=f"{inventory.source}, through the tailnet {tailnet.tailnet}",
        endpoints=endpoints,
        via_tailnet={name: inventory.endpoints[name] for name in endpoints if name in inventory.endpoints},
        tailnet_hint=hint,
    )
