"""Artifacts: files a device needs from outside (the k3s system extension), pinned by sha256 in a lock file.

The lock file sits next to the blueprint (`<blueprint>.lock.json`, committed, like `.terraform.lock.hcl`).
`umhctl lock` records each artifact's hash from the publisher's SHA256SUMS (the Flatcar sysext bakery publishes
one per release, flatcar/sysext-bakery release.sh), or by downloading it; `umhctl fetch` fills the operator's
local cache and verifies every hash. Apply uploads images from that cache and checks the hash on the device, so
a plant needs no internet: fetch at the office, apply at the plant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from umhctl.errors import UmhctlError
from umhctl.fsutil import write_atomic, xdg_dir

if TYPE_CHECKING:
    from umhctl.blueprint.model import SiteBlueprint

# The bakery's redirector (flatcar/sysext-bakery tools/http-url-rewrite-server/Caddyfile): versioned image names
# and per-release SHA256SUMS resolve to the GitHub release assets.
PUBLISHER = "https://extensions.flatcar.org/extensions"
ARCH = "x86-64"  # the bakery's name for amd64 (its %a), what industrial PCs run
EXTENSIONS_DIR = "/opt/extensions"
LOCK_FORMAT = "1"
DOWNLOAD_TIMEOUT = 60.0  # seconds without progress


@dataclass(frozen=True)
class Artifact:
    """A system extension image of the bakery, by name and version."""

    name: str
    version: str
    arch: str = ARCH

    @property
    def filename(self) -> str:
        # k3s keeps upstream's '+' (k3s-v1.32.2+k3s1-x86-64.raw): the bakery's k3s.sysext/create.sh version pattern.
        return f"{self.name}-{self.version}-{self.arch}.raw"

    @property
    def directory(self) -> str:
        return f"{EXTENSIONS_DIR}/{self.name}"

    @property
    def device_path(self) -> str:
        return f"{self.directory}/{self.filename}"

    @property
    def link(self) -> str:
        """systemd-sysext merges what /etc/extensions/<name>.raw points at."""
        return f"/etc/extensions/{self.name}.raw"

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.filename}"

    def sums_url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.name}-{self.version}/SHA256SUMS"


def needed(bp: SiteBlueprint) -> list[Artifact]:
    """What every device of the site needs: the k3s system extension of the pinned version, and Tailscale's
    when the site reaches its devices through a tailnet."""
    tailnet = bp.access.enabled_tailscale
    return [Artifact("k3s", bp.versions.k3s), *([Artifact("tailscale", tailnet.version)] if tailnet else [])]


def base_url(bp: SiteBlueprint) -> str:
    return bp.artifacts.mirror or PUBLISHER


@dataclass(frozen=True)
class Pin:
    sha256: str
    size: int | None  # known once downloaded
    source: str  # where the hash was read from (a SHA256SUMS, or the image itself)

    def to_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "size": self.size, "source": self.source}


@dataclass
class LockFile:
    path: Path
    pins: dict[str, Pin]  # by artifact file name

    @classmethod
    def load(cls, path: Path) -> LockFile:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError) as exc:
            raise UmhctlError(f"{path}: not a umhctl lock file ({exc})") from None
        if not isinstance(data, dict) or data.get("format_version") != LOCK_FORMAT:
            raise UmhctlError(f"{path}: not a umhctl lock file (format {data.get('format_version')!r})")
        try:
            pins = {
                name: Pin(str(entry["sha256"]), entry.get("size"), str(entry["source"]))
                for name, entry in data["artifacts"].items()
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise UmhctlError(f"{path}: malformed lock file ({exc})") from None
        return cls(path, pins)

    def save(self) -> None:
        data = {
            "format_version": LOCK_FORMAT,
            "comment": "Written by `umhctl lock`: the sha256 of every artifact the site's devices need. Commit it.",
            "artifacts": {name: pin.to_dict() for name, pin in sorted(self.pins.items())},
        }
        write_atomic(self.path, json.dumps(data, indent=2) + "\n")

    def pin(self, artifact: Artifact) -> Pin | None:
        return self.pins.get(artifact.filename)


def lock_path(blueprint: Path) -> Path:
    """`site.yaml` -> `site.lock.json`, next to it (two blueprints in one directory keep two lock files)."""
    return blueprint.with_name(blueprint.stem + ".lock.json")


@dataclass(frozen=True)
class ArtifactSource:
    """Where a site's artifacts come from: a base URL and the lock pinning them. The blueprint's own, or the
    simulated site's stand-in publisher and its own lock."""

    base: str
    lock: LockFile

    def pin(self, artifact: Artifact) -> Pin | None:
        return self.lock.pin(artifact)

    def require(self, artifact: Artifact) -> Pin:
        pin = self.pin(artifact)
        if pin is None:
            raise UmhctlError(
                f"{artifact.filename} is not pinned in {self.lock.path}",
                hint="record its hash with `umhctl lock` (it reads the publisher's or your mirror's SHA256SUMS)",
            )
        return pin


def site_source(bp: SiteBlueprint, blueprint: Path) -> ArtifactSource:
    return ArtifactSource(base_url(bp), LockFile.load(lock_path(blueprint)))


# -- network (lock and fetch only) ------------------------------------------------------------------------------


@contextlib.contextmanager
def _open(url: str) -> Iterator[IO[bytes]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            yield response
    except urllib.error.HTTPError as exc:
        raise UmhctlError(f"{url}: {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UmhctlError(f"cannot download {url}: {reason}") from None


def _not_found(error: UmhctlError) -> bool:
    return ": 404 " in str(error)


def resolve(artifact: Artifact, base: str, *, download: bool = False) -> Pin:
    """The artifact's hash from the publisher's SHA256SUMS; with `download`, by hashing the image when there is
    no SHA256SUMS."""
    sums = artifact.sums_url(base)
    try:
        with _open(sums) as response:
            text = response.read(1 << 20).decode("utf-8", "replace")
    except UmhctlError as exc:
        if not (download and _not_found(exc)):
            raise UmhctlError(
                f"cannot read the hash of {artifact.filename}: {exc}",
                hint="check the mirror URL (artifacts.mirror), or pass --download to hash the image itself",
            ) from None
    else:
        # GNU sha256sum format (the bakery's lib/generate.sh): "<hex>  <file name>", "*" before binary names.
        for line in text.splitlines():
            digest, _, name = line.strip().partition("  ")
            if name.lstrip("*") == artifact.filename and len(digest) == 64:
                return Pin(digest.lower(), None, sums)
        if not download:
            raise UmhctlError(
                f"{sums} lists no {artifact.filename}",
                hint="is the version published? With --download, umhctl hashes the image itself",
            )
    url = artifact.url(base)
    digest, size = _download(url, None)
    return Pin(digest, size, url)


def _download(url: str, target: Path | None) -> tuple[str, int]:
    """Stream `url` into `target` (or nowhere), hashing it; (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    with _open(url) as response, open(target, "wb") if target else contextlib.nullcontext() as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
    return digest.hexdigest(), size


class ArtifactCache:
    """The operator's verified copies, by sha256: `$XDG_CACHE_HOME/umhctl/artifacts/sha256/<hex>`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or xdg_dir("cache") / "umhctl" / "artifacts" / "sha256"

    def path(self, pin: Pin) -> Path:
        return self.directory / pin.sha256

    def has(self, pin: Pin) -> bool:
        path = self.path(pin)
        return path.is_file() and (pin.size is None or path.stat().st_size == pin.size)

    def verify(self, artifact: Artifact, pin: Pin) -> None:
        """Hash the cached copy again (a cache is a disk like any other)."""
        actual = sha256_file(self.path(pin))
        if actual != pin.sha256:
            self.path(pin).unlink(missing_ok=True)
            raise UmhctlError(
                f"hash mismatch for {artifact.filename} in the cache: expected sha256 {pin.sha256}, "
                f"found {actual}; the broken copy was removed",
                hint="run `umhctl fetch` again",
            )

    def fetch(self, artifact: Artifact, pin: Pin, base: str) -> int:
        """Download into the cache and verify; returns the size. A mismatch keeps nothing."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{artifact.filename}.")
        os.close(fd)
        url = artifact.url(base)
        try:
            actual, size = _download(url, Path(tmp))
            if actual != pin.sha256:
                raise UmhctlError(
                    f"hash mismatch for {artifact.filename} from {url}: expected sha256 {pin.sha256} "
                    f"(the lock file), got {actual}",
                    hint="the mirror serves another file than the one locked: check the mirror, or if the "
                    "version was republished on purpose, run `umhctl lock` and review the change",
                )
            if pin.size is not None and size != pin.size:
                raise UmhctlError(f"{artifact.filename} from {url}: expected {pin.size} bytes, got {size}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path(pin))
            return size
        finally:
            Path(tmp).unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
