"""Does a simulated device answer? A TCP connect with the SSH banner, and a real login over umhctl's own SSH.

The login goes through umhctl.remote.ssh, the same code plan/apply use: strict host-key checking against the
simulated site's known_hosts, the operator key, a loopback address only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from umhctl.errors import UmhctlError
from umhctl.sim.net import assert_loopback, read_banner

if TYPE_CHECKING:
    from umhctl.sim.state import SimSite


def banner(address: str, port: int) -> str | None:
    return read_banner(address, port)


def run(site: SimSite, device: str, command: str, timeout: float = 10.0) -> str:
    """Run `command` on the device as the site's user; returns stdout; raises UmhctlError on failure."""
    from umhctl.remote.ssh import Endpoint, connect

    address, port = site.endpoint(device)
    assert_loopback(address)
    endpoint = Endpoint(device, address, port, site.user, site.known_hosts, site.identity)
    with connect(endpoint, timeout=timeout) as conn:
        result = conn.run(command + "\n", sudo=False, timeout=timeout)
    if result.status != 0:
        raise UmhctlError(f"{device}: '{command}' exited {result.status}: {result.stderr.strip()}")
    return result.stdout
