"""Loopback addresses for simulated devices: only 127.0.0.0/8 is ever used or contacted in sim mode.

Linux routes all of 127.0.0.0/8 to `lo`, so every device gets its own address without any network setup and
no packet leaves the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import socket
import struct
from pathlib import Path

from umhctl.errors import UmhctlError

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_LISTEN = "0A"


def assert_loopback(address: str | ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    """The address, if it is in 127.0.0.0/8; anything else is refused (a real check, not a stripped `assert`)."""
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        raise UmhctlError(f"'{address}' is not an IP address; simulated devices live on 127.0.0.0/8") from None
    if not isinstance(ip, ipaddress.IPv4Address) or ip not in LOOPBACK:
        raise UmhctlError(
            f"refusing {address}: in sim mode umhctl only connects to loopback addresses (127.0.0.0/8)",
            hint="this is a bug or a tampered site.json; simulated devices never leave this machine",
        )
    return ip


def site_base_address(site: str) -> ipaddress.IPv4Address:
    """A per-site first address, 127.A.B.10 with A in 100..227 and B from a hash of the site name.

    Deterministic (the same site gets the same addresses every time) and away from 127.0.0.1 and Debian's
    127.0.1.1, so two simulated sites rarely meet and never meet the host's own loopback services.
    """
    digest = hashlib.sha256(site.encode()).digest()
    return ipaddress.IPv4Address(f"127.{100 + digest[0] % 128}.{digest[1]}.10")


def allocate(base: ipaddress.IPv4Address, count: int, used: set[str]) -> list[str]:
    """`count` addresses from `base` upwards, skipping `used` and host parts .0 and .255."""
    assert_loopback(base)
    result: list[str] = []
    candidate = int(base)
    while len(result) < count:
        ip = ipaddress.IPv4Address(candidate)
        if ip not in LOOPBACK:
            raise UmhctlError(f"ran out of loopback addresses above {base}", hint="choose a lower --base-address")
        if candidate & 0xFF not in (0, 255) and str(ip) not in used:
            result.append(str(ip))
        candidate += 1
    return result


def listeners(proc_net: Path = Path("/proc/net/tcp")) -> set[tuple[str, int]]:
    """Every listening IPv4 TCP socket of this network namespace, as (address, port)."""
    found: set[tuple[str, int]] = set()
    for line in proc_net.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN:
            continue
        hex_ip, hex_port = fields[1].split(":")
        found.add((socket.inet_ntoa(struct.pack("<I", int(hex_ip, 16))), int(hex_port, 16)))
    return found


def is_listening(address: str, port: int) -> bool:
    return (address, port) in listeners()


def address_taken(address: str, port: int) -> str | None:
    """Why (address, port) cannot be used by a new sshd, or None when it is free."""
    assert_loopback(address)
    current = listeners()
    if (address, port) in current:
        return f"something already listens on {address}:{port}"
    if ("0.0.0.0", port) in current:
        return f"a service listens on all addresses, port {port} (0.0.0.0:{port})"
    # The definitive test (it also catches dual-stack [::] listeners): bind the way sshd does.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return f"cannot bind {address}:{port}: {exc.strerror}"
    return None


def read_banner(address: str, port: int, timeout: float = 3.0) -> str | None:
    """The SSH identification line the server at (address, port) sends first, or None if none came."""
    assert_loopback(address)
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=timeout) as conn:
        conn.settimeout(timeout)
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = conn.recv(256)
            if not chunk:
                break
            data += chunk
        line = data.split(b"\n")[0].strip().decode(errors="replace")
        return line if line.startswith("SSH-") else None
    return None
