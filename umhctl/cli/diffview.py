"""How `umhctl diff` reads: text for the terminal, markdown for a pull-request comment (summary table, then one
collapsible section per device). Secret-bearing files are named, never shown (the result holds no content)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umhctl.sitediff import Change, DeviceDiff, DiffResult

_SIGN = {"added": "+", "removed": "-", "changed": "~"}


def _line(change: Change) -> str:
    parts = [f"{_SIGN[change.change]} {change.kind} {change.path}"]
    if change.change != "changed":
        parts.append(change.change)
    parts += change.details
    if change.secret and change.change != "changed":
        parts.append("holds a secret: not shown")
    if change.restarts:
        parts.append("restarts " + ", ".join(change.restarts))
    return parts[0] + (" (" + "; ".join(parts[1:]) + ")" if len(parts) > 1 else "")


def _summary(device: DeviceDiff) -> str:
    if device.status in ("added", "removed"):
        return f"device {device.status}, {len(device.changes)} paths"
    counts = [f"{device.count(k)} {k}" for k in ("added", "changed", "removed") if device.count(k)]
    return ", ".join(counts) or "no change"


def text(result: DiffResult) -> str:
    out = [f"{result.blueprint}: {result.old} → {result.new}"]
    if not result.changed:
        out.append("No device changes.")
    for device in result.changed:
        out += ["", f"{device.device}: {_summary(device)}"]
        for change in device.changes:
            out.append("  " + _line(change))
            if change.diff:
                out += ["    " + line for line in change.diff.rstrip("\n").splitlines()]
    return "\n".join(out) + "\n"


def markdown(result: DiffResult) -> str:
    old, new = (
        f"{rev} (`{commit[:12]}`)" if commit else rev
        for rev, commit in ((result.old, result.old_commit), (result.new, result.new_commit))
    )
    out = [f"### umhctl diff: `{result.blueprint}` {old} → {new}", ""]
    if not result.changed:
        return "\n".join([*out, "No device changes."]) + "\n"
    out += ["| Device | Status | Added | Changed | Removed |", "| --- | --- | ---: | ---: | ---: |"]
    for d in result.devices:
        out.append(f"| {d.device} | {d.status} | {d.count('added')} | {d.count('changed')} | {d.count('removed')} |")
    for device in result.changed:
        out += ["", f"<details><summary><b>{device.device}</b>: {_summary(device)}</summary>", ""]
        for change in device.changes:
            out.append(f"- `{_line(change)}`")
        diffs = [c.diff for c in device.changes if c.diff]
        if diffs:
            fence = "````" if any("```" in d for d in diffs) else "```"
            out += ["", fence + "diff", *(d.rstrip("\n") for d in diffs), fence]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
