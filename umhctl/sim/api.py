"""The simulated site's public API: `sim_up`, `sim_down`, `sim_status`, each returning a typed result."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umhctl.results import LockResult
from umhctl.sim.site import DeviceResult, DeviceStatus
from umhctl.sim.state import SimSite, resolve_state_dir


def _site_data(site: SimSite) -> dict[str, Any]:
    return {
        "site": site.site,
        "state_dir": str(site.state_dir),
        "user": site.user,
        "known_hosts": str(site.known_hosts),
        "identity": str(site.identity),
    }


@dataclass(frozen=True)
class SimUpResult:
    site: SimSite
    devices: list[DeviceResult]

    command = "sim up"

    @property
    def failed(self) -> list[DeviceResult]:
        return [r for r in self.devices if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {**_site_data(self.site), "devices": [dataclasses.asdict(r) for r in self.devices]}


@dataclass(frozen=True)
class SimDownResult:
    state_dir: Path
    removed: list[str]

    command = "sim down"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {"state_dir": str(self.state_dir), "removed": self.removed}


@dataclass(frozen=True)
class SimStatusResult:
    site: SimSite
    devices: list[DeviceStatus]

    command = "sim status"

    @property
    def ok(self) -> bool:
        return all(s.answers for s in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {
            **_site_data(self.site),
            "devices": [{**dataclasses.asdict(s), "answers": s.answers} for s in self.devices],
        }


def _state_dir(file: Path, state_dir: Path | None) -> Path:
    return state_dir.absolute() if state_dir is not None else resolve_state_dir(file)


def sim_up(
    file: Path,
    *,
    state_dir: Path | None = None,
    base_address: str | None = None,
    port: int = 22,
    devices: list[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> SimUpResult:
    from umhctl.sim import site

    started, results = site.up(
        file, state_dir=state_dir, base_address=base_address, port=port, devices=devices, progress=progress
    )
    return SimUpResult(started, results)


def sim_down(file: Path, *, state_dir: Path | None = None) -> SimDownResult:
    from umhctl.sim import site

    directory = _state_dir(file, state_dir)
    return SimDownResult(directory, site.down(directory))


def sim_status(file: Path, *, state_dir: Path | None = None, login: bool = True) -> SimStatusResult:
    from umhctl.sim import site

    loaded = SimSite.load(_state_dir(file, state_dir))
    return SimStatusResult(loaded, site.status(loaded, login=login))


def sim_lock(file: Path, *, state_dir: Path | None = None) -> LockResult:
    """`umhctl lock --sim`: publish stand-ins of what the blueprint needs now and pin them in the simulated
    site's own lock (a version bump in the blueprint needs this, as a real site needs `umhctl lock`)."""
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.sim.site import lock_standins

    return lock_standins(load_blueprint(file), SimSite.load(_state_dir(file, state_dir)))
