"""Does a simulated device answer? A TCP connect with the SSH banner, and a real login when paramiko is there.

paramiko is imported lazily: it is heavy, and `umhctl validate` must stay fast to start.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from umhctl.errors import UmhctlError
from umhctl.sim.net import assert_loopback, read_banner

if TYPE_CHECKING:
    from umhctl.sim.state import SimSite


def have_paramiko() -> bool:
    return importlib.util.find_spec("paramiko") is not None


def banner(address: str, port: int) -> str | None:
    return read_banner(address, port)


def run(site: SimSite, device: str, command: str, timeout: float = 10.0) -> str:
    """Run `command` on the device as the site's user with the operator key; strict host-key checking against
    the site's known_hosts (an unknown or different key is refused). Returns stdout; raises on failure."""
    # Typed as Any: paramiko ships no type hints, and it is loaded only when a login is wanted.
    paramiko: Any = importlib.import_module("paramiko")
    address, port = site.endpoint(device)
    assert_loopback(address)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(site.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            address,
            port=port,
            username=site.user,
            key_filename=str(site.identity),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        out: str = stdout.read().decode(errors="replace")
        code = stdout.channel.recv_exit_status()
        if code != 0:
            raise UmhctlError(f"{device}: '{command}' exited {code}: {stderr.read().decode(errors='replace').strip()}")
        return out
    except (paramiko.SSHException, OSError) as exc:
        raise UmhctlError(f"{device}: ssh {site.user}@{address}:{port} failed: {type(exc).__name__}: {exc}") from None
    finally:
        client.close()
