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
from dataclasses import dataclass, field
from typing import Any

from umhctl.errors import UmhctlError

STATE_DIR = "/var/lib/umhctl"
RECORD = f"{STATE_DIR}/applied.json"
MANAGED_LIST = f"{STATE_DIR}/managed.list"  # one path per line: what the record owns, readable by the probe
LOCK_DIR = f"{STATE_DIR}/lock.d"

_PROBE = r"""
set -u
b64() { printf '%s' "$1" | base64 -w0; }
probe() {
  if [ -L "$1" ]; then
    printf 'L\t%s\t%s\n' "$(b64 "$1")" "$(readlink -- "$1" | tr -d '\n' | base64 -w0)"
  elif [ -f "$1" ]; then
    printf 'F\t%s\t%s\t%s\n' "$(b64 "$1")" "$(stat -c $'%a\t%U\t%G' -- "$1")" "$(sha256sum -- "$1" | cut -d' ' -f1)"
  elif [ -e "$1" ]; then
    printf 'O\t%s\t%s\n' "$(b64 "$1")" "$(stat -c '%F' -- "$1" | base64 -w0)"
  else
    printf 'A\t%s\n' "$(b64 "$1")"
  fi
}
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

    def path_states(self) -> dict[str, str]:
        """A short description of each path's state: what a stale-plan message compares."""
        states = {}
        for path, fact in sorted(self.paths.items()):
            if fact.kind == "file":
                states[path] = f"file {fact.mode or 0:04o} {fact.owner}:{fact.group} {fact.sha256}"
            elif fact.kind == "link":
                states[path] = f"link -> {fact.target}"
            else:
                states[path] = fact.other or fact.kind
        return states

    def path(self, path: str) -> PathFact:
        return self.paths.get(path, PathFact("absent"))


def probe_script(paths: list[str], units: list[str]) -> str:
    """The bash script that prints the facts of `paths` (and of what the last apply managed)."""
    lines = [_PROBE]
    if paths:
        lines.append("for p in " + " ".join(shlex.quote(p) for p in paths) + '; do probe "$p"; done')
    lines.append(f'if [ -f {MANAGED_LIST} ]; then while IFS= read -r p; do probe "$p"; done < {MANAGED_LIST}; fi')
    lines.append(f"if [ -f {RECORD} ]; then printf 'R\\t%s\\n' \"$(base64 -w0 < {RECORD})\"; fi")
    lines.append(
        f"if [ -d {LOCK_DIR} ]; then printf 'K\\t%s\\n' \"$(cat {LOCK_DIR}/info 2>/dev/null | base64 -w0)\"; fi"
    )
    for unit in units:
        q = shlex.quote(unit)
        lines.append(
            f"printf 'U\\t%s\\t%s\\t%s\\n' {q} \"$(systemctl is-active -- {q} 2>/dev/null)\" "
            f'"$(systemctl is-enabled -- {q} 2>/dev/null)"'
        )
    lines.append("printf 'H\\t%s\\n' \"$(hostname)\"")
    lines.append("printf 'E\\tend\\n'")
    return "\n".join(lines) + "\n"


def _text(b64: str) -> str:
    return base64.b64decode(b64, validate=True).decode("utf-8", "surrogateescape")


def parse_facts(output: str, device: str) -> Facts:
    """Facts from the probe's output; a truncated or garbled answer is an error, never a guess."""
    paths: dict[str, PathFact] = {}
    record: dict[str, Any] | None = None
    lock: str | None = None
    units: dict[str, tuple[str, str]] = {}
    hostname = ""
    complete = False
    try:
        for line in output.splitlines():
            kind, *rest = line.split("\t")
            if kind == "F":
                mode, owner, group = rest[1:4]
                paths[_text(rest[0])] = PathFact("file", int(mode, 8), owner, group, rest[-1])
            elif kind == "L":
                paths[_text(rest[0])] = PathFact("link", target=_text(rest[1]))
            elif kind == "O":
                paths[_text(rest[0])] = PathFact("other", other=_text(rest[1]))
            elif kind == "A":
                paths[_text(rest[0])] = PathFact("absent")
            elif kind == "R":
                record = json.loads(_text(rest[0]))
            elif kind == "K":
                lock = _text(rest[0]) if rest[0] else ""
            elif kind == "U":
                units[rest[0]] = (rest[1], rest[2])
            elif kind == "H":
                hostname = rest[0]
            elif kind == "E":
                complete = True
            else:
                raise ValueError(f"unexpected line {line[:60]!r}")
    except (ValueError, IndexError, binascii.Error, json.JSONDecodeError) as exc:
        raise UmhctlError(f"{device}: cannot read the device's state: {exc}") from None
    if not complete:
        raise UmhctlError(f"{device}: the state probe ended early (connection lost or out of space?)")
    return Facts(paths, record, lock, units, hostname)
