"""The site's known_hosts: one line per device address, written from the host keys umhctl generated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from umhctl.blueprint.repofiles import MAX_KNOWN_HOSTS, RepoFileProblem, read_regular
from umhctl.errors import UmhctlError
from umhctl.fsutil import write_atomic

if TYPE_CHECKING:
    from umhctl.blueprint.loader import LoadedBlueprint
    from umhctl.secrets import SecretStore


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def site_known_hosts(loaded: LoadedBlueprint) -> Path:
    """The site's known_hosts (committed next to the blueprint), confined to the blueprint's repository."""
    from umhctl.blueprint.repofiles import RepoFiles

    relative = loaded.blueprint.access.known_hosts_file
    path = RepoFiles(loaded.path.resolve().parent).resolve(relative)
    if path is None:
        raise UmhctlError(
            f"access.knownHostsFile {relative} is outside the blueprint's repository",
            hint="keep known_hosts in the site repository, next to the blueprint",
        )
    return path


def record_site_host_keys(loaded: LoadedBlueprint, secrets: SecretStore, devices: list[str]) -> list[str]:
    """Write the devices' host keys into the site's known_hosts (the file kept in git); the devices added.

    The keys come from umhctl's own secret store — the keys Ignition gives the devices — so known_hosts is right
    before a device first boots, without ever trusting a key on first use.
    """
    bp = loaded.blueprint
    path = site_known_hosts(loaded)
    changed = []
    for name in devices:
        device = bp.device(name)
        if set_host_key(path, host_pattern(str(device.address), device.ssh_port), secrets.public_host_key(name)):
            changed.append(name)
    return changed


def set_host_key(path: Path, host: str, public_key: str) -> bool:
    """Make `host`'s entry exactly `public_key` (type and data; no comment); True when the file changed."""
    key = " ".join(public_key.split()[:2])
    if path.exists() and key in read_known_hosts(path).revoked:
        raise UmhctlError(
            f"the host key for {host} is marked @revoked in {path}: it cannot be recorded as trusted",
            hint="give the device a new host key with `umhctl reset device NAME --rotate-host-key`",
        )
    entry = f"{host} {key}"
    lines = path.read_text().splitlines() if path.exists() else []
    hosts = [line.split(" ", 1)[0] for line in lines]
    if host in hosts:
        first = hosts.index(host)
        new = [entry if i == first else line for i, line in enumerate(lines) if i == first or hosts[i] != host]
    else:
        new = [*lines, entry]
    if new == lines:
        return False
    write_atomic(path, "".join(f"{line}\n" for line in new))
    return True


@dataclass
class KnownHosts:
    """A known_hosts file as OpenSSH reads it (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT): `[marker] hostnames keytype
    base64 [comment]`. A line marked @revoked holds a key that "must not ever be accepted" (for any host: umhctl is
    stricter there than a host pattern); @cert-authority lines trust CAs for host certificates, which umhctl does
    not use: they grant nothing here. paramiko knows neither marker (its HostKeys reads '@revoked' as a host name),
    so umhctl reads the file itself."""

    trusted: list[tuple[list[str], str, str]] = field(default_factory=list)  # (host patterns, key type, base64)
    revoked: set[str] = field(default_factory=set)  # "keytype base64"


def read_known_hosts(path: Path) -> KnownHosts:
    return parse_known_hosts(read_known_hosts_bytes(path))


def read_known_hosts_bytes(path: Path) -> bytes:
    try:
        return read_regular(path, f"known_hosts file {path}", MAX_KNOWN_HOSTS)
    except RepoFileProblem as problem:
        raise UmhctlError(str(problem)) from None
    except OSError as exc:
        raise UmhctlError(f"cannot read known_hosts file {path}: {exc.strerror}") from None


def parse_known_hosts(raw: bytes) -> KnownHosts:
    text = raw.decode("utf-8", "replace")
    known = KnownHosts()
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if len(fields) < 3:
            continue  # malformed: matches nothing, as with ssh
        names, key_type, data = fields[:3]
        if marker == "@revoked":
            known.revoked.add(f"{key_type} {data}")
        elif marker is None:
            known.trusted.append((names.split(","), key_type, data))
    # A revoked key is never trusted, even where another line lists it.
    known.trusted = [entry for entry in known.trusted if f"{entry[1]} {entry[2]}" not in known.revoked]
    return known
