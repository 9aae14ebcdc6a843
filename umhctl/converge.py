"""Plan and apply a site: each device's desired state, its facts read over SSH, the plan, and converging to it.

Plan and apply are ordered lists of phases (see umhctl.phases) built once per run by `Phases`; reset uses the
very same phase instances after its reboot. Apply executes exactly a plan: one made now, or a saved one, which
is refused for a device whose facts changed since. Before it touches a device, apply checks it can carry out
every change of that device's plan; a change it cannot make fails the device up front.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umhctl import __version__
from umhctl.artifacts import ArtifactCache, Pin
from umhctl.errors import UmhctlError
from umhctl.facts import TEMP_NAME, Facts, Seal
from umhctl.fsutil import write_atomic, xdg_dir
from umhctl.gitinfo import operator
from umhctl.hints import Hints
from umhctl.lockholder import describe as describe_holder
from umhctl.lockholder import gone, where
from umhctl.phases import Outcome, Phase, Reporter, run_fleet
from umhctl.plan.model import Action, Change, DevicePlan, Plan
from umhctl.plan.planner import Stamp, managed_restarts, plan_device, secret_paths
from umhctl.remote.gate import Converged, LockAnswer, Remote, parse_facts, tail
from umhctl.remote.ssh import Endpoint
from umhctl.render.desired import DesiredState

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount")


class ContentCache:
    """Contents umhctl applied before (never secrets), by sha256: lets plan show diffs without downloading."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or xdg_dir("cache") / "umhctl" / "content"

    def get(self, sha256: str) -> bytes | None:
        try:
            return (self.directory / sha256).read_bytes()
        except OSError:
            return None

    def put_all(self, desired: DesiredState) -> None:
        # Best effort: a full or read-only cache costs plan its diffs, never an apply its success.
        with contextlib.suppress(OSError):
            for f in desired.files:
                if not f.secret and not (self.directory / f.sha256).exists():
                    write_atomic(self.directory / f.sha256, f.content)


@dataclass(frozen=True)
class Target:
    """One device as a run sees it: where to reach it and what it should hold."""

    device: str
    endpoint: Endpoint
    desired: DesiredState
    install_disk: str
    seal: Seal
    stamp: Stamp  # what the applied-state record will say


@dataclass
class DeviceRun:
    """What the phases of one device share."""

    device: str
    target: Target
    plan: DevicePlan | None = None  # the plan to execute (apply) or the one made (plan)
    remote: Remote | None = None
    facts: Facts | None = None
    locked: bool = False
    converged: Converged | None = None  # the answer of the write-restart-verify-unlock round trip, once sent
    notes: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.target.endpoint.address}:{self.target.endpoint.port}"


# What apply can carry out, per kind of change; anything else fails the device before it is touched.
EXECUTABLE = {
    "file": {Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE},
    "link": {Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE},
    "artifact": {Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE},
    "record": {Action.CREATE, Action.UPDATE},
    "unit": {Action.RESTART},
    "refresh": {Action.RESTART},
    "directory": {Action.DELETE},  # only directories apply created, left empty (rmdir)
    "lock": {Action.DELETE},  # carried out by taking the lock over (apply --force-unlock), then unlocking
    "leftover": {Action.DELETE},
}
UPLOADS = (Action.CREATE, Action.UPDATE, Action.REPLACE)
WRITES = ("file", "link", "record", "leftover", "directory")  # the kinds of change the write script carries out


def uploads(plan: DevicePlan | None) -> list[Change]:
    return [c for c in plan.changes if c.kind == "artifact" and c.action in UPLOADS] if plan else []


def prunes(plan: DevicePlan | None) -> list[Change]:
    """Old images: removed only once the new ones are in use (after verify)."""
    return [c for c in plan.changes if c.kind == "artifact" and c.action is Action.DELETE] if plan else []


def has_writes(run: DeviceRun) -> bool:
    return run.plan is not None and any(c.kind in WRITES for c in run.plan.changes)


def has_restarts(run: DeviceRun) -> bool:
    return run.plan is not None and (
        run.plan.daemon_reload or any(c.action is Action.RESTART for c in run.plan.changes)
    )


class Phases:
    """The phases of one plan/apply/reset run, bound to its shared settings (one lock token per run)."""

    def __init__(
        self,
        info: dict[str, Any],
        cache: ContentCache,
        hints: Hints,
        *,
        command: str = "apply",
        force_unlock: bool = False,
        artifact_cache: ArtifactCache | None = None,
        lock_early: bool = False,
    ) -> None:
        self.info = info
        # An apply nobody reviews (--yes): the plan's probe also takes the lock of a device whose record says it is
        # behind, so its facts are read under the lock and apply needs no lock round trip of its own.
        self.lock_early = lock_early and not force_unlock
        self.cache = cache
        self.artifact_cache = artifact_cache or ArtifactCache()
        self.hints = hints
        self.force_unlock = force_unlock
        self.token = secrets.token_hex(8)
        self.command = command
        # Connections a plan made for apply to use: one connection per device for the whole run.
        self.parked: dict[str, Parked] = {}
        self.when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        self.check_render = Phase("check-render", "checking the plan against the render", self._check_render)
        self.check_plan = Phase("check-plan", "checking apply can carry out the plan", self._check_plan)
        self.connect = Phase("connect", "connecting", self._connect)
        self.probe = Phase("probe", "reading facts", self._probe)
        self.make_plan = Phase("plan", "planning", self._plan)
        self.lock = Phase("lock", "locking and reading facts", self._lock)
        self.lock_unless_held = Phase(
            "lock", "locking and reading facts", self._lock, should_run=lambda run: not run.locked
        )
        self.recheck = Phase("recheck", "checking the facts against the plan", self._recheck)
        self.upload = Phase(
            "upload",
            "uploading images",
            self._upload,
            should_run=lambda run: bool(uploads(run.plan)),
            changes_device=True,
        )
        # write, restart and verify share one round trip (scripts.converge, sent by the first of them that runs);
        # each phase then judges its own part of the answer.
        self.write = Phase(
            "write", "writing files, restarting, verifying", self._write, should_run=has_writes, changes_device=True
        )
        self.restart = Phase("restart", "restarting units", self._restart, should_run=has_restarts, changes_device=True)
        self.verify = Phase(
            "verify",
            "verifying",
            self._verify,
            should_run=lambda run: has_writes(run) or has_restarts(run) or bool(uploads(run.plan)),
        )
        self.prune = Phase(
            "prune",
            "removing old images",
            self._prune,
            should_run=lambda run: bool(prunes(run.plan)),
            changes_device=True,
        )
        self.unlock = Phase("unlock", "unlocking", self._unlock, cleanup=True)
        self.disconnect = Phase("disconnect", "disconnecting", disconnect, cleanup=True)
        self.park = Phase("disconnect", "disconnecting", self._park, cleanup=True)

    @functools.cached_property
    def who(self) -> str:
        # Asked of git only when a lock is taken or a record written: a plan never needs it.
        return operator()

    @property
    def holder(self) -> str:
        return describe_holder(self.who, self.command)

    def plan_phases(self, *, keep: bool = False) -> list[Phase[DeviceRun]]:
        """`keep`: the plan is for an apply of this run, which goes on with the connection of each device that
        has something to do (see `close`)."""
        return [self.connect, self.probe, self.make_plan, self.park if keep else self.disconnect]

    def apply_phases(self) -> list[Phase[DeviceRun]]:
        return [
            self.check_render,
            self.check_plan,
            self.connect,
            self.lock_unless_held,
            self.recheck,
            self.upload,
            self.write,
            self.restart,
            self.verify,
            self.prune,
            self.unlock,
            self.disconnect,
        ]

    def converge_phases(self) -> list[Phase[DeviceRun]]:
        """After reset's reboot: plan the rebuilt device (its facts read under the lock), then apply exactly as
        apply does (connected already)."""
        return [
            self.lock,
            self.make_plan,
            self.check_plan,
            self.upload,
            self.write,
            self.restart,
            self.verify,
            self.prune,
            self.unlock,
            self.disconnect,
        ]

    # -- phases ---------------------------------------------------------------------------------------------

    def _connect(self, run: DeviceRun) -> None:
        parked = self.parked.pop(run.device, None)
        if parked is not None and parked.remote.alive:
            run.remote = parked.remote
            run.notes += parked.notes
            if parked.locked:  # taken by the plan's probe, which read these facts under it
                run.locked, run.facts = True, parked.facts
            return
        if parked is not None:
            # It died while the operator read the plan: a fresh one, with the same checks. A lock taken early is
            # still this run's on the device; the lock phase finds it so.
            parked.remote.close()
        run.remote = Remote.connect(run.target.endpoint)

    def _park(self, run: DeviceRun) -> None:
        if run.remote is not None and run.plan is not None and (run.plan.has_changes or self.force_unlock):
            self.parked[run.device] = Parked(run.remote, run.locked, run.facts, run.notes)
            run.remote, run.locked = None, False
        else:
            self._unlock(run)  # taken early, but there is nothing to change
            disconnect(run)

    def close(self) -> None:
        """Close the connections a plan kept that apply did not take (a declined or failed run), releasing the
        locks taken early on them."""
        while self.parked:
            _, parked = self.parked.popitem()
            with contextlib.suppress(Exception):
                if parked.locked and parked.remote.alive:
                    parked.remote.unlock(self.token)
            parked.remote.close()

    def _probe(self, run: DeviceRun) -> None:
        assert run.remote is not None
        paths = probed(run.target.desired)
        if not self.lock_early:
            run.facts = run.remote.probe(*paths)
            return
        answer, sections = run.remote.probe_locking_if_behind(
            self.token, self.holder, run.target.stamp.fingerprint, paths
        )
        if answer is not None:
            _held(run, answer)  # before the facts are parsed: whatever goes wrong there, cleanup releases the lock
        # A lock held by another run is not an error yet: the plan is shown, and apply's lock phase says who holds it.
        run.facts = parse_facts(sections, run.device)

    def _plan(self, run: DeviceRun) -> None:
        run.plan = self.device_plan(run)

    def device_plan(self, run: DeviceRun) -> DevicePlan:
        assert run.facts is not None
        plan = plan_device(
            run.target.desired,
            run.facts,
            address=run.address,
            install_disk=run.target.install_disk,
            lookup=self.cache.get,
            seal=run.target.seal,
            stamp=run.target.stamp,
            lock_token=self.token,
            holder_gone=gone,
        )
        lock = next((c for c in plan.changes if c.kind == "lock"), None)
        if lock is not None:
            plan.warnings.append(self._lock_advice(run.device, bool((lock.before or {}).get("holder_gone"))))
        return plan

    def _lock_advice(self, device: str, dead: bool) -> str:
        unlock = self.hints.command("apply", "--device", device, "--force-unlock")
        if dead:
            return f"the device is locked by a run that is gone; clear its lock (and finish its work) with: {unlock}"
        return f"the device is locked: wait for that apply to finish; if it died, clear its lock with: {unlock}"

    def _check_render(self, run: DeviceRun) -> None:
        """A saved plan holds hashes only; the content comes from a fresh render, which must still match it."""
        assert run.plan is not None
        target = run.target
        files: dict[str, str | None] = {
            f.path: target.seal(f.sha256) if f.secret else f.sha256 for f in target.desired.files
        }
        files |= {a.path: a.sha256 for a in target.desired.artifacts}
        links = {link.path: link.target for link in target.desired.links}
        for change in run.plan.changes:
            after = change.after or {}
            if change.kind in ("file", "artifact") and "sha256" in after:
                stale = files.get(change.target) != after["sha256"]
            elif change.kind == "link" and "target" in after:
                stale = links.get(change.target) != after["target"]
            elif change.kind == "record" and "desired_fingerprint" in after:
                stale = after["desired_fingerprint"] != target.stamp.fingerprint
            else:
                continue
            if stale:
                raise UmhctlError(
                    f"plan is stale for {run.device}: {change.target} renders differently now (blueprint or "
                    "secrets changed since the plan)",
                    hint=f"make a new plan: {self.hints.command('plan')}",
                )

    def _check_plan(self, run: DeviceRun) -> None:
        """Refuse, before touching the device, a plan with a change apply cannot carry out."""
        assert run.plan is not None
        refused = [c for c in run.plan.changes if c.action not in EXECUTABLE.get(c.kind, set())]
        # Only umhctl's own temp files are ever removed as leftovers, whatever a (saved) plan says.
        refused += [c for c in run.plan.changes if c.kind == "leftover" and not _is_temp(c.target)]
        kept = [
            c.target
            for c in run.plan.changes
            if c.action is Action.REPLACE
            and (c.before or {}).get("type") == "directory"
            and not (c.before or {}).get("removable")
        ]
        if kept and not refused:
            raise UmhctlError(
                f"a directory stands where a file belongs ({', '.join(kept)}); umhctl did not create it, or it "
                f"holds other files, and umhctl never deletes such a directory; nothing was changed on {run.device}",
                hint="move it away by hand (or change the blueprint), then apply again",
            )
        missing = [c for c in uploads(run.plan) if not self._cached(c)]
        if missing and not refused:
            names = ", ".join(str((c.after or {}).get("name") or c.target) for c in missing)
            raise UmhctlError(
                f"{names} not in the local artifact cache; nothing was changed on {run.device}",
                hint=f"download and verify it first: {self.hints.command('fetch')}",
            )
        if not refused:
            return
        if all(c.action is Action.REQUIRES_RESET for c in refused):
            what = "; ".join(f"{c.target}: {c.reason}" for c in refused)
            raise UmhctlError(
                f"apply cannot carry out this plan, so it changed nothing on {run.device}: {what}",
                hint="reinstall it from install media: "
                f"{self.hints.command('reset', 'device', run.device, '--media', 'DIR')}, then "
                f"{self.hints.command('reset', 'device', run.device, '--wait')}",
            )
        raise UmhctlError(
            f"apply cannot carry out {', '.join(f'{c.action.value} {c.kind} {c.target}' for c in refused)}; "
            f"nothing was changed on {run.device}"
        )

    def _lock(self, run: DeviceRun) -> None:
        """Take the lock and read the facts under it, in one round trip."""
        self._take_lock(run, probe=True)

    def lock_only(self, run: DeviceRun) -> None:
        self._take_lock(run, probe=False)

    def _take_lock(self, run: DeviceRun, *, probe: bool) -> None:
        assert run.remote is not None
        asked = probed(run.target.desired) if probe else None
        answer = run.remote.lock(self.token, self.holder, force=self.force_unlock, probe=asked)
        if answer.facts is not None:
            run.facts = answer.facts
        if _held(run, answer):
            return
        if answer.state == "held":
            unlock = self.hints.command("apply", "--device", run.device, "--force-unlock")
            holder = answer.holder or "another run"
            if answer.holder and gone(answer.holder):
                pid, host = where(answer.holder) or (0, "")
                raise UmhctlError(
                    f"locked by {holder} for {answer.age} s, but that run is gone (pid {pid} is not running on "
                    f"{host}): its apply was interrupted",
                    hint=f"clear its lock and converge the device with: {unlock}",
                )
            raise UmhctlError(
                f"locked by {holder} for {answer.age} s: another apply is running on this device, or one died "
                "on another machine",
                hint=f"wait for it to finish; if it died, clear its lock with: {unlock}",
            )
        raise UmhctlError("the device lock kept changing hands while umhctl tried to take it; try again")

    def _unlock(self, run: DeviceRun) -> None:
        if run.locked and run.remote is not None:
            run.locked = False
            if not run.remote.unlock(self.token):
                run.notes.append(LOCK_TAKEN)

    def _recheck(self, run: DeviceRun) -> None:
        """The facts read under the lock must be those the plan was made from."""
        assert run.plan is not None
        facts = run.facts
        assert facts is not None
        sealed = secret_paths(run.target.desired, facts)
        if facts.fingerprint(sealed, run.target.seal) != run.plan.fingerprint:
            now = facts.path_states(sealed, run.target.seal)
            then = run.plan.path_states
            changed = sorted(p for p in set(now) | set(then) if now.get(p) != then.get(p)) or [
                "the applied-state record"
            ]
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise UmhctlError(
                f"plan is stale for {run.device}: {shown} changed since the plan was made",
                hint=f"make a new plan: {self.hints.command('plan')}",
            )

    def _cached(self, change: Change) -> bool:
        after = change.after or {}
        pin = Pin(str(after.get("sha256")), after.get("size"), "")
        return bool(after.get("sha256")) and self.artifact_cache.has(pin)

    def _upload(self, run: DeviceRun) -> None:
        assert run.remote is not None
        for index, change in enumerate(uploads(run.plan)):
            after = change.after or {}
            pin = Pin(str(after["sha256"]), after.get("size"), "")
            run.remote.upload(change.target, self.artifact_cache.path(pin), pin.sha256, self.token, index)
            run.notes.append(f"uploaded {after.get('name') or change.target}")

    def _prune(self, run: DeviceRun) -> None:
        assert run.remote is not None
        old = [c.target for c in prunes(run.plan)]
        run.remote.prune(old)
        run.notes.append("removed " + ", ".join(p.rsplit("/", 1)[1] for p in old))

    def _round_trip(self, run: DeviceRun) -> Converged:
        """Send the write, the restarts, the verifying probe and (unless old images are still to go) the unlock
        in one script, once per run; later phases read the same answer."""
        if run.converged is not None:
            return run.converged
        assert run.remote is not None and run.plan is not None
        write = None
        writes = [c for c in run.plan.changes if c.kind in WRITES]
        if writes:
            record = self.record(run)
            history = {k: record[k] for k in ("applied_at", "applied_by", "blueprint", "umhctl_version")}
            history["changes"] = sum(1 for c in run.plan.changes if c.kind != "unit")
            write = (writes, run.target.desired, record, history)
        units = [c.target for c in run.plan.changes if c.action is Action.RESTART]
        restart = (units, run.plan.daemon_reload) if has_restarts(run) else None
        unlock = run.locked and not prunes(run.plan)
        answer = run.remote.converge(self.token, probed(run.target.desired), write, restart, unlock=unlock)
        run.converged = answer
        if answer.unlocked is not None:
            run.locked = False
            if not answer.unlocked:
                run.notes.append(LOCK_TAKEN)
        return answer

    def _write(self, run: DeviceRun) -> None:
        assert run.plan is not None
        answer = self._round_trip(run)
        if answer.write_status != 0 or not answer.applied:
            state = (
                "some files may be in place: run plan to see what is left"
                if answer.renaming
                else "the device was left unchanged"
            )
            status = "no answer" if answer.write_status is None else f"exit {answer.write_status}"
            raise UmhctlError(f"writing files failed ({status}); {state}: {tail(answer.stderr)}")
        run.notes += answer.warnings
        self.cache.put_all(run.target.desired)
        run.notes.append(describe(run.plan))

    def _restart(self, run: DeviceRun) -> None:
        assert run.plan is not None
        answer = self._round_trip(run)
        units = [c.target for c in run.plan.changes if c.action is Action.RESTART]
        if answer.restart_status != 0:
            failed = ", ".join(answer.restart_failed) or (
                "systemd daemon-reload" if answer.restart_status is not None else "(no answer)"
            )
            raise UmhctlError(f"files are in place, but restarting failed for {failed}: {tail(answer.stderr)}")
        if units:
            run.notes.append("restarted " + ", ".join(units))

    def _verify(self, run: DeviceRun) -> None:
        """A new plan must be empty (restarts aside) and no unit restarted for this run may have failed."""
        assert run.plan is not None
        restarted = [c.target for c in run.plan.changes if c.action is Action.RESTART]
        answer = self._round_trip(run)
        if answer.facts is None:
            why = answer.facts_error or f"no answer ({tail(answer.stderr) or 'connection lost?'})"
            raise UmhctlError(f"the changes were made, but reading the device's state to verify them failed: {why}")
        run.facts = answer.facts
        after = self.device_plan(run)
        # Restarts are checked below by unit state; old images are removed after this check (prune).
        left = [c for c in after.changes if c.action is not Action.RESTART and c not in prunes(after)]
        if left:
            raise UmhctlError(
                "after apply the device still differs: " + ", ".join(f"{c.action.value} {c.target}" for c in left)
            )
        assert run.facts is not None
        failed = [u for u in restarted if run.facts.units.get(u) == "failed"]
        if failed:
            raise UmhctlError(
                f"the files are in place, but {', '.join(failed)} failed after the restart",
                hint="look at `journalctl -u UNIT` on the device",
            )

    def record(self, run: DeviceRun) -> dict[str, Any]:
        """The applied-state record this run writes on the device."""
        desired = run.target.desired
        previous = run.facts.record if run.facts else None
        return {
            "format_version": "1",
            "umhctl_version": __version__,
            "site": self.info["site"],
            "device": run.device,
            "blueprint": {
                "commit": run.target.stamp.commit,
                "dirty": run.target.stamp.dirty,
                "path": self.info["path"],
            },
            "desired_fingerprint": run.target.stamp.fingerprint,
            "applied_at": self.when,
            "applied_by": self.who,
            # Only a reinstall moves Flatcar to another disk: until then the record keeps the disk it is on.
            "install_disk": (previous or {}).get("install_disk") or run.target.install_disk,
            "files": {
                f.path: {
                    "sha256": f.sha256,
                    "mode": f"{f.mode:04o}",
                    "owner": f.owner,
                    "group": f.group,
                    "restarts": list(f.restarts),
                    "secret": f.secret,
                }
                for f in desired.files
            },
            "links": {link.path: link.target for link in desired.links},
        }


@dataclass
class Parked:
    """A device's connection, kept from its plan for its apply."""

    remote: Remote
    locked: bool  # the plan's probe took the device lock (lock_early)
    facts: Facts | None  # what that probe read, under the lock when `locked`
    notes: list[str]


LOCK_TAKEN = "the lock was taken away while this run held it (--force-unlock by someone else)"


def _held(run: DeviceRun, answer: LockAnswer) -> bool:
    """Note a lock the run took (a stale one taken over says whose it was); False when it took none."""
    if answer.state not in ("locked", "took_over"):
        return False
    if answer.state == "took_over":
        run.notes.append(f"took over the lock of {answer.holder or 'an unknown run'} (held {answer.age} s)")
    run.locked = True
    return True


def _is_temp(path: str) -> bool:
    return path.startswith("/") and bool(TEMP_NAME.fullmatch(path.rsplit("/", 1)[-1]))


def probed(desired: DesiredState) -> tuple[list[str], list[str], list[str]]:
    """What the probe asks about for a desired state: its paths, the units it restarts, the image directories."""
    paths = [f.path for f in desired.files] + [link.path for link in desired.links]
    paths += [a.path for a in desired.artifacts]
    units = sorted(u for u in managed_restarts(desired) if u.endswith(UNIT_SUFFIXES))
    dirs = sorted({a.path.rsplit("/", 1)[0] for a in desired.artifacts})
    return paths, units, dirs


def disconnect(run: DeviceRun) -> None:
    if run.remote is not None:
        run.remote.close()
        run.remote = None


def describe(plan: DevicePlan) -> str:
    words = {Action.CREATE: "created", Action.UPDATE: "updated", Action.REPLACE: "replaced", Action.DELETE: "deleted"}
    counts = {word: 0 for word in words.values()}
    for change in plan.changes:
        if change.kind in ("file", "link") and change.action in words:
            counts[words[change.action]] += 1
    parts = [f"{n} {word}" for word, n in counts.items() if n]
    if parts:
        return ", ".join(parts)
    record = next((c for c in plan.changes if c.kind == "record"), None)
    if record is not None and record.action is Action.CREATE:
        return "applied-state record written (umhctl now owns the device's files)"
    return "applied-state record updated"


def plan_site(
    info: dict[str, Any],
    fleet: Sequence[Target],
    phases: Phases,
    *,
    parallel: int,
    reporter: Reporter | None,
    keep: bool = False,
) -> Plan:
    """Plan every device. `keep`: for an apply, which then uses the same connections (`Phases.close` closes
    those it did not use)."""
    runs = [DeviceRun(t.device, t) for t in fleet]
    outcomes = run_fleet(runs, phases.plan_phases(keep=keep), parallel=parallel, reporter=reporter, activity="plan")
    devices = []
    for run, outcome in zip(runs, outcomes, strict=True):
        if outcome.ok and run.plan is not None:
            devices.append(run.plan)
        else:
            devices.append(DevicePlan(run.device, run.address, error=outcome.error))
    return Plan(info, devices, __version__)


def apply_plan(
    plan: Plan,
    fleet: Sequence[Target],
    phases: Phases,
    *,
    parallel: int,
    reporter: Reporter | None,
) -> list[Outcome]:
    """Execute the plan's devices that have changes (or all, to clear their locks with --force-unlock)."""
    by_device = {d.device: d for d in plan.devices if not d.error}
    runs = [
        DeviceRun(t.device, t, by_device[t.device])
        for t in fleet
        if t.device in by_device and (by_device[t.device].has_changes or phases.force_unlock)
    ]
    outcomes = run_fleet(runs, phases.apply_phases(), parallel=parallel, reporter=reporter)
    for run, outcome in zip(runs, outcomes, strict=True):
        outcome.notes += run.notes
    return outcomes


def save_plan(plan: Plan, path: Path) -> None:
    write_atomic(path, json.dumps({"command": "plan", **plan.to_dict()}, indent=2) + "\n")


def load_plan(path: Path) -> Plan:
    try:
        return Plan.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UmhctlError(f"{path}: no such plan file") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UmhctlError(f"{path}: not a umhctl plan file ({exc})") from None


Confirm = Callable[[Plan], bool]
