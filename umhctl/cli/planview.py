"""The text view of a plan (the JSON view is Plan.to_dict): per device, its changes, diffs and warnings."""

from __future__ import annotations

from umhctl.cli.views import Line, print_lines
from umhctl.plan.model import Action, Change, DevicePlan, Plan

_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.DELETE: "red",
    Action.REPLACE: "magenta",
    Action.RESTART: "cyan",
    Action.REQUIRES_RESET: "bold red",
}


def _change_line(change: Change) -> Line:
    line: Line = [("  ", None), (change.action.value, _STYLE[change.action]), (" ", None)]
    if change.kind not in ("file", "unit"):
        line += [(change.kind, "dim"), (" ", None)]
    line.append((change.target, None))
    if change.sensitive:
        line += [(" ", None), ("(sensitive)", "dim")]
    if change.drift:
        line += [(" ", None), ("(drift)", "bold yellow")]
    return [*line, ("  ", None), (change.reason, "dim")]


def _diff_lines(diff: str) -> list[Line]:
    out: list[Line] = []
    for line in diff.rstrip("\n").split("\n"):
        if line.startswith(("+++", "---")):
            style: str | None = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = None
        out.append([("      ", None), (line, style)])
    return out


def device_lines(device: DevicePlan, *, diffs: bool = True) -> list[Line]:
    header: Line = [(device.device, "bold"), (" ", None), (f"({device.address})", "dim")]
    if device.error:
        return [[*header, (": ", None), ("error:", "red"), (f" {device.error}", None)]]
    if not device.changes:
        return [[*header, (": no changes", None)]]
    lines = [header]
    for change in device.changes:
        lines.append(_change_line(change))
        if diffs and change.diff:
            lines += _diff_lines(change.diff)
    if device.daemon_reload:
        lines.append([("  ", None), ("↻", "cyan"), (" systemd daemon-reload  ", None), ("unit files change", "dim")])
    lines += [[("  ", None), ("warning:", "yellow"), (f" {w}", None)] for w in device.warnings]
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    if not plan.has_changes:
        if not plan.devices:
            return "No devices selected."
        if s["devices_failed"] == s["devices"]:
            return f"Nothing could be planned: {'the device' if s['devices'] == 1 else 'no device'} answered."
        verb = "matches" if s["devices"] == 1 else "match"
        text = f"No changes. {_count(s['devices'], 'device')} {verb} the blueprint."
        if s["devices_failed"]:
            could = f"{_count(s['devices_failed'], 'device')} could not be planned"
            text = f"No changes on the devices that answered; {could}."
        return text
    total = s["devices"]
    text = (
        f"Plan: {s['add']} to add, {s['change']} to change, {s['delete']} to delete"
        f" on {s['devices_changed']} of {_count(total, 'device')}"
    )
    if s["restart"]:
        text += f"; {_count(s['restart'], 'unit restart')}"
    if s["record"]:
        text += f"; {_count(s['record'], 'applied-state record')} to write"
    if s["leftovers"]:
        text += f"; {_count(s['leftovers'], 'leftover temp file')} to remove"
    if s["locks"]:
        text += f"; {_count(s['locks'], 'device')} locked"
    if s["requires_reset"]:
        text += f"; {_count(s['requires_reset'], 'change')} {'needs' if s['requires_reset'] == 1 else 'need'} a reset"
    if s["devices_failed"]:
        text += f"; {_count(s['devices_failed'], 'device')} could not be planned"
    return text + "."


def unreachable_hint(plan: Plan) -> str | None:
    """When no device answered at all, the likely causes, said plainly."""
    if plan.devices and all(d.error and "cannot reach" in d.error for d in plan.devices):
        return (
            "no device answered: is this machine on the plant network (a VPN, the right interface)? For the "
            "simulated site, add --sim (and start it with `umhctl sim up`)"
        )
    return None


def show_plan(plan: Plan) -> None:
    lines = [line for device in plan.devices for line in device_lines(device)]
    lines += [[], [(summary_line(plan), "bold")]]
    hint = unreachable_hint(plan)
    if hint:
        lines.append([("  ", None), ("hint:", "cyan"), (f" {hint}", None)])
    print_lines(lines)
