"""Bash scripts that change a device: the lock, and applying a plan's changes atomically.

Every value is quoted with shlex.quote; file contents travel base64-encoded inside the script (on stdin, never
in argv). Apply stages every new file as a temp file in its target directory (mode, owner and fsync done
there), and only when all are staged renames them into place: a failure while staging leaves the device as it
was.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
from typing import Any

from umhctl.device.facts import LOCK_DIR, MANAGED_LIST, RECORD, STATE_DIR
from umhctl.plan.model import Action, Change
from umhctl.render.desired import DesiredState

LOCK_STALE_SECONDS = 15 * 60
HISTORY = f"{STATE_DIR}/history.jsonl"

q = shlex.quote


def lock_script(holder: str, *, force: bool = False) -> str:
    """Take the device lock. Prints `LOCKED`, `HELD <age> <holder-b64>`, or `STALE <holder-b64>` when a lock
    older than the stale timeout (an apply that died) was taken over.

    `mkdir` is the atomic test-and-set. A lock whose info is not written yet counts as brand new. A stale lock is
    first renamed away, which only one of two racing takers can do, so two can never both win.
    """
    info = base64.b64encode(holder.encode()).decode()
    return f"""set -u
mkdir -p {STATE_DIR}
chmod 0755 {STATE_DIR}
take() {{ printf '%s\\n%s\\n' "$(date +%s)" "$(printf '%s' {q(info)} | base64 -d)" > {LOCK_DIR}/info; }}
{f"rm -rf {LOCK_DIR}" if force else ":"}
if mkdir {LOCK_DIR} 2>/dev/null; then take; echo LOCKED; exit 0; fi
since=$(head -n1 {LOCK_DIR}/info 2>/dev/null || true)
who=$(tail -n +2 {LOCK_DIR}/info 2>/dev/null | base64 -w0)
now=$(date +%s)
age=$(( now - ${{since:-$now}} ))
if [ "$age" -gt {LOCK_STALE_SECONDS} ] && mv -T {LOCK_DIR} {LOCK_DIR}.stale.$$ 2>/dev/null; then
  rm -rf {LOCK_DIR}.stale.$$
  if mkdir {LOCK_DIR} 2>/dev/null; then take; echo "STALE $who"; exit 0; fi
fi
echo "HELD $age $who"
"""


def unlock_script() -> str:
    return f"rm -rf {LOCK_DIR}\n"


def _staged_file(index: int, path: str, content: bytes, mode: int, owner: str, group: str) -> list[str]:
    tmp = f"$(dirname {q(path)})/.umhctl-{index}-{secrets.token_hex(4)}.tmp"
    data = base64.encodebytes(content).decode()
    return [
        f'mkdir -p -- "$(dirname {q(path)})"',
        f't="{tmp}"',
        'staged+=("$t")',
        f"base64 -d > \"$t\" <<'UMHCTL_DATA'\n{data}UMHCTL_DATA",
        f'chmod {mode:04o} "$t"',
        f'chown {q(owner)}:{q(group)} "$t"',
        'sync "$t"',
        f'renames+=("$t" {q(path)})',
    ]


def apply_script(changes: list[Change], desired: DesiredState, record: dict[str, Any], history: dict[str, Any]) -> str:
    """The script that makes exactly these changes, then records what umhctl now manages."""
    files = {f.path: f for f in desired.files}
    links = {link.path: link for link in desired.links}
    lines = [
        "set -euo pipefail",
        "staged=(); renames=()",
        # Until everything is staged, a failure removes the temp files and leaves the device unchanged.
        'cleanup() { for t in "${staged[@]}"; do rm -f -- "$t"; done; }',
        "trap cleanup EXIT",
    ]
    metadata_only: list[str] = []
    deletes: list[str] = []
    replaced: list[str] = []  # what stands where a file or link belongs goes only once everything is staged
    for index, change in enumerate(changes):
        if change.kind == "file" and change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE):
            f = files[change.target]
            content_changes = change.before is None or change.before.get("sha256") != f.sha256
            if change.action is Action.REPLACE:
                replaced.append(f"rm -rf -- {q(f.path)}")
            if content_changes or change.action is Action.REPLACE:
                lines += _staged_file(index, f.path, f.content, f.mode, f.owner, f.group)
            else:
                metadata_only += [
                    f"chmod {f.mode:04o} -- {q(f.path)}",
                    f"chown {q(f.owner)}:{q(f.group)} -- {q(f.path)}",
                ]
        elif change.kind == "link" and change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE):
            link = links[change.target]
            tmp = f"$(dirname {q(link.path)})/.umhctl-{index}-{secrets.token_hex(4)}.lnk"
            if change.action is Action.REPLACE:
                replaced.append(f"rm -rf -- {q(link.path)}")
            lines += [
                f'mkdir -p -- "$(dirname {q(link.path)})"',
                f't="{tmp}"',
                'staged+=("$t")',
                f'ln -sfn -- {q(link.target)} "$t"',
                f'renames+=("$t" {q(link.path)})',
            ]
        elif change.action is Action.DELETE:
            deletes.append(f"rm -f -- {q(change.target)}")
    managed = "".join(f"{p}\n" for p in sorted(record["files"]) + sorted(record["links"]))
    record_text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    lines.append(f"mkdir -p {STATE_DIR}")
    # The record holds the hashes of secret-bearing files: root only, like the files themselves.
    for index, (path, text, mode) in enumerate(
        ((MANAGED_LIST, managed, 0o644), (RECORD, record_text, 0o600)), start=len(changes)
    ):
        lines += _staged_file(index, path, text.encode(), mode, "root", "root")
    rename = 'mv -f -T -- "${renames[i]}" "${renames[i+1]}"'
    lines += [
        # Everything is staged, the record included: now the renames, each atomic; the record goes last, so it
        # never claims a state the device does not have.
        "echo RENAMING",
        *replaced,
        f"for ((i = 0; i < ${{#renames[@]}} - 4; i += 2)); do {rename}; done",
        *metadata_only,
        *deletes,
        f"for ((i = ${{#renames[@]}} - 4; i < ${{#renames[@]}}; i += 2)); do {rename}; done",
        "staged=()",
        f"printf '%s\\n' {q(json.dumps(history, sort_keys=True))} >> {HISTORY}",
        "echo APPLIED",
    ]
    return "\n".join(lines) + "\n"


def restart_script(units: list[str], daemon_reload: bool) -> str:
    """Reload systemd and restart units in order; report each result instead of stopping at the first."""
    lines = ["set -u", "failed=0"]
    if daemon_reload:
        lines.append("systemctl daemon-reload || failed=1")
    for unit in units:
        lines.append(
            f"if systemctl restart -- {q(unit)}; then echo RESTARTED {q(unit)}; "
            f"else echo FAILED {q(unit)}; failed=1; fi"
        )
    lines.append("exit $failed")
    return "\n".join(lines) + "\n"
