"""A device's desired state as plain data: files and links, and which systemd units restart when they change.

Rendering builds one DesiredState per device. Ignition delivers it on first boot; SSH apply converges to it on
day 2. It is a pure function of the blueprint and the secret store: no timestamps, no randomness, sorted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from umhctl.errors import UmhctlError


@dataclass(frozen=True)
class File:
    path: str  # absolute path on the device
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    secret: bool = False  # holds a secret value: mode 0600, shown as (sensitive), redacted on request
    restarts: tuple[str, ...] = ()  # units to restart when this file changes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class Link:
    path: str
    target: str
    restarts: tuple[str, ...] = ()  # units to restart when the link changes (a new system extension)


@dataclass(frozen=True)
class ArtifactFile:
    """A large file from outside (a system extension image), pinned by sha256 in the lock file.

    Apply uploads it from the operator's verified cache and checks its hash on the device before it is used;
    with `url`, first boot fetches it instead (Ignition verifies the same hash)."""

    path: str
    name: str  # the artifact's file name: what the lock pins and the cache holds
    sha256: str | None  # None: not pinned yet (`umhctl lock`); plan refuses it
    size: int | None = None
    url: str | None = None
    restarts: tuple[str, ...] = ()
    # First boot links it although it does not bring it: a reset in place keeps the image on the device, and the
    # rebuilt system needs it before anything can reach it (the tailnet's).
    boot_link: bool = False


@dataclass
class DesiredState:
    device: str
    files: list[File] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    artifacts: list[ArtifactFile] = field(default_factory=list)

    def add(self, *files: File) -> None:
        self.files.extend(files)

    def sorted(self) -> DesiredState:
        paths = [f.path for f in self.files] + [link.path for link in self.links] + [a.path for a in self.artifacts]
        duplicates = {p for p in paths if paths.count(p) > 1}
        if duplicates:
            # Two renderers claiming one path is a bug in umhctl or a blueprint 'files' entry colliding with ours.
            raise UmhctlError(f"{self.device}: more than one definition for {', '.join(sorted(duplicates))}")
        # A path that is also the directory of another would make the device (and a render's rootfs) hold a file
        # and a directory in one place: validate refuses such blueprints, and render never gets halfway.
        taken = set(paths)
        nested = [
            (parent, path)
            for path in sorted(taken)
            for parent in (path[:i] for i in range(1, len(path)) if path[i] == "/")
            if parent in taken
        ]
        if nested:
            a, b = nested[0]
            raise UmhctlError(
                f"{self.device}: '{a}' is a file, but '{b}' needs it to be a directory",
                hint="one of them is a blueprint 'files' entry: pick another path for it",
            )
        return DesiredState(
            self.device,
            sorted(self.files, key=lambda f: f.path),
            sorted(self.links, key=lambda link: link.path),
            sorted(self.artifacts, key=lambda a: a.path),
        )

    def file(self, path: str) -> File:
        return next(f for f in self.files if f.path == path)

    def fingerprint(self, seal: Callable[[str], str]) -> str:
        """Identifies this desired state in the applied-state record (secret-bearing files enter it sealed)."""
        data = json.dumps(self.to_data(seal), sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def to_data(self, seal: Callable[[str], str] | None = None) -> dict[str, Any]:
        """The plan input: no contents; secret-bearing files get a keyed digest (`seal`), or none."""
        return {
            "device": self.device,
            "files": [
                {
                    "path": f.path,
                    "mode": f"{f.mode:04o}",
                    "owner": f.owner,
                    "group": f.group,
                    "sha256": (seal(f.sha256) if seal else None) if f.secret else f.sha256,
                    "size": len(f.content),
                    "secret": f.secret,
                    "restarts": list(f.restarts),
                }
                for f in self.files
            ],
            "links": [{"path": link.path, "target": link.target} for link in self.links],
            "artifacts": [{"path": a.path, "name": a.name, "sha256": a.sha256, "size": a.size} for a in self.artifacts],
        }
