"""`umhctl status` and `umhctl history --live`: what each device reports, in one SSH round trip per device.

status reuses plan's phases (connect, probe, plan) with a probe that also asks for the OS version, the k3s
service and the failed units (umhctl.remote.scripts, section X), and judges each device: healthy only when it
is reachable, holds what HEAD describes (nothing pending; a commit that changes nothing on a device leaves it
"behind" harmlessly), applied without uncommitted changes, has no drift, no failed unit, a running k3s, and the
Flatcar version the blueprint pins. Cluster health (the Kubernetes API) is
not part of it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umhctl.converge import ContentCache, DeviceRun, Phases, probed
from umhctl.errors import UmhctlError

if TYPE_CHECKING:
    from umhctl.appliedrefs import DeviceHistory
    from umhctl.facts import Facts
    from umhctl.hints import Hints
    from umhctl.inventory import Inventory
    from umhctl.plan.model import DevicePlan
    from umhctl.remote.gate import DeviceStatus

K3S_SERVICE = "k3s.service"  # umhctl.render.system runs k3s as this unit on every role


class StatusPhases(Phases):
    """plan's phases, timing the connection and asking the status questions in the probe's round trip."""

    def __init__(self, info: dict[str, Any], hints: Hints) -> None:
        super().__init__(info, ContentCache(), hints, command="status")
        self.latency: dict[str, float] = {}
        self.status: dict[str, DeviceStatus] = {}
        self.facts: dict[str, Facts] = {}

    def _connect(self, run: DeviceRun) -> None:
        started = time.monotonic()
        super()._connect(run)
        self.latency[run.device] = (time.monotonic() - started) * 1000

    def _probe(self, run: DeviceRun) -> None:
        assert run.remote is not None
        run.facts, self.status[run.device] = run.remote.status_probe(*probed(run.target.desired), [K3S_SERVICE])
        self.facts[run.device] = run.facts


@dataclass
class DeviceHealth:
    device: str
    reachable: bool
    error: str | None = None
    latency_ms: float | None = None
    applied_commit: str | None = None
    applied_dirty: bool | None = None
    applied_by: str | None = None
    applied_at: str | None = None
    behind: int | None = None  # commits HEAD has that the applied commit lacks
    drift: int = 0  # paths changed on the device since umhctl applied them
    pending: int = 0  # other changes apply would make
    failed_units: list[str] = field(default_factory=list)
    k3s: dict[str, dict[str, Any]] = field(default_factory=dict)
    os_version: str | None = None
    pinned_version: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "healthy": self.healthy,
            "reachable": self.reachable,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 1) if self.latency_ms is not None else None,
            "applied": {
                "commit": self.applied_commit,
                "dirty": self.applied_dirty,
                "by": self.applied_by,
                "at": self.applied_at,
                "commits_behind": self.behind,
            },
            "drift": self.drift,
            "pending_changes": self.pending,
            "failed_units": self.failed_units,
            "k3s": self.k3s,
            "flatcar": {"version": self.os_version, "pinned": self.pinned_version},
            "problems": self.problems,
        }


@dataclass(frozen=True)
class StatusResult:
    head: str | None
    devices: list[DeviceHealth]

    command = "status"

    @property
    def ok(self) -> bool:
        return all(d.healthy for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head, "healthy": self.ok, "devices": [d.to_dict() for d in self.devices]}


def judge(
    device: str,
    plan: DevicePlan,
    phases: StatusPhases,
    blueprint: Path,
    head: str | None,
    pinned: str,
) -> DeviceHealth:
    from umhctl.appliedrefs import commits_behind

    health = DeviceHealth(device, reachable=plan.error is None, pinned_version=pinned)
    if plan.error is not None:
        health.error = plan.error
        health.problems.append(f"unreachable: {plan.error}")
        return health
    health.latency_ms = phases.latency.get(device)
    facts, status = phases.facts[device], phases.status[device]
    record = facts.record or {}
    stamp = record.get("blueprint") or {}
    health.applied_commit, health.applied_dirty = stamp.get("commit"), stamp.get("dirty")
    health.applied_by, health.applied_at = record.get("applied_by"), record.get("applied_at")
    health.drift = sum(1 for c in plan.changes if c.drift)
    health.pending = sum(1 for c in plan.changes if not c.drift and c.kind in ("file", "link", "artifact"))
    health.failed_units = sorted(status.failed_units)
    health.os_version = status.os_version
    health.k3s = {unit: {"active": state, "running": running} for unit, (state, running) in status.k3s.items()}
    problems = health.problems
    if not record:
        problems.append("never applied by umhctl")
    elif health.applied_commit is None:
        problems.append("applied from outside git (no commit recorded)")
    elif head is not None:
        health.behind = commits_behind(blueprint, health.applied_commit, head)
        if health.behind is None:
            problems.append(f"runs commit {health.applied_commit[:12]}, which this repository does not have (fetch?)")
    if health.applied_dirty:
        problems.append("applied with uncommitted changes")
    if health.drift:
        problems.append(f"{health.drift} path{'s' if health.drift != 1 else ''} drifted (changed on the device)")
    if health.pending:
        # Commits that change nothing on this device never touch it: being behind matters only with changes.
        behind = f", {health.behind} commit{'s' if health.behind != 1 else ''} behind HEAD" if health.behind else ""
        problems.append(f"{health.pending} change{'s' if health.pending != 1 else ''} pending{behind} (see plan)")
    if health.failed_units:
        problems.append("failed units: " + ", ".join(health.failed_units))
    for unit, (state, running) in sorted(status.k3s.items()):
        if state != "active" or not running:
            why = f"systemd says {state}" + ("" if state != "active" else ", but no process runs")
            problems.append(f"{unit} not running ({why})")
    if health.os_version != pinned:
        problems.append(f"Flatcar {health.os_version or 'version unknown'}, the blueprint pins {pinned}")
    return health


def live_records(inventory: Inventory, devices: list[str], parallel: int) -> dict[str, dict[str, Any]]:
    """Each device's applied-state record (or the reason it could not be read), one connection each."""
    from umhctl.remote.gate import Remote

    def read(device: str) -> dict[str, Any]:
        try:
            remote = Remote.connect(inventory.endpoint(device))
        except UmhctlError as exc:
            return {"error": str(exc)}
        try:
            record = remote.probe([], []).record
        except UmhctlError as exc:
            return {"error": str(exc)}
        finally:
            remote.close()
        if record is None:
            return {"error": "no applied-state record on the device"}
        stamp = record.get("blueprint") or {}
        return {
            "commit": stamp.get("commit"),
            "dirty": stamp.get("dirty"),
            "by": record.get("applied_by"),
            "at": record.get("applied_at"),
        }

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(devices) or 1))) as pool:
        return dict(zip(devices, pool.map(read, devices), strict=True))


@dataclass(frozen=True)
class HistoryResult:
    site: str
    devices: list[DeviceHistory]
    live: bool

    command = "history"

    @property
    def ok(self) -> bool:
        return not self.live or all(d.live_match for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "live": self.live, "devices": [d.to_dict() for d in self.devices]}
