"""The applied refs (umhctl.appliedrefs) in a real git repository: one transaction for the fleet, a busy ref costing
only its own device, and the reflog messages of both the current and the earlier format read back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from umhctl.appliedrefs import device_history, record_applied, ref_name


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def repository(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "site"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ops@example.com")
    git(repo, "config", "user.name", "Ops")
    (repo / "site.yaml").write_text("metadata: {name: plant}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "First site")
    return repo / "site.yaml", git(repo, "rev-parse", "HEAD").strip()


def test_every_devices_ref_moves_with_its_reflog_entry(tmp_path: Path) -> None:
    blueprint, head = repository(tmp_path)
    devices = [f"edge-{n:02d}" for n in range(1, 6)]
    assert record_applied(blueprint, "plant", devices, head, "Alice <a@example.com>", False, "applied") == []
    for device in devices:
        assert git(blueprint.parent, "rev-parse", ref_name("plant", device)).strip() == head
        (entry,) = device_history(blueprint, "plant", device).entries
        assert (entry.commit, entry.who, entry.verb, entry.dirty) == (head, "Alice <a@example.com>", "applied", False)
        assert entry.subject == "First site"


def test_a_busy_ref_costs_only_its_own_device(tmp_path: Path) -> None:
    blueprint, head = repository(tmp_path)
    busy = blueprint.parent / ".git" / (ref_name("plant", "edge-02") + ".lock")
    busy.parent.mkdir(parents=True, exist_ok=True)
    busy.write_text("")  # another git process is updating that ref right now
    missed = record_applied(blueprint, "plant", ["edge-01", "edge-02", "edge-03"], head, "Bob", True, "reset")
    assert missed == ["edge-02"]
    for device in ("edge-01", "edge-03"):
        (entry,) = device_history(blueprint, "plant", device).entries
        assert (entry.who, entry.verb, entry.dirty) == ("Bob", "reset", True)
    assert device_history(blueprint, "plant", "edge-02").entries == []


def test_reflog_messages_of_the_earlier_format_still_read(tmp_path: Path) -> None:
    blueprint, head = repository(tmp_path)
    ref = ref_name("plant", "edge-01")
    message = f"Carol Applied <c@example.com> applied {head[:12]} to edge-01 (with uncommitted changes)"
    git(blueprint.parent, "update-ref", "--create-reflog", "-m", message, ref, head)
    (entry,) = device_history(blueprint, "plant", "edge-01").entries
    assert (entry.who, entry.verb, entry.dirty) == ("Carol Applied <c@example.com>", "applied", True)
