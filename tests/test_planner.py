"""The planner is a pure function of (desired, facts); facts come from a bash probe, tested here with real bash."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from umhctl.cli.planview import summary_line
from umhctl.facts import Facts, PathFact
from umhctl.plan.model import Action, Plan
from umhctl.plan.planner import Stamp, plan_device
from umhctl.remote.gate import parse_facts
from umhctl.remote.scripts import probe as probe_script
from umhctl.render.desired import DesiredState, File, Link


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _desired() -> DesiredState:
    return DesiredState(
        "edge-01",
        files=[
            File("/etc/a.conf", b"a=1\n", restarts=("a.service",)),
            File("/etc/secret", b"token\n", mode=0o600, secret=True, restarts=("k3s.service",)),
            File("/etc/systemd/network/10-eth0.network", b"[Match]\n", restarts=("systemd-networkd.service",)),
        ],
        links=[Link("/etc/localtime", "../usr/share/zoneinfo/UTC")],
    )


def _in_sync(desired: DesiredState, **record: object) -> dict[str, PathFact]:
    paths = {f.path: PathFact("file", f.mode, f.owner, f.group, f.sha256) for f in desired.files}
    paths.update({link.path: PathFact("link", target=link.target) for link in desired.links})
    return paths


STAMP = Stamp("abc", False, "sha256:desired")


def _record(desired: DesiredState) -> dict[str, object]:
    return {
        "blueprint": {"commit": "abc", "dirty": False},
        "desired_fingerprint": "sha256:desired",
        "files": {f.path: {"sha256": f.sha256, "restarts": list(f.restarts)} for f in desired.files},
        "links": {link.path: link.target for link in desired.links},
        "install_disk": "/dev/sda",
    }


def _plan(desired: DesiredState, facts: Facts, lookup=lambda sha: None):  # type: ignore[no-untyped-def]
    return plan_device(
        desired,
        facts,
        address="127.0.0.1:22",
        install_disk="/dev/sda",
        lookup=lookup,
        seal=lambda s: f"sealed:{s[:8]}",
        stamp=STAMP,
    )


def test_in_sync_device_has_no_changes() -> None:
    desired = _desired()
    plan = _plan(desired, Facts(_in_sync(desired), _record(desired)))
    assert plan.changes == [] and not plan.daemon_reload


def test_fresh_device_without_record_gets_a_record_only() -> None:
    desired = _desired()
    plan = _plan(desired, Facts(_in_sync(desired), None))
    assert [(c.action, c.kind) for c in plan.changes] == [(Action.CREATE, "record")]


def test_content_mode_and_missing_changes_and_restarts_in_order() -> None:
    desired = _desired()
    paths = _in_sync(desired)
    paths["/etc/a.conf"] = PathFact("file", 0o644, "root", "root", _sha(b"a=0\n"))
    paths["/etc/secret"] = PathFact("file", 0o644, "root", "root", _sha(b"token\n"))
    paths["/etc/systemd/network/10-eth0.network"] = PathFact("absent")
    record = _record(desired)
    record["files"]["/etc/a.conf"]["sha256"] = _sha(b"a=0\n")  # type: ignore[index]
    plan = _plan(desired, Facts(paths, record), lookup={_sha(b"a=0\n"): b"a=0\n"}.get)
    by_target = {c.target: c for c in plan.changes}
    a = by_target["/etc/a.conf"]
    assert a.action is Action.UPDATE and not a.drift and a.reason == "content differs"
    assert a.diff is not None and "-a=0" in a.diff and "+a=1" in a.diff
    secret = by_target["/etc/secret"]
    assert secret.sensitive and secret.diff is None and "mode 0644 → 0600" in secret.reason
    # Hashes of secret-bearing files are only ever shown sealed (keyed), never as plain sha256.
    assert secret.after["sha256"].startswith("sealed:") and secret.before["sha256"].startswith("sealed:")
    assert plan.path_states["/etc/secret"].endswith("sealed:" + _sha(b"token\n")[:8])
    assert _sha(b"token\n") not in str(plan.to_dict())
    assert by_target["/etc/systemd/network/10-eth0.network"].action is Action.CREATE
    restarts = [c.target for c in plan.changes if c.action is Action.RESTART]
    assert restarts == ["systemd-networkd.service", "k3s.service", "a.service"]
    assert plan.warnings and "network" in plan.warnings[0]


def test_hand_edited_file_is_drift() -> None:
    desired = _desired()
    paths = _in_sync(desired)
    paths["/etc/a.conf"] = PathFact("file", 0o644, "root", "root", _sha(b"edited by hand\n"))
    plan = _plan(desired, Facts(paths, _record(desired)))
    (change, _restart) = plan.changes
    assert change.drift and "changed on the device since the last apply" in change.reason


def test_removed_from_blueprint_is_deleted_and_links_are_planned() -> None:
    desired = _desired()
    paths = _in_sync(desired)
    paths["/etc/old.conf"] = PathFact("file", 0o644, "root", "root", _sha(b"x"))
    paths["/etc/localtime"] = PathFact("link", target="../usr/share/zoneinfo/Europe/Berlin")
    record = _record(desired)
    record["files"]["/etc/old.conf"] = {"sha256": _sha(b"x"), "restarts": ["old.service"]}  # type: ignore[index]
    plan = _plan(desired, Facts(paths, record))
    actions = {(c.action, c.target) for c in plan.changes}
    assert (Action.DELETE, "/etc/old.conf") in actions
    assert (Action.UPDATE, "/etc/localtime") in actions
    assert (Action.RESTART, "old.service") in actions


def test_install_disk_change_requires_reset() -> None:
    desired = _desired()
    record = _record(desired)
    record["install_disk"] = "/dev/nvme0n1"
    plan = _plan(desired, Facts(_in_sync(desired), record))
    (change,) = plan.changes
    assert change.action is Action.REQUIRES_RESET and "reset device" in change.reason


def test_plan_json_round_trip_and_summary() -> None:
    desired = _desired()
    paths = _in_sync(desired)
    paths["/etc/a.conf"] = PathFact("absent")
    device = _plan(desired, Facts(paths, _record(desired)))
    plan = Plan({"path": "bp.yaml", "site": "s", "commit": "abc", "dirty": False}, [device], "0.1.0")
    again = Plan.from_dict(plan.to_dict())
    assert again == plan
    assert summary_line(plan) == "Plan: 1 to add, 0 to change, 0 to delete on 1 of 1 device; 1 unit restart."


def test_probe_reads_real_files_with_bash(tmp_path: Path) -> None:
    regular = tmp_path / "a-file.conf"
    regular.write_bytes(b"hello\n")
    os.chmod(regular, 0o640)
    link = tmp_path / "link"
    link.symlink_to("target with space")
    directory = tmp_path / "dir"
    directory.mkdir()
    missing = tmp_path / "missing"
    script = probe_script([str(regular), str(link), str(directory), str(missing)], ["no-such.service"])
    out = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, check=True).stdout
    facts = parse_facts(out, "local")
    assert facts.path(str(regular)) == PathFact("file", 0o640, "root", "root", _sha(b"hello\n"))
    assert facts.path(str(link)) == PathFact("link", target="target with space")
    assert facts.path(str(directory)).kind == "other"
    assert facts.path(str(missing)).kind == "absent"
    assert facts.units["no-such.service"] in ("inactive", "unknown", "")


def test_truncated_probe_output_is_an_error() -> None:
    import pytest

    from umhctl.errors import UmhctlError

    with pytest.raises(UmhctlError, match="ended early"):
        parse_facts("P\n/etc/hostname\tf\t644\troot\troot\t\nS\n", "edge-01")
    with pytest.raises(UmhctlError, match="cannot read"):
        parse_facts("garbage before any section\nE\n", "edge-01")


def test_a_file_that_used_to_be_secret_shows_only_sealed_hashes() -> None:
    desired = _desired()
    record = _record(desired)
    record["files"]["/etc/a.conf"]["secret"] = True  # type: ignore[index]
    paths = _in_sync(desired)
    paths["/etc/a.conf"] = PathFact("file", 0o644, "root", "root", _sha(b"old secret\n"))
    plan = _plan(desired, Facts(paths, record))
    (change,) = [c for c in plan.changes if c.target == "/etc/a.conf"]
    assert change.sensitive and change.diff is None
    assert change.before is not None and change.before["sha256"].startswith("sealed:")
    assert _sha(b"old secret\n") not in str(plan.to_dict())


def test_the_facts_fingerprint_is_keyed() -> None:
    desired = _desired()
    facts = Facts(_in_sync(desired), _record(desired))
    secret = {"/etc/secret"}
    one = facts.fingerprint(secret, lambda s: "k1:" + _sha(("k1" + s).encode()))
    two = facts.fingerprint(secret, lambda s: "k2:" + _sha(("k2" + s).encode()))
    assert one != two, "a plan file's fingerprint cannot be recomputed without the local seal key"


def test_files_that_match_but_a_record_that_names_another_state_is_a_record_update() -> None:
    desired = _desired()
    record = _record(desired)
    record["blueprint"] = {"commit": "0ld", "dirty": False}
    record["desired_fingerprint"] = "sha256:older"
    plan = _plan(desired, Facts(_in_sync(desired), record))
    (change,) = plan.changes
    assert (change.action, change.kind) == (Action.UPDATE, "record")
    assert "the files match abc" in change.reason and "0ld" in change.reason
    assert change.after == {"commit": "abc", "dirty": False, "desired_fingerprint": "sha256:desired"}


def test_a_directory_where_a_managed_file_was_is_left_alone_and_forgotten() -> None:
    desired = _desired()
    record = _record(desired)
    record["files"]["/etc/old.conf"] = {"sha256": _sha(b"x"), "restarts": []}  # type: ignore[index]
    paths = _in_sync(desired)
    paths["/etc/old.conf"] = PathFact("other", other="directory")
    plan = _plan(desired, Facts(paths, record))
    (change,) = plan.changes
    assert (change.action, change.kind) == (Action.UPDATE, "record")
    assert "stops managing /etc/old.conf (a directory stands there now; left in place)" in change.reason


def test_write_atomic_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    from umhctl.fsutil import write_atomic

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("old\n")
    known_hosts.chmod(0o600)
    write_atomic(known_hosts, "new\n")
    assert known_hosts.read_text() == "new\n" and known_hosts.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "fresh"
    write_atomic(fresh, "x")
    assert fresh.stat().st_mode & 0o777 == 0o644
