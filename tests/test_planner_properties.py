"""Property: whatever a device looks like, carrying out the plan leaves nothing to plan.

Carried out for real: each generated device state is built in a scratch device root, the real probe reads it,
the planner plans, apply's real write and restart scripts run against it, and a second real probe and plan
must find nothing left to do. A hermetic twin checks that secret hashes never leave the planner unsealed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from umhctl.converge import EXECUTABLE, WRITES
from umhctl.facts import MANAGED_LIST, RECORD, Facts, PathFact
from umhctl.plan.model import Action, DevicePlan
from umhctl.plan.planner import Stamp, plan_device
from umhctl.remote import scripts
from umhctl.remote.gate import parse_facts
from umhctl.render.desired import DesiredState, File, Link

from .scratch import Scratch, can_run

PATHS = [f"/etc/umhctl-test/{name}" for name in ("a", "b", "c", "d", "e", "f")]
CONTENTS = [b"", b"a\n", b"b\n", b"token\n", b"\x00\xff"]
contents = st.sampled_from(CONTENTS)
modes = st.sampled_from([0o644, 0o600, 0o755])
owners = st.sampled_from([("root", "root"), ("core", "core")])
UIDS = {"root": 0, "core": 500}
STAMP = Stamp("c0ffee", False, "sha256:desired")


def seal(text: str) -> str:
    # A keyed digest stand-in that, like HMAC, differs for different inputs.
    return "sealed:" + hashlib.sha256(b"key" + text.encode()).hexdigest()[:16]


@st.composite
def desired_states(draw: st.DrawFn) -> DesiredState:
    chosen = draw(st.lists(st.sampled_from(PATHS), unique=True, max_size=5))
    split = draw(st.integers(0, len(chosen)))
    files = []
    for path in chosen[:split]:
        owner, group = draw(owners)
        restarts = draw(st.sampled_from([(), ("a.service",), ("c.service", "b.service")]))
        files.append(File(path, draw(contents), draw(modes), owner, group, draw(st.booleans()), restarts))
    links = [Link(path, draw(st.sampled_from(["../x", "/usr/y"]))) for path in chosen[split:]]
    return DesiredState("dev", files, links).sorted()


@dataclass(frozen=True)
class Thing:
    """What stands at a path on the generated device."""

    kind: str  # file, link, directory
    content: bytes = b""
    mode: int = 0o644
    owner: str = "root"
    target: str = ""


@st.composite
def things(draw: st.DrawFn) -> Thing | None:
    kind = draw(st.sampled_from(["file", "link", "directory", "absent"]))
    if kind == "file":
        return Thing("file", draw(contents), draw(modes), draw(owners)[0])
    if kind == "link":
        return Thing("link", target=draw(st.sampled_from(["../x", "/usr/z"])))
    return Thing("directory") if kind == "directory" else None


@dataclass(frozen=True)
class Device:
    paths: dict[str, Thing]
    record: dict[str, object] | None


@st.composite
def devices(draw: st.DrawFn) -> Device:
    paths = {p: t for p in PATHS if (t := draw(things())) is not None}
    record = None
    if draw(st.booleans()):
        owned = draw(st.lists(st.sampled_from(PATHS), unique=True))
        record = {
            "files": {
                p: {"sha256": "0" * 64, "restarts": ["old.service"], "secret": draw(st.booleans())} for p in owned
            },
            "links": {},
            "install_disk": "/dev/sda",
        }
    return Device(paths, record)


def build(root: Path, device: Device) -> None:
    for path, thing in device.paths.items():
        host = root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        if thing.kind == "file":
            host.write_bytes(thing.content)
            os.chown(host, UIDS[thing.owner], UIDS[thing.owner])
            os.chmod(host, thing.mode)
        elif thing.kind == "link":
            host.symlink_to(thing.target)
        else:
            (host / "someone-elses").mkdir(parents=True)  # a directory umhctl did not make, not empty
    if device.record is not None:
        state = root / RECORD.lstrip("/")
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(device.record))
        owned = sorted(device.record["files"]) + sorted(device.record["links"])  # type: ignore[call-overload]
        (root / MANAGED_LIST.lstrip("/")).write_text("".join(f"{p}\n" for p in owned))


def _plan(desired: DesiredState, facts: Facts) -> DevicePlan:
    return plan_device(
        desired, facts, address="a", install_disk="/dev/sda", lookup=lambda sha: None, seal=seal, stamp=STAMP
    )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    s = Scratch()
    yield s
    s.close()


def _probe(scratch: Scratch, root: Path, desired: DesiredState) -> Facts:
    paths = [f.path for f in desired.files] + [link.path for link in desired.links]
    units = sorted({u for f in desired.files for u in f.restarts})
    done = scratch.run(root, scripts.probe(paths, units))
    assert done.returncode == 0, done.stderr
    return parse_facts(done.stdout, "dev")


@pytest.mark.skipif(not can_run, reason="running device scripts in a scratch root needs root and unshare")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(desired=desired_states(), device=devices())
def test_carrying_out_a_plan_for_real_leaves_nothing_to_plan(
    scratch: Scratch, desired: DesiredState, device: Device
) -> None:
    root = scratch.root()
    try:
        build(root, device)
        first = _plan(desired, _probe(scratch, root, desired))
        wanted = {f.path for f in desired.files} | {link.path for link in desired.links}
        assert {c.target for c in first.changes if c.action is Action.DELETE}.isdisjoint(wanted)
        assert all(c.action in EXECUTABLE[c.kind] for c in first.changes), "apply can carry out every change"
        foreign = [
            c for c in first.changes if c.action is Action.REPLACE and (c.before or {}).get("type") == "directory"
        ]
        if foreign:
            # A directory umhctl did not create where a file or link belongs: never deleted; apply refuses the plan
            # (Phases._check_plan) and the device keeps it.
            assert all(c.before and c.before["removable"] is False for c in foreign)
            return
        writes = [c for c in first.changes if c.kind in WRITES]
        if writes:
            record = {"files": {f.path: {"sha256": f.sha256, "secret": f.secret} for f in desired.files}}
            record |= {"links": {link.path: link.target for link in desired.links}, "install_disk": "/dev/sda"}
            record |= {"blueprint": {"commit": STAMP.commit, "dirty": STAMP.dirty}}
            record["desired_fingerprint"] = STAMP.fingerprint
            done = scratch.run(root, scripts.write(writes, desired, record, {}, "0123abcd"))
            assert done.returncode == 0 and "APPLIED" in done.stdout, done.stderr
        units = [c.target for c in first.changes if c.action is Action.RESTART]
        done = scratch.run(root, scripts.restart(units, first.daemon_reload))
        assert done.returncode == 0, done.stderr
        second = _plan(desired, _probe(scratch, root, desired))
        assert second.changes == [], [(c.action.value, c.target, c.reason) for c in second.changes]
        leftovers = [p for p in (root / "etc/umhctl-test").rglob(".umhctl-*")] if (root / "etc").exists() else []
        assert leftovers == []
    finally:
        scratch.remove(root)


@st.composite
def device_facts(draw: st.DrawFn) -> Facts:
    paths: dict[str, PathFact] = {}
    for path in PATHS:
        thing = draw(things())
        if thing is None:
            continue
        if thing.kind == "file":
            paths[path] = PathFact(
                "file", thing.mode, thing.owner, thing.owner, hashlib.sha256(thing.content).hexdigest()
            )
        elif thing.kind == "link":
            paths[path] = PathFact("link", target=thing.target)
        else:
            paths[path] = PathFact("other", other="directory")
    device = draw(devices())
    return Facts(paths, device.record)


@settings(max_examples=200, deadline=None)
@given(desired_states(), device_facts())
def test_secret_hashes_never_leave_the_planner_unsealed(desired: DesiredState, facts: Facts) -> None:
    plan = _plan(desired, facts)
    recorded_secret = {p for p, e in facts.recorded_files().items() if e.get("secret")}
    secret = {f.path for f in desired.files if f.secret} | recorded_secret
    secret_hashes = {f.sha256 for f in desired.files if f.secret}
    secret_hashes |= {fact.sha256 for path, fact in facts.paths.items() if path in secret and fact.sha256}
    text = str(plan.to_dict())
    assert not any(h and h in text for h in secret_hashes - _public_hashes(desired, facts, secret))


def _public_hashes(desired: DesiredState, facts: Facts, secret: set[str]) -> set[str]:
    # The same bytes may also sit in a non-secret file; that file's hash is not a secret.
    public = {f.sha256 for f in desired.files if not f.secret}
    return public | {p.sha256 for path, p in facts.paths.items() if path not in secret and p.sha256}
