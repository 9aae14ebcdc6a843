"""Facts: what is really on a device, read in one remote command.

The device has no Python (Flatcar ships none), so the probe is a bash script using coreutils only. It reports
every managed path (the desired ones and those the last apply left: the record's list) with its type, mode,
owner and sha256 — never the file contents — plus the applied-state record, the lock and unit states.
Parsing is separate from running, so both are tested without a device.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from umhctl.errors import UmhctlError

STATE_DIR = "/var/lib/umhctl"
RECORD = f"{STATE_DIR}/applied.json"
MANAGED_LIST = f"{STATE_DIR}/managed.list"  # one path per line: what the record owns, readable by the probe
LOCK_DIR = f"{STATE_DIR}/lock.d"

# A few processes per probe, not a few per path: `find -printf` reports type, mode, owner and link target of
# every path at once, and one sha256sum hashes every regular file. Paths never contain whitespace or control
# characters (the blueprint refuses them), so they travel as plain text fields.
_PROBE = r"""
set -u
paths=(%s)
if [ -f %s ]; then mapfile -t -O "${#paths[@]}" paths < %s; fi
declare -A seen=(); unique=()
for p in "${paths[@]}"; do [ -n "${seen[$p]+x}" ] || { seen[$p]=1; unique+=("$p"); }; done
paths=("${unique[@]}")
echo P
((${#paths[@]})) && find "${paths[@]}" -maxdepth 0 -printf '%%p	%%y	%%m	%%u	%%g	%%l
' 2>/dev/null
echo S
files=()
for p in "${paths[@]}"; do [ -f "$p" ] && [ ! -L "$p" ] && files+=("$p"); done
((${#files[@]})) && sha256sum -- "${files[@]}"
echo R
[ -f %s ] && base64 -w0 < %s && echo
echo K
[ -d %s ] && base64 -w0 < %s/info 2>/dev/null && echo
echo U
units=(%s)
# One line per unit, even when systemctl prints nothing for one (is-enabled of an unknown unit).
for u in "${units[@]}"; do
  active=$(systemctl is-active -- "$u" 2>/dev/null)
  enabled=$(systemctl is-enabled -- "$u" 2>/dev/null)
  printf '%%s\t%%s\t%%s\n' "$u" "$active" "$enabled"
done
echo H
hostname
echo E
"""


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
class Facts:
    paths: dict[str, PathFact]
    record: dict[str, Any] | None
    lock: str | None
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (is-active, is-enabled)
    hostname: str = ""

    def fingerprint(self) -> str:
        """What a saved plan was made against: paths and record (not the lock, which apply itself takes)."""
        data = {
            "paths": {p: vars(f) for p, f in sorted(self.paths.items())},
            "record": self.record,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def path_states(self, secret: set[str], seal: Callable[[str], str]) -> dict[str, str]:
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

    def path(self, path: str) -> PathFact:
        return self.paths.get(path, PathFact("absent"))


def probe_script(paths: list[str], units: list[str]) -> str:
    """The bash script that prints the facts of `paths` (and of what the last apply managed)."""
    return _PROBE % (
        " ".join(shlex.quote(p) for p in paths),
        MANAGED_LIST,
        MANAGED_LIST,
        RECORD,
        RECORD,
        LOCK_DIR,
        LOCK_DIR,
        " ".join(shlex.quote(u) for u in units),
    )


_KINDS = {"f": "file", "l": "link", "d": "directory"}


def _text(b64: str) -> str:
    return base64.b64decode(b64, validate=True).decode("utf-8", "surrogateescape")


def parse_facts(output: str, device: str) -> Facts:
    """Facts from the probe's output; a truncated or garbled answer is an error, never a guess."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line in ("P", "S", "R", "K", "U", "H", "E"):
            current = sections.setdefault(line, [])
        elif current is not None:
            current.append(line)
        else:
            raise UmhctlError(f"{device}: cannot read the device's state: unexpected output {line[:60]!r}")
    if "E" not in sections:
        raise UmhctlError(f"{device}: the state probe ended early (connection lost or out of space?)")
    try:
        hashes = {}
        for line in sections.get("S", []):
            digest, path = line.split("  ", 1)
            hashes[path] = digest
        paths: dict[str, PathFact] = {}
        for line in sections.get("P", []):
            path, kind, mode, owner, group, target = line.split("\t")
            if kind == "f":
                paths[path] = PathFact("file", int(mode, 8), owner, group, hashes.get(path))
            elif kind == "l":
                paths[path] = PathFact("link", target=target)
            else:
                paths[path] = PathFact("other", other=_KINDS.get(kind, f"file of type {kind}"))
        record_lines = [line for line in sections.get("R", []) if line]
        record = json.loads(_text(record_lines[0])) if record_lines else None
        lock_lines = sections.get("K", [])
        lock = _text(lock_lines[0]) if lock_lines and lock_lines[0] else ("" if lock_lines else None)
        units = {}
        for line in sections.get("U", []):
            name, active, enabled = (line.split("\t") + ["", ""])[:3]
            units[name] = (active, enabled)
        hostname = (sections.get("H") or [""])[0]
    except (ValueError, IndexError, binascii.Error, json.JSONDecodeError) as exc:
        raise UmhctlError(f"{device}: cannot read the device's state: {exc}") from None
    return Facts(paths, record, lock, units, hostname)
