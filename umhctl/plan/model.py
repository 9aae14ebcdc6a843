"""The plan as data: per device, a list of changes with an action, a reason and before/after.

Views (rich text, JSON) and apply all read this one structure. The action's value is its display symbol.
JSON is versioned; see `to_dict` for the contract (`docs`: README "Plan JSON").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

FORMAT_VERSION = "1"


class Action(StrEnum):
    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"
    REPLACE = "±"
    RESTART = "↻"
    REQUIRES_RESET = "!"


@dataclass(frozen=True)
class Change:
    """One difference between desired and actual.

    | action  | before                     | after                       |
    |---------|----------------------------|-----------------------------|
    | +       | None                       | desired attributes          |
    | ~ / ±   | actual attributes          | desired attributes          |
    | -       | actual attributes          | None                        |
    | ↻       | None                       | None (kind "unit")          |
    | !       | what the device has        | what the blueprint wants    |
    """

    action: Action
    kind: str  # "file", "link", "artifact", "unit", "refresh", "record", "device", "lock" or "leftover"
    target: str  # a path, a unit name, or what must change for "device"
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    sensitive: bool = False
    drift: bool = False  # the device no longer has what umhctl last applied: someone changed it by hand
    diff: str | None = None  # unified diff, when both contents are known and not sensitive

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        return cls(**{**data, "action": Action(data["action"])})


@dataclass(frozen=True)
class DevicePlan:
    device: str
    address: str
    changes: list[Change] = field(default_factory=list)
    daemon_reload: bool = False
    fingerprint: str = ""  # of the facts this plan was made against: a saved plan refuses a changed device
    path_states: dict[str, str] = field(default_factory=dict)  # per path, to name what changed when stale
    error: str | None = None  # the device could not be planned (unreachable, ...)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def count(self, *actions: Action) -> int:
        """Changes to paths (and the device) with these actions; units, the record, a held lock and leftover
        temp files are counted apart."""
        return sum(c.action in actions for c in self.changes if c.kind not in ("unit", "record", "lock", "leftover"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "address": self.address,
            "changes": [c.to_dict() for c in self.changes],
            "daemon_reload": self.daemon_reload,
            "fingerprint": self.fingerprint,
            "path_states": self.path_states,
            "error": self.error,
            "warnings": self.warnings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DevicePlan:
        return cls(
            device=data["device"],
            address=data["address"],
            changes=[Change.from_dict(c) for c in data["changes"]],
            daemon_reload=data["daemon_reload"],
            fingerprint=data["fingerprint"],
            path_states=dict(data.get("path_states", {})),
            error=data["error"],
            warnings=list(data["warnings"]),
        )


@dataclass(frozen=True)
class Plan:
    blueprint: dict[str, Any]  # {"path", "site", "commit", "dirty"}
    devices: list[DevicePlan]
    umhctl_version: str = ""

    @property
    def has_changes(self) -> bool:
        return any(d.has_changes for d in self.devices)

    @property
    def has_errors(self) -> bool:
        return any(d.error for d in self.devices)

    def summary(self) -> dict[str, int]:
        changed = [d for d in self.devices if d.has_changes]
        return {
            "add": sum(d.count(Action.CREATE) for d in self.devices),
            "change": sum(d.count(Action.UPDATE, Action.REPLACE) for d in self.devices),
            "delete": sum(d.count(Action.DELETE) for d in self.devices),
            "restart": sum(1 for d in self.devices for c in d.changes if c.action is Action.RESTART),
            "record": sum(1 for d in self.devices for c in d.changes if c.kind == "record"),
            "requires_reset": sum(d.count(Action.REQUIRES_RESET) for d in self.devices),
            "leftovers": sum(1 for d in self.devices for c in d.changes if c.kind == "leftover"),
            "locks": sum(1 for d in self.devices for c in d.changes if c.kind == "lock"),
            "devices_changed": len(changed),
            "devices": len(self.devices),
            "devices_failed": sum(1 for d in self.devices if d.error),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "umhctl_version": self.umhctl_version,
            "blueprint": self.blueprint,
            "summary": self.summary(),
            "devices": [d.to_dict() for d in self.devices],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported plan format {data.get('format_version')!r}")
        return cls(
            blueprint=data["blueprint"],
            devices=[DevicePlan.from_dict(d) for d in data["devices"]],
            umhctl_version=data.get("umhctl_version", ""),
        )
