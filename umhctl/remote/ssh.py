"""SSH to a device with paramiko (no other module imports it): key auth, strict host keys, scripts on stdin.

Host keys come only from the site's known_hosts. An unknown or different key is refused with both fingerprints
— never accepted on first use. Scripts run as `sudo -n bash -c '. /dev/stdin'` with the script on stdin, so
values (secrets included) never appear in a process list on the device (RUN_SCRIPT).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from umhctl.errors import UmhctlError
from umhctl.knownhosts import KnownHosts, parse_known_hosts, read_known_hosts_bytes

if TYPE_CHECKING:
    import paramiko

CONNECT_TIMEOUT = 10.0
# Said where a device cannot be reached by its tailnet name (a plan keeps the message, not the hint).
VIA_MANAGEMENT = "its management address works without the tailnet: --via management"

# paramiko logs dropped connections (e.g. a rebooting device) itself; umhctl reports what matters.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False
COMMAND_TIMEOUT = 300.0
KEEPALIVE_SECONDS = 30


@dataclass(frozen=True)
class Endpoint:
    device: str
    address: str
    port: int
    user: str
    known_hosts: Path
    identity: Path | None = None  # private key file; None = ssh-agent and the user's default keys
    # Reaching a device by another name (its tailnet name): the known_hosts entry its key is checked against
    # (OpenSSH's HostKeyAlias), so the key stays the one recorded for its management address.
    host_key_alias: str | None = None
    # Resolves `address` at connect time when the inventory knows its names itself (the simulated site's stand-in
    # for MagicDNS): an address, or None while no enrolled device has that name. None: ordinary name resolution.
    lookup: Callable[[str], str | None] | None = None
    hint: str | None = None  # what to try when the device cannot be reached this way


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str


class HostKeyMismatch(UmhctlError):
    def __init__(self, message: str, *, hint: str, presented: str) -> None:
        super().__init__(message, hint=hint)
        self.presented = presented


def fingerprint(key: paramiko.PKey) -> str:
    return key_fingerprint(key.asbytes())


def key_fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key's wire-format data."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# How a device runs a script that arrives on stdin. Not `bash -s`: bash reads a script from a pipe one byte per
# read(2), so as to leave the rest of its stdin to the commands it runs (bash input.c, fd_to_buffered_stream: a
# 1-byte buffer for unseekable input), which is one system call per byte of script: ~6,000 for a probe, one per
# byte of every file an apply writes (base64 inside the script). `.` reads the whole file first, 4 KB at a time
# (bash evalfile.c: zmapfd for what is not a regular file), then runs it; a command in the script that reads
# stdin gets end of file instead of the rest of the script. /dev/stdin is the session's stdin, a pipe (OpenSSH
# session.c, do_exec_no_pty: USE_PIPES), which systemd links at boot (src/shared/dev-setup.c).
RUN_SCRIPT = "bash -c '. /dev/stdin'"


class Connection:
    """One SSH session to one device."""

    def __init__(self, endpoint: Endpoint, client: paramiko.SSHClient) -> None:
        self.endpoint = endpoint
        self.client = client

    def run(self, script: str, *, sudo: bool = True, timeout: float = COMMAND_TIMEOUT) -> Result:
        """Run a bash script (as root with sudo) and collect its output. The script travels on stdin."""
        command = f"sudo -n {RUN_SCRIPT}" if sudo else RUN_SCRIPT
        return self._exec(command, script.encode(), None, sudo=sudo, timeout=timeout)

    def upload(self, script: str, source: Path, *, timeout: float = COMMAND_TIMEOUT) -> Result:
        """Run a script (as root) that reads a file's bytes on stdin: the script is in argv, so it must hold no
        secret (paths and hashes only); the data streams from `source`."""
        command = "sudo -n bash -c " + shlex.quote(script)
        return self._exec(command, None, source, sudo=True, timeout=timeout)

    def _exec(self, command: str, data: bytes | None, source: Path | None, *, sudo: bool, timeout: float) -> Result:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise UmhctlError(f"{self.endpoint.device}: the SSH connection is closed")
        import paramiko

        try:
            channel = transport.open_session(timeout=CONNECT_TIMEOUT)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise UmhctlError(f"{self.endpoint.device}: SSH session failed: {exc or type(exc).__name__}") from None
        try:
            channel.settimeout(timeout)
            channel.exec_command(command)
            if data is not None:
                channel.sendall(data)
            if source is not None:
                with open(source, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        channel.sendall(chunk)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while True:
                # The channel is selectable: it wakes on stdout data and on end of stdout at once; stderr is read
                # along the way so that a chatty command cannot stall on a full stderr window.
                readable, _, _ = select.select([channel], [], [], 0.05)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                if readable or channel.recv_ready():
                    chunk = channel.recv(65536)
                    if not chunk:
                        break  # end of stdout: the command is done
                    out += chunk
                elif time.monotonic() > deadline:
                    raise UmhctlError(f"{self.endpoint.device}: a command took longer than {timeout:.0f} s")
            status = channel.recv_exit_status()
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            # The device went away mid-command (a reboot, a dropped link).
            raise UmhctlError(f"{self.endpoint.device}: SSH command failed: {exc or type(exc).__name__}") from None
        finally:
            channel.close()
        result = Result(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if sudo and status != 0 and "a password is required" in result.stderr:
            raise UmhctlError(
                f"{self.endpoint.device}: sudo asks for a password for {self.endpoint.user}",
                hint="umhctl needs passwordless sudo, as Flatcar's core user has",
            )
        return result

    def stream(self, script: str, sink: BinaryIO, *, stall: float) -> int:
        """Run a script (as root) whose stdout is data (a backup archive): copy it into `sink` as it comes.
        `stall` bounds the time without a byte. Returns the exit status."""
        import paramiko

        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise UmhctlError(f"{self.endpoint.device}: the SSH connection is closed")
        try:
            channel = transport.open_session(timeout=CONNECT_TIMEOUT)
            try:
                channel.settimeout(stall)
                channel.exec_command(f"sudo -n {RUN_SCRIPT}")
                channel.sendall(script.encode())
                channel.shutdown_write()
                while chunk := channel.recv(1 << 16):
                    sink.write(chunk)
                return channel.recv_exit_status()
            finally:
                channel.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            reason = f"no data for {stall:.0f} s" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise UmhctlError(f"{self.endpoint.device}: SSH transfer failed: {reason}") from None

    def close(self) -> None:
        self.client.close()

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(endpoint: Endpoint, *, timeout: float = CONNECT_TIMEOUT) -> Connection:
    import paramiko  # heavy: only commands that talk to devices pay for it

    where = f"{endpoint.address}:{endpoint.port}"
    if not endpoint.known_hosts.is_file():
        raise UmhctlError(
            f"{endpoint.device}: known_hosts file {endpoint.known_hosts} does not exist",
            hint="umhctl verifies every device's host key; it never trusts a key on first use",
        )
    resolved = endpoint.lookup(endpoint.address) if endpoint.lookup is not None else endpoint.address
    if resolved is None:
        raise UmhctlError(
            f"{endpoint.device}: cannot reach {where}: not enrolled in the tailnet yet (no device has that name); "
            f"{VIA_MANAGEMENT}",
            hint=endpoint.hint,
        )
    client = paramiko.SSHClient()
    known, table = _site_host_keys(endpoint.known_hosts)
    # The client gets the keys of this device's name only (paramiko looks up just that name: SSHClient.connect),
    # or with a host key alias those of the alias alone, whatever known_hosts says of the name itself.
    name = endpoint.address if endpoint.port == 22 else f"[{endpoint.address}]:{endpoint.port}"
    for key_type, key in (table.lookup(endpoint.host_key_alias or name) or {}).items():
        client.get_host_keys().add(name, key_type, key)

    class Unknown(paramiko.MissingHostKeyPolicy):
        """A host key not in known_hosts: refused (never trusted on first use), keeping the key to report."""

        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            raise _UnknownKey(key)

    client.set_missing_host_key_policy(Unknown())
    started = time.monotonic()
    try:
        sock = socket.create_connection((resolved, endpoint.port), timeout=timeout)
        # Without it, every round trip waits out Nagle against the peer's delayed ACK: about 40 ms per command
        # and several per handshake, on a loopback as on a plant network (bench/README.md).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.connect(
            endpoint.address,
            sock=sock,
            port=endpoint.port,
            username=endpoint.user,
            key_filename=str(endpoint.identity) if endpoint.identity else None,
            look_for_keys=endpoint.identity is None,
            allow_agent=endpoint.identity is None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        _refuse_revoked(endpoint, exc.key, known)
        raise HostKeyMismatch(
            f"{endpoint.device}: host key mismatch at {where}: the device presents {fingerprint(exc.key)}, "
            f"known_hosts expects {fingerprint(exc.expected_key)}. Refusing to connect",
            hint=f"if the device was replaced, run `umhctl reset device {endpoint.device}`; "
            f"otherwise someone may be intercepting the connection. To accept a new key on purpose, edit "
            f"{endpoint.known_hosts}",
            presented=fingerprint(exc.key),
        ) from None
    except _UnknownKey as exc:
        client.close()
        _refuse_revoked(endpoint, exc.key, known)
        raise UmhctlError(
            f"{endpoint.device}: {where} is not in {endpoint.known_hosts}; refusing an unknown host key",
            hint="umhctl never trusts a host key on first use: record the devices' keys with "
            "`umhctl render --out DIR --update-known-hosts` and commit known_hosts",
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        raise UmhctlError(
            f"{endpoint.device}: SSH login as {endpoint.user} at {where} was refused",
            hint="check that your key is in the blueprint's access.authorizedKeys (or pass -i KEY)",
        ) from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        # A device that is down, rebooting, or hung: paramiko says "EOFError", "No existing session" or "Error
        # reading SSH protocol banner" depending on when it noticed; the operator needs what happened, in words.
        client.close()
        handshake = ("No existing session", "protocol banner", "Error reading SSH")
        if isinstance(exc, paramiko.SSHException) and not any(words in str(exc) for words in handshake):
            raise UmhctlError(f"{endpoint.device}: SSH to {where} failed: {exc}") from None  # e.g. no common cipher
        if isinstance(exc, socket.gaierror) and endpoint.host_key_alias is not None:
            raise UmhctlError(
                f"{endpoint.device}: cannot reach {where}: {exc.strerror} (not enrolled in the tailnet yet, or this "
                f"machine is not in the tailnet?); {VIA_MANAGEMENT}",
                hint=endpoint.hint,
            ) from None
        message = _unreachable(endpoint.device, where, exc, time.monotonic() - started, timeout)
        raise UmhctlError(message, hint=endpoint.hint) from None
    transport = client.get_transport()
    if transport is not None:
        # apply keeps a plan's connection while the operator reads the plan: keepalives keep a NAT or firewall
        # on the way from dropping it as idle.
        transport.set_keepalive(KEEPALIVE_SECONDS)
    return Connection(endpoint, client)


_host_key_tables: dict[str, tuple[bytes, KnownHosts, paramiko.HostKeys]] = {}
_host_key_tables_lock = threading.Lock()


def _site_host_keys(path: Path) -> tuple[KnownHosts, paramiko.HostKeys]:
    """known_hosts decoded once per content of the file, not once per connection: a fleet run decoded every
    device's keys for every device (8 ms per connection at 500 devices, 4 s of CPU for the run). The file is
    still read for each connection, so an edit between two connections counts as before."""
    import paramiko

    data = read_known_hosts_bytes(path)
    with _host_key_tables_lock:
        cached = _host_key_tables.get(str(path))
        if cached is not None and cached[0] == data:
            return cached[1], cached[2]
        known = parse_known_hosts(data)
        table = paramiko.HostKeys()
        for names, key_type, key_data in known.trusted:
            try:
                key = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_data))
            except Exception:  # an unknown key type, damaged data: the line matches nothing, as with ssh
                continue
            for name in names:
                table.add(name, key_type, key)
        _host_key_tables[str(path)] = (data, known, table)
        return known, table


def _unreachable(device: str, where: str, exc: BaseException, elapsed: float, timeout: float) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError) and exc.strerror:
        # refused, no route: said before any handshake (paramiko wraps the socket's errors, one per address)
        causes = [e for e in getattr(exc, "errors", {}).values() if isinstance(e, OSError) and e.strerror]
        return f"{device}: cannot reach {where}: {(causes[0] if causes else exc).strerror}"
    if elapsed >= timeout * 0.9 or isinstance(exc, TimeoutError):
        return (
            f"{device}: cannot reach {where}: no SSH answer within the {timeout:.0f} s timeout "
            "(the device is down, or accepts connections but hangs)"
        )
    return f"{device}: cannot reach {where}: the connection was closed during the SSH handshake (rebooting?)"


class _UnknownKey(Exception):
    def __init__(self, key: paramiko.PKey) -> None:
        self.key = key


def _refuse_revoked(endpoint: Endpoint, key: paramiko.PKey, known: KnownHosts) -> None:
    presented = f"{key.get_name()} {key.get_base64()}"
    if presented in known.revoked:
        raise UmhctlError(
            f"{endpoint.device}: the host key {fingerprint(key)} at {endpoint.address}:{endpoint.port} is revoked "
            f"(@revoked in {endpoint.known_hosts}). Refusing to connect",
            hint=f"a revoked key must never be accepted; give the device a new one: "
            f"`umhctl reset device {endpoint.device} --rotate-host-key`",
        )
