"""What umhctl remembers locally between runs: the outcome of the last apply per site (for --retry-failed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from umhctl.fsutil import write_atomic, xdg_dir
from umhctl.phases import Outcome


def _state_file(blueprint: Path) -> Path:
    # Keyed by the blueprint's absolute path: two checkouts of one site keep separate records.
    key = str(blueprint.resolve()).strip("/").replace("/", "%")
    return xdg_dir("state") / "umhctl" / "runs" / f"{key}.json"


def save_outcomes(blueprint: Path, outcomes: Sequence[Outcome]) -> None:
    path = _state_file(blueprint)
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous.update({o.device: {"ok": o.ok, "error": o.error} for o in outcomes})
    write_atomic(path, json.dumps(previous, indent=2, sort_keys=True) + "\n")


def last_failed(blueprint: Path) -> list[str]:
    path = _state_file(blueprint)
    if not path.exists():
        return []
    return sorted(name for name, result in json.loads(path.read_text()).items() if not result["ok"])
