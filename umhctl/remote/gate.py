"""The remote gate: everything umhctl does on a device goes through `Remote`, one method per script.

Each method runs one script from `scripts` over the device's SSH connection and turns the answer into data or
a UmhctlError that says what state the device was left in. Phases never build scripts or read raw output.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umhctl.errors import UmhctlError
from umhctl.facts import TEMP_NAME, Facts, LockFact, PathFact
from umhctl.plan.model import Change
from umhctl.remote import scripts
from umhctl.remote.ssh import CONNECT_TIMEOUT, Connection, Endpoint, connect
from umhctl.render.desired import DesiredState


@dataclass
class DeviceStatus:
    os_version: str | None = None  # /etc/os-release VERSION_ID
    k3s: dict[str, tuple[str, bool]] = field(default_factory=dict)  # unit -> (is-active, main process exists)
    failed_units: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LockAnswer:
    state: str  # "locked", "took_over", "held" or "busy"
    age: int = 0  # seconds the lock found there had been held
    holder: str = ""  # who held it (as its run described itself), when known
    facts: Facts | None = None  # read under the lock, when asked for and the lock was taken


Probed = tuple[Sequence[str], Sequence[str], Sequence[str]]  # paths, units, image directories (converge.probed)


@dataclass
class Converged:
    """What came back from scripts.converge: each part's outcome, None where the part did not run (or the
    connection was lost before it)."""

    write_status: int | None = None
    renaming: bool = False  # the write had started renaming files into place
    applied: bool = False
    warnings: list[str] = field(default_factory=list)
    restart_status: int | None = None
    restart_failed: list[str] = field(default_factory=list)
    facts: Facts | None = None
    facts_error: str | None = None  # the verifying probe came back damaged
    unlocked: bool | None = None  # None: not asked to unlock, or the answer never came
    stderr: str = ""


class Remote:
    """One device, reached over one SSH connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @classmethod
    def connect(cls, endpoint: Endpoint, *, timeout: float = CONNECT_TIMEOUT) -> Remote:
        return cls(connect(endpoint, timeout=timeout))

    @property
    def device(self) -> str:
        return self.conn.endpoint.device

    def close(self) -> None:
        self.conn.close()

    @property
    def alive(self) -> bool:
        return self.conn.alive

    # -- facts ----------------------------------------------------------------------------------------------

    def probe(self, paths: Sequence[str], units: Sequence[str], dirs: Sequence[str] = ()) -> Facts:
        result = self.conn.run(scripts.probe(paths, units, dirs))
        if result.status != 0:
            raise UmhctlError(f"reading the device's state failed (exit {result.status}): {tail(result.stderr)}")
        return parse_facts(result.stdout, self.device)

    def status_probe(
        self, paths: Sequence[str], units: Sequence[str], dirs: Sequence[str], k3s_units: Sequence[str]
    ) -> tuple[Facts, DeviceStatus]:
        """The probe's facts and, in the same round trip, what `umhctl status` reports besides."""
        result = self.conn.run(scripts.probe(paths, units, dirs, status_units=k3s_units))
        if result.status != 0:
            raise UmhctlError(f"reading the device's state failed (exit {result.status}): {tail(result.stderr)}")
        return parse_status(result.stdout, self.device)

    # -- lock -----------------------------------------------------------------------------------------------

    def lock(self, token: str, holder: str, *, force: bool = False, probe: Probed | None = None) -> LockAnswer:
        """Take the device lock; with `probe`, also read the facts under it in the same round trip."""
        if probe is None:
            out = self.conn.run(scripts.lock(token, holder, force=force)).stdout.strip()
            answer = _lock_answer(out)
        else:
            result = self.conn.run(scripts.lock_and_probe(token, holder, *probe, force=force))
            first, _, rest = result.stdout.partition("\n")
            answer = _lock_answer(first.strip())
            if answer.state in ("locked", "took_over"):
                # The lock is this run's now: whatever goes wrong reading the facts, the unlock phase releases it.
                facts = parse_facts(rest, self.device)
                answer = LockAnswer(answer.state, answer.age, answer.holder, facts)
        return answer

    def probe_locking_if_behind(
        self, token: str, holder: str, fingerprint: str, probe: Probed
    ) -> tuple[LockAnswer | None, str]:
        """The probe, taking the lock first when the device's record does not name `fingerprint`: the lock's
        answer (None: the device is at that state, no lock asked for) and the probe's output (parse_facts)."""
        result = self.conn.run(scripts.probe_locking_if_behind(token, holder, fingerprint, *probe))
        first, _, rest = result.stdout.partition("\n")
        first = first.strip()
        return (None if first == scripts.AT_DESIRED else _lock_answer(first)), rest

    def unlock(self, token: str) -> bool:
        """Release this run's lock; False when the run no longer held it (someone forced it away)."""
        return self.conn.run(scripts.unlock(token)).stdout.strip() == "UNLOCKED"

    # -- changes --------------------------------------------------------------------------------------------

    def converge(
        self,
        token: str,
        probe: Probed,
        write: tuple[Sequence[Change], DesiredState, dict[str, Any], dict[str, Any]] | None,
        restart: tuple[Sequence[str], bool] | None,
        *,
        unlock: bool,
    ) -> Converged:
        """Write, restart, probe again and unlock in one round trip (scripts.converge); the answer as data, for
        the phases to judge part by part. A lost connection shows as the parts that never answered."""
        try:
            result = self.conn.run(scripts.converge(token, probe, write, restart, unlock=unlock))
        except UmhctlError as exc:
            return Converged(stderr=str(exc).removeprefix(f"{self.device}: "))
        return parse_converged(result.stdout, result.stderr, self.device)

    def upload(self, path: str, source: Path, sha256: str, token: str, index: int) -> None:
        """Put an artifact in place from the operator's cache; its hash is checked on the device first."""
        result = self.conn.upload(scripts.upload(path, sha256, token, index), source)
        words = result.stdout.split()
        if result.status == 3 and words[:1] == ["MISMATCH"]:
            raise UmhctlError(
                f"{path} arrived with sha256 {words[1] if len(words) > 1 else '?'}, not {sha256}: the transfer "
                "was damaged; nothing was switched to it",
                hint="run apply again",
            )
        if result.status != 0 or "UPLOADED" not in words:
            raise UmhctlError(f"uploading {path} failed (exit {result.status}): {tail(result.stderr)}")

    def prune(self, paths: Sequence[str]) -> None:
        result = self.conn.run(scripts.prune(paths))
        if result.status != 0 or "PRUNED" not in result.stdout.split():
            raise UmhctlError(
                f"removing {', '.join(paths)} failed (exit {result.status}): {tail(result.stderr)}; the new "
                "images are in use, the old ones are left on the device"
            )

    # -- reset ----------------------------------------------------------------------------------------------

    def stage_reset(self, ignition: str, keep: Sequence[str]) -> None:
        result = self.conn.run(scripts.stage_reset(ignition, keep))
        if result.status != 0 or "STAGED" not in result.stdout.split():
            raise UmhctlError(
                f"staging the reset failed (exit {result.status}): {tail(result.stderr)}; "
                "nothing was reset, the device runs as before"
            )

    def reboot(self) -> None:
        """Ask the device to reboot. The connection may die with the reboot (no answer); an answer must be a
        success."""
        try:
            result = self.conn.run(scripts.reboot(), timeout=15)
        except UmhctlError:
            return
        # -1: paramiko's "the channel closed without an exit status": the reboot took the connection down.
        if result.status not in (0, -1):
            raise UmhctlError(
                f"the device refused to reboot (exit {result.status}): {tail(result.stderr, 200)}; the reset is "
                "staged and happens at its next reboot"
            )

    def reset_state(self) -> str | None:
        """None while the old system still runs (the reset is pending), else the rebuilt device's host name."""
        out = self.conn.run(scripts.reset_state()).stdout.strip()
        if out.startswith("DONE "):
            return out.removeprefix("DONE ").strip()
        if out == "PENDING":
            return None
        raise UmhctlError(f"unexpected answer after the reset: {out[-200:] or 'none'}")

    def backup(self, paths: Sequence[str], target: Path, *, stall: float) -> int:
        """Stream a tar.gz of `paths` into `target` (created 0600: it holds the site's data); its size."""
        what = ", ".join(paths)
        try:
            with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                status = self.conn.stream(scripts.backup(paths), out, stall=stall)
        except UmhctlError as exc:
            target.unlink(missing_ok=True)
            raise UmhctlError(f"backing up {what} failed: {str(exc).removeprefix(self.device + ': ')}") from None
        if status != 0:
            target.unlink(missing_ok=True)
            raise UmhctlError(f"backing up {what} failed (exit {status})")
        return target.stat().st_size


def _lock_answer(out: str) -> LockAnswer:
    word, _, rest = out.partition(" ")
    if word == "LOCKED":
        return LockAnswer("locked")
    if word in ("TOOK_OVER", "HELD"):
        age, _, who = rest.partition(" ")
        try:
            seconds = int(age)
        except ValueError:
            seconds = 0
        return LockAnswer("took_over" if word == "TOOK_OVER" else "held", seconds, _decode(who))
    if word == "BUSY":
        return LockAnswer("busy")
    raise UmhctlError(f"could not take the device lock: {out[-200:] or 'no answer'}")


def parse_converged(stdout: str, stderr: str, device: str) -> Converged:
    parts: dict[str, list[str]] = {}
    statuses: dict[str, int] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(scripts.MARK):
            name, _, status = line.removeprefix(scripts.MARK).partition(" ")
            if name.endswith("-status"):
                with contextlib.suppress(ValueError):
                    statuses[name.removesuffix("-status")] = int(status)
                current = None
            else:
                current = parts.setdefault(name, [])
        elif current is not None:
            current.append(line)
    answer = Converged(stderr=stderr)
    if "write" in parts:
        words = [line.split(" ", 1)[0] for line in parts["write"]]
        answer.write_status = statuses.get("write")
        answer.renaming, answer.applied = "RENAMING" in words, "APPLIED" in words
        answer.warnings = [line.removeprefix("WARNING ") for line in parts["write"] if line.startswith("WARNING ")]
    if "restart" in parts:
        answer.restart_status = statuses.get("restart")
        answer.restart_failed = [line.split(" ", 1)[1] for line in parts["restart"] if line.startswith("FAILED ")]
    if "probe" in parts:
        try:
            answer.facts = parse_facts("\n".join(parts["probe"]), device)
        except UmhctlError as exc:
            answer.facts_error = str(exc).removeprefix(f"{device}: ")
    if "unlock" in parts:
        said = [line.strip() for line in parts["unlock"] if line.strip()]
        answer.unlocked = said == ["UNLOCKED"] if said else None
    return answer


def tail(text: str, limit: int = 300) -> str:
    """The end of a command's stderr, for a message."""
    return text.strip()[-limit:]


def _decode(b64: str) -> str:
    if b64 in ("", "-"):
        return ""
    try:
        return base64.b64decode(b64).decode("utf-8", "replace").strip().replace("\n", " ")
    except (binascii.Error, ValueError):
        return b64


_KINDS = {"f": "file", "l": "link", "d": "directory"}
_SECTIONS = ("P", "S", "R", "U", "L", "T", "D", "E")


def parse_status(output: str, device: str) -> tuple[Facts, DeviceStatus]:
    """The probe's facts and the status section X (scripts.probe with status_units)."""
    lines = output.splitlines()
    if "X" not in lines or "E" not in lines[lines.index("X") :]:
        raise UmhctlError(f"{device}: the status probe ended early (connection lost?)")
    start = lines.index("X")
    end = start + lines[start:].index("E")
    status = DeviceStatus()
    for line in lines[start + 1 : end]:
        kind, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if kind == "version":
            status.os_version = rest or None  # os-release VERSION_ID
        elif kind == "k3s" and len(fields) == 3:
            status.k3s[fields[0]] = (fields[1], fields[2] == "yes")
        elif kind == "failed" and rest:
            status.failed_units.append(rest)
    return parse_facts("\n".join(lines[:start] + lines[end:]), device), status


def parse_facts(output: str, device: str) -> Facts:
    """Facts from the probe's output; a truncated or garbled answer is an error, never a guess."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line in _SECTIONS:
            current = sections.setdefault(line, [])
        elif current is not None:
            current.append(line)
        else:
            raise UmhctlError(f"{device}: cannot read the device's state: unexpected output {line[:60]!r}")
    if "E" not in sections:
        raise UmhctlError(f"{device}: the state probe ended early (connection lost or out of space?)")
    try:
        hashes = {}
        for line in sections.get("S", []):
            digest, path = line.split("  ", 1)
            hashes[path] = digest
        paths: dict[str, PathFact] = {}
        for line in sections.get("P", []):
            path, kind, mode, owner, group, target = line.split("\t")
            if kind == "f":
                paths[path] = PathFact("file", int(mode, 8), owner, group, hashes.get(path))
            elif kind == "l":
                paths[path] = PathFact("link", target=target)
            else:
                paths[path] = PathFact("other", other=_KINDS.get(kind, f"file of type {kind}"))
        record_lines = [line for line in sections.get("R", []) if line]
        record = json.loads(record_lines[0]) if record_lines else None
        units = {}
        for line in sections.get("U", []):
            name, _, active = line.partition("\t")
            units[name] = active
        lock = None
        for line in sections.get("L", []):
            owner, age, who = line.split("\t")
            lock = LockFact("" if owner == "-" else owner, max(int(age), 0), _decode(who))
        # Only umhctl's exact temp-name shape counts: nothing else is ever taken for a leftover.
        leftovers = tuple(sorted({p for p in sections.get("T", []) if TEMP_NAME.fullmatch(p.rsplit("/", 1)[-1])}))
        created = {}
        for line in sections.get("D", []):
            directory, entries = line.rsplit("\t", 1)
            created[directory] = int(entries)
    except (ValueError, IndexError, binascii.Error, json.JSONDecodeError) as exc:
        raise UmhctlError(f"{device}: cannot read the device's state: {exc}") from None
    return Facts(paths, record, units, lock, leftovers, created)
