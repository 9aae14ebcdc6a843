"""Which commit runs where, recorded in the site repository: one ref per device, `refs/umhctl/applied/<site>/<device>`.

Each successful apply or reset moves the device's ref to the commit it applied (`git update-ref --create-reflog`,
the message saying who, and whether the working tree was dirty). The ref is an ordinary git ref: it can be
pushed and fetched (`git push origin 'refs/umhctl/*:refs/umhctl/*'`), so a colleague sees what runs where. The
reflog is the history: who applied which commit when. git keeps reflogs local (they are not pushed), so each
clone's history holds the applies made from it; the device's own record (/var/lib/umhctl/applied.json, read by
`history --live`) says what it last got from anyone.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REF_PREFIX = "refs/umhctl/applied"
_SEP = "\x1f"


def _git(directory: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(directory), *args], input=stdin, capture_output=True, text=True, timeout=30)


def ref_name(site: str, device: str) -> str:
    return f"{REF_PREFIX}/{site}/{device}"


def record_applied(
    blueprint: Path, site: str, devices: Sequence[str], commit: str, who: str, dirty: bool, verb: str
) -> list[str]:
    """Move each device's ref to `commit`, with a reflog entry; returns the devices whose ref could not be moved
    (not in git, a ref busy). One git process for the fleet (an update-ref transaction), not one per device;
    if the transaction fails as a whole, each ref is tried on its own so that one busy ref costs only its own."""
    if not devices:
        return []
    message = f"{who} {verb} {commit[:12]}" + (" (with uncommitted changes)" if dirty else "")
    directory = blueprint.resolve().parent
    update = ["update-ref", "--create-reflog", "-m", message]
    commands = "".join(f"update {ref_name(site, d)} {commit}\n" for d in devices)
    if _git(directory, *update, "--stdin", stdin=commands).returncode == 0:
        return []
    return [d for d in devices if _git(directory, *update, ref_name(site, d), commit).returncode != 0]


@dataclass(frozen=True)
class Applied:
    commit: str
    subject: str  # the commit's subject line
    when: str  # ISO 8601, from the reflog
    who: str  # who applied, as umhctl recorded it
    verb: str  # "applied" or "reset"
    dirty: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "subject": self.subject,
            "when": self.when,
            "who": self.who,
            "verb": self.verb,
            "dirty": self.dirty,
        }


@dataclass
class DeviceHistory:
    device: str
    ref: str
    entries: list[Applied]  # newest first
    live: dict[str, Any] | None = None  # --live: what the device's own record says (or why it could not be read)
    live_match: bool | None = None  # --live: does the device's record name the ref's commit?
    notes: list[str] = field(default_factory=list)

    @property
    def current(self) -> Applied | None:
        return self.entries[0] if self.entries else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "ref": self.ref,
            "applied": [e.to_dict() for e in self.entries],
            "live": self.live,
            "live_match": self.live_match,
        }


# "<who> applied|reset <commit> [(with uncommitted changes)]"; before the refs were moved in one transaction each
# message also ended in " to <device>".
_MESSAGE = re.compile(r"(?P<who>.*) (?P<verb>applied|reset) [0-9a-f]{7,40}(?: to \S+)?")


def _parse_message(message: str) -> tuple[str, str, bool]:
    """(who, verb, dirty) from a reflog message `record_applied` wrote."""
    dirty = message.endswith(" (with uncommitted changes)")
    body = message.removesuffix(" (with uncommitted changes)")
    found = _MESSAGE.fullmatch(body)
    if found is None:
        return body, "updated", dirty
    return found["who"], found["verb"], dirty


def device_history(blueprint: Path, site: str, device: str) -> DeviceHistory:
    ref = ref_name(site, device)
    directory = blueprint.resolve().parent
    done = _git(directory, "log", "-g", "--date=iso-strict", f"--format=%H{_SEP}%gs{_SEP}%gd{_SEP}%s", ref, "--")
    entries = []
    if done.returncode == 0:
        for line in done.stdout.splitlines():
            commit, message, selector, subject = line.split(_SEP, 3)
            when = selector[selector.find("@{") + 2 : -1] if "@{" in selector else ""
            who, verb, dirty = _parse_message(message)
            entries.append(Applied(commit, subject, when, who, verb, dirty))
    return DeviceHistory(device, ref, entries)


def commits_behind(blueprint: Path, commit: str, head: str = "HEAD") -> int | None:
    """How many commits `head` has that `commit` lacks (None: unknown here, e.g. not fetched)."""
    done = _git(blueprint.resolve().parent, "rev-list", "--count", f"{commit}..{head}")
    return int(done.stdout.strip()) if done.returncode == 0 else None
