"""Where each device is reached: address and port, the known_hosts that vouches for its key, the login key.

Plan, apply and reset take an Inventory as input. The blueprint's own inventory uses the management addresses
and the site's known_hosts; a stand-in site (the simulated site) hands in its own, so nothing on the production
path knows about the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from umhctl.artifacts import ArtifactSource
from umhctl.blueprint.loader import LoadedBlueprint
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

    def endpoint(self, device: str) -> Endpoint:
        try:
            address, port = self.endpoints[device]
        except KeyError:
            raise UmhctlError(
                f"device '{device}' is not in {self.source}",
                hint="devices there: " + (", ".join(self.endpoints) or "none"),
            ) from None
        return Endpoint(device, address, port, self.user, self.known_hosts, self.identity)

    def host(self, device: str) -> str:
        """The device's known_hosts host pattern here."""
        return host_pattern(*self.endpoints[device])

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
