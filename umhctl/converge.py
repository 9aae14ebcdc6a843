"""Plan and apply a site: render the desired state, read each device's facts over SSH, plan, and converge.

Apply is a list of phases per device (connect, lock, read facts, apply, restart, verify, unlock), run over the
fleet in parallel. It executes exactly a plan: one made now, or a saved one, which is refused for a device whose
facts changed since.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from umhctl import __version__
from umhctl.blueprint.loader import LoadedBlueprint
from umhctl.device import scripts
from umhctl.device.facts import Facts, parse_facts, probe_script
from umhctl.device.ssh import Connection, Endpoint, connect
from umhctl.errors import UmhctlError
from umhctl.fleet import Outcome, Phase, run_fleet
from umhctl.fsutil import write_atomic, xdg_dir
from umhctl.gitinfo import BlueprintVersion, operator
from umhctl.plan.model import Action, DevicePlan, Plan
from umhctl.plan.planner import plan_device, secret_paths
from umhctl.render import render_site
from umhctl.render.desired import DesiredState
from umhctl.secrets import SecretStore


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


@dataclass
class Target:
    device: str
    endpoint: Endpoint
    desired: DesiredState
    install_disk: str
    seal: Callable[[str], str]  # see SecretStore.sealer


def targets(
    loaded: LoadedBlueprint,
    secrets: SecretStore,
    *,
    devices: list[str] | None,
    sim: bool,
    identity: Path | None,
) -> list[Target]:
    bp = loaded.blueprint
    renders = render_site(loaded, secrets, devices=devices)
    seal = secrets.sealer()
    key: Path | None = identity
    if sim:
        from umhctl.sim.state import SimSite

        site = SimSite.load(loaded)
        known_hosts, key = site.known_hosts, identity or site.identity
    else:
        known_hosts = loaded.path.parent / bp.access.known_hosts_file
        if key is None and bp.access.identity_file:
            key = Path(bp.access.identity_file).expanduser()
            if not key.is_file():
                raise UmhctlError(
                    f"access.identityFile {key} does not exist", hint="pass -i KEY, or fix the path in the blueprint"
                )
    out = []
    for r in renders:
        device = bp.device(r.device)
        address, port = site.endpoint(r.device) if sim else (str(device.address), device.ssh_port)
        endpoint = Endpoint(r.device, address, port, bp.access.user, known_hosts, key)
        out.append(Target(r.device, endpoint, r.state, device.install_disk, seal))
    return out


@dataclass
class DeviceRun:
    """What the phases of one device share."""

    device: str
    target: Target
    plan: DevicePlan | None = None  # the plan to execute (apply) or the one made (plan)
    conn: Connection | None = None
    facts: Facts | None = None
    locked: bool = False
    applied: bool = False
    notes: list[str] = field(default_factory=list)


def open_connection(run: DeviceRun) -> None:
    run.conn = connect(run.target.endpoint)


def close_connection(run: DeviceRun) -> None:
    if run.conn is not None:
        run.conn.close()
        run.conn = None


def read_facts(run: DeviceRun) -> None:
    assert run.conn is not None
    desired = run.target.desired
    paths = [f.path for f in desired.files] + [link.path for link in desired.links]
    units = sorted({u for f in desired.files for u in f.restarts})
    result = run.conn.run(probe_script(paths, units))
    if result.status != 0:
        raise UmhctlError(f"reading the device's state failed (exit {result.status}): {result.stderr.strip()[-300:]}")
    run.facts = parse_facts(result.stdout, run.device)


def make_device_plan(run: DeviceRun, cache: ContentCache) -> DevicePlan:
    assert run.facts is not None
    return plan_device(
        run.target.desired,
        run.facts,
        address=f"{run.target.endpoint.address}:{run.target.endpoint.port}",
        install_disk=run.target.install_disk,
        lookup=cache.get,
        seal=run.target.seal,
    )


def plan_site(
    loaded: LoadedBlueprint,
    version: BlueprintVersion,
    fleet: Sequence[Target],
    *,
    parallel: int,
    console: Console,
    cache: ContentCache,
) -> Plan:
    runs = [DeviceRun(t.device, t) for t in fleet]

    def make(run: DeviceRun) -> None:
        run.plan = make_device_plan(run, cache)

    phases: list[Phase[DeviceRun]] = [
        Phase("connecting", open_connection),
        Phase("reading facts", read_facts),
        Phase("planning", make),
        Phase("disconnecting", close_connection, cleanup=True),
    ]
    outcomes = run_fleet(runs, phases, parallel=parallel, console=console, log_phases=False)
    devices = []
    for run, outcome in zip(runs, outcomes, strict=True):
        if outcome.ok and run.plan is not None:
            devices.append(run.plan)
        else:
            address = f"{run.target.endpoint.address}:{run.target.endpoint.port}"
            devices.append(DevicePlan(run.device, address, error=outcome.error))
    return Plan(blueprint_info(loaded, version), devices, __version__)


def blueprint_info(loaded: LoadedBlueprint, version: BlueprintVersion) -> dict[str, Any]:
    return {
        "path": str(loaded.path),
        "site": loaded.blueprint.metadata.name,
        "commit": version.commit,
        "dirty": version.dirty,
    }


def _record(run: DeviceRun, info: dict[str, Any], who: str, when: str) -> dict[str, Any]:
    desired = run.target.desired
    return {
        "format_version": "1",
        "umhctl_version": __version__,
        "site": info["site"],
        "device": run.device,
        "blueprint": {"commit": info["commit"], "dirty": info["dirty"], "path": info["path"]},
        "applied_at": when,
        "applied_by": who,
        # Only a reset moves Flatcar to another disk: until then the record keeps the disk it is really on.
        "install_disk": (run.facts.record or {}).get("install_disk")
        if run.facts and run.facts.record
        else run.target.install_disk,
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


def _check_saved_plan_matches_render(run: DeviceRun) -> None:
    """A saved plan holds hashes only; the content comes from a fresh render, which must still match it."""
    assert run.plan is not None
    files = {f.path: run.target.seal(f.sha256) if f.secret else f.sha256 for f in run.target.desired.files}
    links = {link.path: link.target for link in run.target.desired.links}
    for change in run.plan.changes:
        after = change.after or {}
        if change.kind == "file" and "sha256" in after:
            now = files.get(change.target)
            stale = now != after["sha256"]
        elif change.kind == "link" and "target" in after:
            stale = links.get(change.target) != after["target"]
        else:
            continue
        if stale:
            raise UmhctlError(
                f"plan is stale for {run.device}: {change.target} renders differently now (blueprint or secrets "
                "changed since the plan); run plan again"
            )


class Applier:
    """The apply phases, bound to one apply run's shared settings."""

    def __init__(self, info: dict[str, Any], cache: ContentCache, *, force_unlock: bool) -> None:
        self.info = info
        self.cache = cache
        self.force_unlock = force_unlock
        self.who = operator()
        self.when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def phases(self) -> list[Phase[DeviceRun]]:
        return [
            Phase("checking the plan against the render", _check_saved_plan_matches_render),
            Phase("connecting", open_connection),
            Phase("locking", self.lock),
            Phase("re-reading facts", self.recheck),
            Phase("applying changes", self.apply, should_run=has_writes),
            Phase("restarting units", self.restart, should_run=has_restarts),
            Phase("verifying", self.verify, should_run=lambda run: run.applied or has_restarts(run)),
            Phase("unlocking", self.unlock, cleanup=True),
            Phase("disconnecting", close_connection, cleanup=True),
        ]

    def lock(self, run: DeviceRun) -> None:
        assert run.conn is not None
        holder = f"{self.who} pid {os.getpid()} (umhctl apply)"
        out = run.conn.run(scripts.lock_script(holder, force=self.force_unlock)).stdout.strip()
        if out == "LOCKED":
            run.locked = True
        elif out.startswith("STALE"):
            run.locked = True
            run.notes.append(f"took over a stale lock of {_b64(out.split(' ', 1)[1])}")
        elif out.startswith("HELD"):
            _, age, who = (out.split(" ", 2) + ["", ""])[:3]
            raise UmhctlError(
                f"locked by {_b64(who) or 'another apply'} for {age} s: another apply is running on this device",
                hint="wait for it to finish; if it died, `umhctl apply --force-unlock` removes the lock",
            )
        else:
            raise UmhctlError(f"could not take the device lock: {out or 'no answer'}")

    def unlock(self, run: DeviceRun) -> None:
        if run.locked and run.conn is not None:
            run.conn.run(scripts.unlock_script())
            run.locked = False

    def recheck(self, run: DeviceRun) -> None:
        assert run.plan is not None
        read_facts(run)
        facts = run.facts
        assert facts is not None
        if facts.fingerprint() != run.plan.fingerprint:
            changed = _changed_paths(run, facts) or ["the applied-state record"]
            raise UmhctlError(
                f"plan is stale for {run.device}: {', '.join(changed)} changed since the plan was made; run plan again"
            )

    def apply(self, run: DeviceRun) -> None:
        assert run.conn is not None and run.plan is not None
        record = _record(run, self.info, self.who, self.when)
        history = {k: record[k] for k in ("applied_at", "applied_by", "blueprint", "umhctl_version")}
        history["changes"] = sum(1 for c in run.plan.changes if c.kind != "unit")
        writes = [
            c for c in run.plan.changes if c.kind in ("file", "link", "record") and c.action is not Action.RESTART
        ]
        result = run.conn.run(scripts.apply_script(writes, run.target.desired, record, history))
        if result.status != 0 or "APPLIED" not in result.stdout:
            state = (
                "some files may be in place: run plan to see what is left"
                if "RENAMING" in result.stdout
                else "the device was left unchanged"
            )
            raise UmhctlError(f"writing files failed (exit {result.status}); {state}: {result.stderr.strip()[-400:]}")
        run.applied = True
        self.cache.put_all(run.target.desired)
        run.notes.append(_describe(run.plan))

    def restart(self, run: DeviceRun) -> None:
        assert run.conn is not None and run.plan is not None
        units = [c.target for c in run.plan.changes if c.action is Action.RESTART]
        result = run.conn.run(scripts.restart_script(units, run.plan.daemon_reload))
        failed = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
        if result.status != 0:
            raise UmhctlError(
                "files are in place, but restarting failed for "
                f"{', '.join(failed) or 'systemd daemon-reload'}: {result.stderr.strip()[-300:]}"
            )
        if units:
            run.notes.append("restarted " + ", ".join(units))

    def verify(self, run: DeviceRun) -> None:
        read_facts(run)
        after = make_device_plan(run, self.cache)
        left = [c for c in after.changes if c.action is not Action.RESTART]
        if left:
            raise UmhctlError(
                "after apply the device still differs: " + ", ".join(f"{c.action.value} {c.target}" for c in left)
            )
        # A unit restarted for this apply must not have failed (the probe reads the states of such units).
        assert run.facts is not None and run.plan is not None
        restarted = [c.target for c in run.plan.changes if c.action is Action.RESTART]
        failed = [u for u in restarted if run.facts.units.get(u, ("", ""))[0] == "failed"]
        if failed:
            raise UmhctlError(
                f"the files are in place, but {', '.join(failed)} failed after the restart",
                hint="look at `journalctl -u UNIT` on the device",
            )


def _b64(text: str) -> str:
    try:
        return base64.b64decode(text).decode("utf-8", "replace").strip().replace("\n", " ")
    except (binascii.Error, ValueError):
        return text


def has_writes(run: DeviceRun) -> bool:
    return run.plan is not None and any(c.kind in ("file", "link", "record") for c in run.plan.changes)


def has_restarts(run: DeviceRun) -> bool:
    return run.plan is not None and (
        run.plan.daemon_reload or any(c.action is Action.RESTART for c in run.plan.changes)
    )


def _describe(plan: DevicePlan) -> str:
    words = {Action.CREATE: "created", Action.UPDATE: "updated", Action.REPLACE: "replaced", Action.DELETE: "deleted"}
    counts = {word: 0 for word in words.values()}
    for change in plan.changes:
        if change.kind in ("file", "link") and change.action in words:
            counts[words[change.action]] += 1
    parts = [f"{n} {word}" for word, n in counts.items() if n]
    return ", ".join(parts) or "applied-state record written (umhctl now owns the device's files)"


def _changed_paths(run: DeviceRun, facts: Facts) -> list[str]:
    """Which paths are not as they were when the plan was made (the record counts as a path too)."""
    assert run.plan is not None
    plan = run.plan
    now = facts.path_states(secret_paths(run.target.desired, facts), run.target.seal)
    changed = sorted(p for p in set(now) | set(plan.path_states) if now.get(p) != plan.path_states.get(p))
    return changed[:5] + ([f"and {len(changed) - 5} more"] if len(changed) > 5 else [])


def apply_plan(
    plan: Plan,
    fleet: Sequence[Target],
    *,
    parallel: int,
    console: Console,
    cache: ContentCache,
    force_unlock: bool = False,
) -> list[Outcome]:
    """Execute the plan's devices that have changes; outcomes per device (skipped ones are not included)."""
    by_device = {d.device: d for d in plan.devices}
    runs = [
        DeviceRun(t.device, t, by_device[t.device])
        for t in fleet
        if t.device in by_device and (by_device[t.device].has_changes or force_unlock)
    ]
    applier = Applier(plan.blueprint, cache, force_unlock=force_unlock)
    outcomes = run_fleet(runs, applier.phases(), parallel=parallel, console=console)
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
