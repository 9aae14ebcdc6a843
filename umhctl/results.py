"""Typed results of the public API (umhctl.api): one per command, each with `to_dict()` for the JSON view.

The dicts are the JSON contract (`format_version` "1", added by the view); text views read the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umhctl.diagnostics import Diagnostic

if TYPE_CHECKING:  # annotations only: `validate` imports these results without planning machinery
    from umhctl.phases import Outcome
    from umhctl.plan.model import Plan


@dataclass(frozen=True)
class ValidateResult:
    file: str
    valid: bool
    diagnostics: list[Diagnostic]
    counts: dict[str, int] = field(default_factory=dict)  # devices, IO-Link masters, sensors, dashboards

    command = "validate"

    @property
    def ok(self) -> bool:
        return self.valid

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "valid": self.valid,
            "counts": self.counts,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }


@dataclass(frozen=True)
class RenderedDevice:
    device: str
    path: Path
    files: int
    links: int


@dataclass(frozen=True)
class RenderResult:
    out: Path
    redacted: bool
    devices: list[RenderedDevice]
    known_hosts: Path | None = None  # the site's known_hosts, when --update-known-hosts was asked for
    known_hosts_updated: list[str] = field(default_factory=list)  # devices whose key was (re)recorded

    command = "render"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "redacted": self.redacted,
            "devices": [
                {"device": d.device, "path": str(d.path), "files": d.files, "links": d.links} for d in self.devices
            ],
            "known_hosts_updated": self.known_hosts_updated,
        }


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    saved_to: Path | None = None

    command = "plan"

    @property
    def ok(self) -> bool:
        return not self.plan.has_errors

    def to_dict(self) -> dict[str, Any]:
        return self.plan.to_dict()


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    outcomes: list[Outcome]
    cancelled: bool = False
    retry_hint: str | None = None  # the command that reruns only the failed devices
    replan_hint: str | None = None  # after a saved plan failed somewhere: the command that makes a new one
    message: str | None = None  # why nothing was done, when that is the whole answer
    seconds: float = 0.0  # wall time of the whole apply

    command = "apply"

    @property
    def ok(self) -> bool:
        return not self.cancelled and not self.plan.has_errors and all(o.ok for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "cancelled": self.cancelled,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "results": [o.to_dict() for o in self.outcomes],
        }


@dataclass(frozen=True)
class Media:
    directory: Path
    install_command: str


@dataclass(frozen=True)
class ResetResult:
    device: str
    outcome: Outcome | None  # None: only install media were written
    media: Media | None = None
    new_host_key: str | None = None  # the public key a rotation gave the device
    rotation_undone: bool = False  # the reset failed before its point of no return: the old key stays
    cancelled: bool = False

    command = "reset device"

    @property
    def ok(self) -> bool:
        return not self.cancelled and (self.outcome is None or self.outcome.ok)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"device": self.device, "ok": self.ok, "cancelled": self.cancelled}
        if self.media is not None:
            data["media"] = str(self.media.directory)
            data["install_command"] = self.media.install_command
        if self.outcome is not None:
            data.update(self.outcome.to_dict())
        data["new_host_key"] = self.new_host_key
        data["rotation_undone"] = self.rotation_undone
        return data


@dataclass(frozen=True)
class LockedArtifact:
    name: str
    sha256: str
    source: str
    change: str  # "added", "changed" or "unchanged"


@dataclass(frozen=True)
class LockResult:
    lock_file: Path
    artifacts: list[LockedArtifact]
    removed: list[str]
    committed: bool = True  # the site's lock file (commit it), not a simulated site's own

    command = "lock"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "lock_file": str(self.lock_file),
            "artifacts": [
                {"name": a.name, "sha256": a.sha256, "source": a.source, "change": a.change} for a in self.artifacts
            ],
            "removed": self.removed,
        }


@dataclass(frozen=True)
class FetchedArtifact:
    name: str
    sha256: str
    size: int
    status: str  # "cached" (verified again) or "downloaded"


@dataclass(frozen=True)
class FetchResult:
    cache: Path
    artifacts: list[FetchedArtifact]

    command = "fetch"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "cache": str(self.cache),
            "artifacts": [
                {"name": a.name, "sha256": a.sha256, "size": a.size, "status": a.status} for a in self.artifacts
            ],
        }
