"""The planner: a pure function of (desired state, facts) → the changes apply would make on one device.

No I/O here. Contents the device has are never downloaded: a diff is shown only when the local content cache
knows the device's current content (it holds what umhctl applied before), and never for secrets.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from umhctl.facts import LOCK_DIR, RECORD, TEMP_NAME, Facts, LockFact, PathFact, Seal
from umhctl.plan.model import Action, Change, DevicePlan
from umhctl.render.desired import DesiredState, File, Link

# Restart order when several units are due: the network first (the others depend on it), k3s last.
# Restart order when several are due: refreshes (update-ssh-keys) first, the network next (the others depend on
# it), a new system extension merged before k3s, k3s last.
UNIT_ORDER = (
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "locksmithd.service",
    "systemd-sysext.service",
    "k3s.service",
)
REFRESH_PREFIX = "update-ssh-keys:"
SYSTEMD_DIRS = ("/etc/systemd/system/", "/etc/systemd/system.conf.d/")
DIFF_LINES = 80  # longer diffs are collapsed in the plan

ContentLookup = Callable[[str], bytes | None]  # sha256 -> content, when known locally
HolderGone = Callable[[str], bool]  # lock holder text -> its process is known to be gone (umhctl.lockholder)


@dataclass(frozen=True)
class Stamp:
    """What the applied-state record says was applied: the blueprint commit, whether it had uncommitted changes,
    and the fingerprint of the device's desired state (sealed: it covers secret-bearing files)."""

    commit: str | None
    dirty: bool
    fingerprint: str

    def to_record(self) -> dict[str, Any]:
        return {"commit": self.commit, "dirty": self.dirty, "desired_fingerprint": self.fingerprint}


def secret_paths(desired: DesiredState, facts: Facts) -> set[str]:
    """Files whose hashes are sealed: secret now, or secret when umhctl last applied them."""
    recorded = {p for p, entry in facts.recorded_files().items() if entry.get("secret")}
    return recorded | {f.path for f in desired.files if f.secret}


def _file_attrs(f: File, seal: Seal) -> dict[str, Any]:
    digest = seal(f.sha256) if f.secret else f.sha256
    return {"mode": f"{f.mode:04o}", "owner": f"{f.owner}:{f.group}", "sha256": digest, "size": len(f.content)}


def _fact_attrs(fact: PathFact, seal: Seal | None = None) -> dict[str, Any]:
    if fact.kind == "file":
        digest = seal(fact.sha256 or "") if seal else fact.sha256
        return {"mode": f"{fact.mode or 0:04o}", "owner": f"{fact.owner}:{fact.group}", "sha256": digest}
    if fact.kind == "link":
        return {"target": fact.target}
    return {"type": fact.other or fact.kind}


def _what(fact: PathFact) -> str:
    return {"file": "file", "link": "symlink"}.get(fact.kind) or fact.other or fact.kind


def _diff(path: str, old: bytes | None, new: bytes, *, before_label: str = "a") -> str | None:
    if old is None:
        return None
    try:
        before, after = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = list(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{path} ({before_label})" if before_label != "a" else f"a{path}",
            f"{path} (blueprint)" if before_label != "a" else f"b{path}",
            n=2,
        )
    )
    if len(lines) > DIFF_LINES:
        hidden = len(lines) - DIFF_LINES
        lines = [*lines[:DIFF_LINES], f"... {hidden} more diff lines (see `umhctl render` for the full file)\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _replaced(
    kind: str, path: str, fact: PathFact, after: dict[str, Any], *, seal: Seal | None = None, sensitive: bool = False
) -> Change:
    """Something else stands where a file or symlink belongs: it is removed and the right thing put in place."""
    belongs = {"file": "a file", "link": "a symlink"}[kind]
    reason = f"a {_what(fact)} stands where {belongs} belongs"
    return Change(Action.REPLACE, kind, path, reason, _fact_attrs(fact, seal), after, sensitive)


def _file_change(
    f: File, fact: PathFact, recorded: dict[str, Any] | None, lookup: ContentLookup, seal: Seal, sealed: set[str]
) -> Change | None:
    after = _file_attrs(f, seal)
    # Sealed when secret now or when umhctl last wrote a secret there: an old secret's hash never shows plain,
    # and neither side of such a change is ever diffed.
    sensitive = f.path in sealed
    sealing = seal if sensitive else None
    if fact.kind == "absent":
        diff = None if sensitive else _diff(f.path, b"", f.content)
        return Change(Action.CREATE, "file", f.path, "not on the device", None, after, sensitive, diff=diff)
    if fact.kind != "file":
        return _replaced("file", f.path, fact, after, seal=sealing, sensitive=sensitive)
    before = _fact_attrs(fact, sealing)
    reasons = []
    if fact.sha256 != f.sha256:
        reasons.append("content differs")
    if fact.mode != f.mode:
        reasons.append(f"mode {before['mode']} → {after['mode']}")
    if (fact.owner, fact.group) != (f.owner, f.group):
        reasons.append(f"owner {before['owner']} → {after['owner']}")
    if not reasons:
        return None
    drifted = _drifted(fact, recorded)
    if drifted:
        reasons.insert(0, "changed on the device since the last apply (" + ", ".join(drifted) + ")")
    diff = None
    if fact.sha256 != f.sha256 and not sensitive and fact.sha256:
        diff = _diff(f.path, lookup(fact.sha256), f.content)
        last = (recorded or {}).get("sha256")
        if diff is None and drifted and last and last != f.sha256:
            # The device's own edit is unknown to umhctl; what it knows is what it last applied.
            diff = _diff(f.path, lookup(last), f.content, before_label="last applied")
    return Change(
        Action.UPDATE,
        "file",
        f.path,
        "; ".join(reasons),
        before,
        after,
        sensitive,
        drift=bool(drifted),
        diff=diff,
    )


def _drifted(fact: PathFact, recorded: dict[str, Any] | None) -> list[str]:
    """What is no longer as umhctl last applied it (the record holds hash, mode and owner): a hand edit."""
    if not recorded:
        return []
    what = []
    if recorded.get("sha256") and recorded["sha256"] != fact.sha256:
        what.append("content")
    mode = recorded.get("mode")
    if mode and int(mode, 8) != fact.mode:
        what.append(f"mode {mode} → {fact.mode or 0:04o}")
    owner = (recorded.get("owner"), recorded.get("group"))
    if all(owner) and owner != (fact.owner, fact.group):
        what.append(f"owner {owner[0]}:{owner[1]} → {fact.owner}:{fact.group}")
    return what


def _link_change(link: Link, fact: PathFact, seal: Seal | None) -> Change | None:
    """`seal`: set when a secret-bearing file of umhctl's stood here, so its hash is shown only sealed."""
    after = {"target": link.target}
    if fact.kind == "absent":
        return Change(Action.CREATE, "link", link.path, "not on the device", None, after)
    if fact.kind != "link":
        return _replaced("link", link.path, fact, after, seal=seal, sensitive=seal is not None)
    if fact.target != link.target:
        reason = f"points to {fact.target} → {link.target}"
        return Change(Action.UPDATE, "link", link.path, reason, _fact_attrs(fact), after)
    return None


def _record_change(facts: Facts, stamp: Stamp, wanted: int, forgotten: list[str]) -> Change | None:
    """The record alone needs writing: on a first apply, when it names another blueprint state than the one the
    device now matches (an outside change left the files as planned), or to stop managing paths."""
    if facts.record is None:
        reason = f"first apply: umhctl takes ownership of {wanted} paths Ignition wrote"
        return Change(Action.CREATE, "record", RECORD, reason, None, stamp.to_record())
    before = {k: facts.record.get("blueprint", {}).get(k) for k in ("commit", "dirty")}
    before["desired_fingerprint"] = facts.record.get("desired_fingerprint")
    reasons = []
    if before["desired_fingerprint"] != stamp.fingerprint or before["dirty"] != stamp.dirty:
        then, now = _commit_text(before["commit"], before["dirty"]), _commit_text(stamp.commit, stamp.dirty)
        older = "an older render of " if then == now else ""
        reasons.append(f"the files match {now}; the record names {older}{then}")
    if forgotten:
        reasons.append("stops managing " + ", ".join(forgotten))
    if not reasons:
        return None
    return Change(Action.UPDATE, "record", RECORD, "; ".join(reasons), before, stamp.to_record())


def _restart_order(unit: str) -> tuple[int, str]:
    if unit.startswith(REFRESH_PREFIX):
        return (-1, unit)
    return (UNIT_ORDER.index(unit) if unit in UNIT_ORDER else len(UNIT_ORDER), unit)


def managed_restarts(desired: DesiredState) -> set[str]:
    """Every unit (and refresh) some managed file, link or image restarts: their states are probed."""
    units: set[str] = set()
    for f in desired.files:
        units.update(f.restarts)
    for link in desired.links:
        units.update(link.restarts)
    for artifact in desired.artifacts:
        units.update(artifact.restarts)
    return units


def _commit_text(commit: str | None, dirty: bool | None) -> str:
    return (commit[:12] if commit else "no commit") + (" with uncommitted changes" if dirty else "")


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size} bytes"


def _artifact_changes(desired: DesiredState, facts: Facts) -> tuple[list[Change], set[str]]:
    """Images to upload (checked by hash on the device) and old ones to remove once the new are in use; the
    restarts they cause. umhctl owns the images' directories whole: whatever else is in them goes."""
    changes: list[Change] = []
    restarts: set[str] = set()
    wanted = {a.path for a in desired.artifacts}
    for a in desired.artifacts:
        fact = facts.path(a.path)
        after = {"sha256": a.sha256, "size": a.size, "name": a.name}
        upload = f"upload {_size(a.size)} from the local cache, sha256 {(a.sha256 or '')[:12]}… checked on the device"
        if fact.kind == "absent":
            changes.append(Change(Action.CREATE, "artifact", a.path, upload, None, after))
        elif fact.kind != "file":
            changes.append(_replaced("file", a.path, fact, after))
        elif fact.sha256 != a.sha256:
            before = {"sha256": fact.sha256}
            changes.append(Change(Action.UPDATE, "artifact", a.path, f"damaged or different: {upload}", before, after))
        else:
            continue
        restarts.update(a.restarts)
    directories = {a.path.rsplit("/", 1)[0] + "/" for a in desired.artifacts}
    for path, fact in sorted(facts.paths.items()):
        if TEMP_NAME.fullmatch(path.rsplit("/", 1)[-1]):
            continue  # an interrupted upload's temp file: listed with the leftovers (_leftover_changes)
        if path.startswith(tuple(directories)) and path not in wanted and fact.kind in ("file", "link"):
            reason = "no longer needed: removed once the new image is in use"
            changes.append(Change(Action.DELETE, "artifact", path, reason, _fact_attrs(fact), None))
    return changes, restarts


def _lock_change(lock: LockFact, holder_gone: HolderGone) -> Change:
    """A lock another run holds: a live apply's, or one a dead run left (apply --force-unlock clears it)."""
    who = lock.holder or "an unknown run"
    dead = bool(lock.holder) and holder_gone(lock.holder)
    if dead:
        reason = f"held for {lock.age} s by {who}, which is no longer running: its apply was interrupted"
    else:
        reason = f"held for {lock.age} s by {who}: an apply is running, or one died and left it"
    before = {"holder": lock.holder or None, "held_seconds": lock.age, "holder_gone": dead}
    return Change(Action.DELETE, "lock", LOCK_DIR, reason, before, None)


def _ancestors(path: str) -> set[str]:
    parts = path.split("/")
    return {"/".join(parts[:n]) for n in range(2, len(parts))}


def _directory_changes(desired: DesiredState, facts: Facts, changes: list[Change]) -> list[Change]:
    """Directories apply created (and only those) that the plan's deletions leave empty: removed too, the deepest
    first. A directory standing where a file or symlink belongs is replaceable only when it is such a one; the
    REPLACE change says whether it is ("removable"), and apply refuses it otherwise."""
    paths = (
        [f.path for f in desired.files] + [link.path for link in desired.links] + [a.path for a in desired.artifacts]
    )
    keep = set().union(*(_ancestors(p) for p in paths))
    gone = {c.target for c in changes if c.action is Action.DELETE and c.kind in ("file", "link", "leftover")}
    removable: list[str] = []
    for directory in sorted(facts.created_dirs, key=lambda d: (-d.count("/"), d)):
        inside = sum(1 for p in gone if p.rsplit("/", 1)[0] == directory)
        if directory not in keep and inside >= facts.created_dirs[directory]:
            gone.add(directory)
            removable.append(directory)
    replaced = {c.target for c in changes if c.action is Action.REPLACE and (c.before or {}).get("type") == "directory"}
    for i, change in enumerate(changes):
        if change.target in replaced:
            ok = change.target in removable
            reason = change.reason + (
                "; umhctl created it, and it is left empty"
                if ok
                else "; umhctl did not create it (or it holds other files) and never deletes such a directory: "
                "move it away by hand"
            )
            changes[i] = dataclasses.replace(change, reason=reason, before={**(change.before or {}), "removable": ok})
    reason = "umhctl created it for files it no longer manages; left empty"
    return [
        Change(Action.DELETE, "directory", d, reason, {"type": "directory"}, None)
        for d in removable
        if d not in replaced
    ]


def _leftover_changes(facts: Facts) -> list[Change]:
    """Temp files of an interrupted apply (umhctl's exact name shape, next to managed paths): removed."""
    reason = "temp file an interrupted apply left behind"
    return [Change(Action.DELETE, "leftover", path, reason, {"type": "temp file"}, None) for path in facts.leftovers]


def plan_device(
    desired: DesiredState,
    facts: Facts,
    *,
    address: str,
    install_disk: str,
    lookup: ContentLookup,
    seal: Seal,
    stamp: Stamp,
    lock_token: str = "",
    holder_gone: HolderGone = lambda holder: False,
) -> DevicePlan:
    """`lock_token`: the token of the run making this plan (a lock it holds itself is not a change)."""
    recorded = facts.recorded_files()
    sealed = secret_paths(desired, facts)
    changes: list[Change] = []
    restarts: set[str] = set()
    daemon_reload = False
    for f in desired.files:
        change = _file_change(f, facts.path(f.path), recorded.get(f.path), lookup, seal, sealed)
        if change:
            changes.append(change)
            restarts.update(f.restarts)
            daemon_reload |= f.path.startswith(SYSTEMD_DIRS)
    for link in desired.links:
        change = _link_change(link, facts.path(link.path), seal if link.path in sealed else None)
        if change:
            changes.append(change)
            restarts.update(link.restarts)
            daemon_reload |= link.path.startswith(SYSTEMD_DIRS)
    artifact_changes, artifact_restarts = _artifact_changes(desired, facts)
    changes += artifact_changes
    restarts |= artifact_restarts
    wanted = {f.path for f in desired.files} | {link.path for link in desired.links}
    forgotten: list[str] = []
    for path in sorted((set(recorded) | set(facts.recorded_links())) - wanted):
        fact = facts.path(path)
        if fact.kind == "absent":
            continue
        if fact.kind not in ("file", "link"):
            # Something else stands where umhctl's file was (a directory someone made): not umhctl's to delete.
            forgotten.append(f"{path} (a {_what(fact)} stands there now; left in place)")
            continue
        before = _fact_attrs(fact, seal if path in sealed else None)
        changes.append(
            Change(Action.DELETE, fact.kind, path, "no longer in the blueprint", before, None, path in sealed)
        )
        restarts.update(recorded.get(path, {}).get("restarts", []))
        daemon_reload |= path.startswith(SYSTEMD_DIRS)
    changes += _leftover_changes(facts)
    changes += _directory_changes(desired, facts, changes)
    if not any(c.kind in ("file", "link", "artifact") for c in changes):
        # With file changes the record is rewritten anyway; alone, it is a change of its own.
        record = _record_change(facts, stamp, len(wanted), forgotten)
        if record is not None:
            changes.append(record)
    recorded_disk = (facts.record or {}).get("install_disk")
    if recorded_disk and recorded_disk != install_disk:
        changes.append(
            Change(
                Action.REQUIRES_RESET,
                "device",
                "install disk",
                f"Flatcar is installed on {recorded_disk}, the blueprint says {install_disk}: only a reinstall "
                f"moves it (umhctl reset device {desired.device} --media DIR); flatcar-reset resets in place",
                {"install_disk": recorded_disk},
                {"install_disk": install_disk},
            )
        )
    # A unit whose configuration umhctl manages and that failed on the device (e.g. a restart in the last apply
    # failed) is restarted again, even when no file changes: otherwise a fixed blueprint would never retry it.
    managed_units = managed_restarts(desired)
    failed = {u for u in managed_units if facts.units.get(u) == "failed"} - restarts
    changes += [
        Change(
            Action.RESTART,
            "refresh" if unit.startswith(REFRESH_PREFIX) else "unit",
            unit,
            "failed on the device" if unit in failed else "its configuration changes",
        )
        for unit in sorted(restarts | failed, key=_restart_order)
    ]
    if facts.lock is not None and not (lock_token and facts.lock.token == lock_token):
        changes.insert(0, _lock_change(facts.lock, holder_gone))
    warnings = []
    if any(c.target.startswith("/etc/systemd/network/") for c in changes):
        warnings.append("network configuration changes: systemd-networkd restarts and the connection may drop")
    return DevicePlan(
        device=desired.device,
        address=address,
        changes=changes,
        daemon_reload=daemon_reload,
        fingerprint=facts.fingerprint(sealed, seal),
        path_states=facts.path_states(sealed, seal),
        warnings=warnings,
    )
