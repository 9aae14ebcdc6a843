"""Property: whatever a device looks like, carrying out the plan (as apply does) leaves nothing to plan.

A hermetic twin of the simulated-site tests: facts are generated, the plan's changes are applied to them the way
the apply script changes a device, and a second plan must be empty.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from umhctl.device.facts import Facts, PathFact
from umhctl.plan.model import Action
from umhctl.plan.planner import plan_device
from umhctl.render.desired import DesiredState, File, Link

PATHS = [f"/etc/umhctl-test/{name}" for name in ("a", "b", "c", "d", "e", "f")]
contents = st.sampled_from([b"", b"a\n", b"b\n", b"token\n", b"\x00\xff"])
modes = st.sampled_from([0o644, 0o600, 0o755])
owners = st.sampled_from([("root", "root"), ("core", "core")])


@st.composite
def desired_states(draw: st.DrawFn) -> DesiredState:
    chosen = draw(st.lists(st.sampled_from(PATHS), unique=True, max_size=5))
    split = draw(st.integers(0, len(chosen)))
    files = []
    for path in chosen[:split]:
        owner, group = draw(owners)
        restarts = draw(st.sampled_from([(), ("a.service",), ("k3s.service", "b.service")]))
        files.append(File(path, draw(contents), draw(modes), owner, group, draw(st.booleans()), restarts))
    links = [Link(path, draw(st.sampled_from(["../x", "/usr/y"]))) for path in chosen[split:]]
    return DesiredState("dev", files, links).sorted()


@st.composite
def path_facts(draw: st.DrawFn) -> PathFact:
    kind = draw(st.sampled_from(["file", "link", "other", "absent"]))
    if kind == "file":
        owner, group = draw(owners)
        return PathFact("file", draw(modes), owner, group, hashlib.sha256(draw(contents)).hexdigest())
    if kind == "link":
        return PathFact("link", target=draw(st.sampled_from(["../x", "/usr/z"])))
    return PathFact(kind, other="directory" if kind == "other" else None)


@st.composite
def device_facts(draw: st.DrawFn) -> Facts:
    paths = {p: f for p in PATHS if (f := draw(path_facts())).kind != "absent"}
    record = None
    if draw(st.booleans()):
        owned = draw(st.lists(st.sampled_from(PATHS), unique=True))
        record = {
            "files": {p: {"sha256": "0" * 64, "restarts": ["old.service"], "secret": False} for p in owned},
            "links": {},
            "install_disk": "/dev/sda",
        }
    return Facts(paths, record, None)


def _carry_out(desired: DesiredState, facts: Facts, changes: list[Any]) -> Facts:
    """What the apply script does to the device, expressed on facts."""
    paths = dict(facts.paths)
    files = {f.path: f for f in desired.files}
    links = {link.path: link for link in desired.links}
    for change in changes:
        if change.kind == "file" and change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE):
            f = files[change.target]
            paths[f.path] = PathFact("file", f.mode, f.owner, f.group, f.sha256)
        elif change.kind == "link" and change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE):
            paths[change.target] = PathFact("link", target=links[change.target].target)
        elif change.action is Action.DELETE:
            paths.pop(change.target, None)
    record = {
        "files": {
            f.path: {"sha256": f.sha256, "restarts": list(f.restarts), "secret": f.secret} for f in desired.files
        },
        "links": {link.path: link.target for link in desired.links},
        "install_disk": "/dev/sda",
    }
    return Facts(paths, record, None)


def _plan(desired: DesiredState, facts: Facts):  # type: ignore[no-untyped-def]
    return plan_device(
        desired, facts, address="a", install_disk="/dev/sda", lookup=lambda sha: None, seal=lambda s: "sealed"
    )


@settings(max_examples=400, deadline=None)
@given(desired_states(), device_facts())
def test_carrying_out_a_plan_leaves_nothing_to_plan(desired: DesiredState, facts: Facts) -> None:
    first = _plan(desired, facts)
    wanted = {f.path for f in desired.files} | {link.path for link in desired.links}
    assert {c.target for c in first.changes if c.action is Action.DELETE}.isdisjoint(wanted)
    after = _carry_out(desired, facts, first.changes)
    second = _plan(desired, after)
    assert second.changes == [], [(c.action.value, c.target, c.reason) for c in second.changes]


@settings(max_examples=200, deadline=None)
@given(desired_states(), device_facts())
def test_secret_hashes_never_leave_the_planner_unsealed(desired: DesiredState, facts: Facts) -> None:
    plan = _plan(desired, facts)
    secret_hashes = {f.sha256 for f in desired.files if f.secret}
    secret_hashes |= {facts.paths[f.path].sha256 for f in desired.files if f.secret and f.path in facts.paths}
    text = str(plan.to_dict())
    assert not any(h and h in text for h in secret_hashes if h not in _public_hashes(desired, facts))


def _public_hashes(desired: DesiredState, facts: Facts) -> set[str]:
    # The same bytes may also sit in a non-secret file; that file's hash is not a secret.
    public = {f.sha256 for f in desired.files if not f.secret}
    secret = {f.path for f in desired.files if f.secret}
    return public | {p.sha256 for path, p in facts.paths.items() if path not in secret and p.sha256}
