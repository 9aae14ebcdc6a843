"""Facts: what is really on a device, as plain data. The planner reads them; the remote gate produces them.

Both sides import these types from here, so plan and remote never import each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STATE_DIR = "/var/lib/umhctl"
RECORD = f"{STATE_DIR}/applied.json"
MANAGED_LIST = f"{STATE_DIR}/managed.list"  # one path per line: what the record owns, readable by the probe
LOCK_DIR = f"{STATE_DIR}/lock.d"
# The sha256 of managed files with the stamp (size, inode, mtime, ctime) each had when hashed: a probe hashes a file
# again only when its stamp changed (remote.scripts._HASH). Root-only: rewritten by apply under its lock, added to
# by other probes.
SUMS = f"{STATE_DIR}/sums"
# One directory per line that apply created for a managed path: the only directories umhctl ever removes (when
# they are left empty). A directory Ignition, the OS or an admin made is never on it.
CREATED_DIRS = f"{STATE_DIR}/created-dirs.list"
# The name of every temp file umhctl stages (remote.scripts._temp: TEMP_PREFIX, the run's hex token, an index):
# an interrupted apply's leftovers are recognised by this exact shape and nothing else is ever taken for one.
TEMP_NAME = re.compile(r"\.umhctl-[0-9a-f]+-[0-9]+\.tmp")

Seal = Callable[[str], str]  # text derived from a secret -> keyed digest (HMAC with the local seal key)


@dataclass(frozen=True)
class PathFact:
    kind: str  # "file", "link", "absent" or "other" (a directory or device where a file belongs)
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    sha256: str | None = None
    target: str | None = None
    other: str | None = None  # what stands there, for "other"


@dataclass(frozen=True)
class LockFact:
    """The device lock as the probe found it (remote.scripts._LOCK)."""

    owner: str  # the owner file's name ("token.<run token>", "info" of old versions) or "" when there is none
    age: int  # seconds since the owner file (or the bare directory) last changed
    holder: str  # who holds it, as its run described itself ("" when unknown)

    @property
    def token(self) -> str:
        return self.owner.removeprefix("token.") if self.owner.startswith("token.") else ""


@dataclass(frozen=True)
class Facts:
    paths: dict[str, PathFact]
    record: dict[str, Any] | None  # the applied-state record the last apply wrote (root-only on the device)
    units: dict[str, str] = field(default_factory=dict)  # name -> its state (systemctl is-active)
    lock: LockFact | None = None  # a held device lock (not part of the fingerprint: taking it changes it)
    leftovers: tuple[str, ...] = ()  # temp files of interrupted applies in the directories of managed paths
    created_dirs: dict[str, int] = field(default_factory=dict)  # directories apply created -> entries in them

    def path(self, path: str) -> PathFact:
        return self.paths.get(path, PathFact("absent"))

    def recorded_files(self) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = (self.record or {}).get("files", {})
        return files

    def recorded_links(self) -> dict[str, str]:
        links: dict[str, str] = (self.record or {}).get("links", {})
        return links

    def path_states(self, secret: set[str], seal: Seal) -> dict[str, str]:
        """A short description of each path's state: what a stale-plan message compares (secret files sealed)."""
        states = {}
        for path, fact in sorted(self.paths.items()):
            if fact.kind == "file":
                digest = seal(fact.sha256 or "") if path in secret else fact.sha256
                states[path] = f"file {fact.mode or 0:04o} {fact.owner}:{fact.group} {digest}"
            elif fact.kind == "link":
                states[path] = f"link -> {fact.target}"
            else:
                states[path] = fact.other or fact.kind
        return states

    def fingerprint(self, secret: set[str], seal: Seal) -> str:
        """What a saved plan was made against: every path's state and the record.

        The record holds plain hashes of secret-bearing files, so the digest over it is keyed (sealed) too:
        nothing in a plan file lets a weak secret be guessed offline.
        """
        data = {"paths": self.path_states(secret, seal), "record": self.record}
        return seal(hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest())
