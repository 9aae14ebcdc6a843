"""The text view of a plan (the JSON view is Plan.to_dict): per device, its changes, diffs and warnings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from umhctl.plan.model import Action, Change, DevicePlan, Plan

_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.DELETE: "red",
    Action.REPLACE: "magenta",
    Action.RESTART: "cyan",
    Action.REQUIRES_RESET: "bold red",
}


def _change_line(change: Change) -> str:
    style = _STYLE[change.action]
    label = escape(change.target)
    if change.sensitive:
        label += " [dim](sensitive)[/dim]"
    if change.drift:
        label += " [bold yellow](drift)[/bold yellow]"
    kind = "" if change.kind in ("file", "unit") else f"[dim]{change.kind}[/dim] "
    return f"  [{style}]{change.action.value}[/{style}] {kind}{label}  [dim]{escape(change.reason)}[/dim]"


def _diff_lines(diff: str) -> list[str]:
    out = []
    for line in diff.rstrip("\n").split("\n"):
        if line.startswith(("+++", "---")):
            out.append(f"      [bold]{escape(line)}[/bold]")
        elif line.startswith("+"):
            out.append(f"      [green]{escape(line)}[/green]")
        elif line.startswith("-"):
            out.append(f"      [red]{escape(line)}[/red]")
        elif line.startswith("@@"):
            out.append(f"      [cyan]{escape(line)}[/cyan]")
        else:
            out.append(f"      {escape(line)}")
    return out


def device_lines(device: DevicePlan, *, diffs: bool = True) -> list[str]:
    header = f"[bold]{escape(device.device)}[/bold] [dim]({escape(device.address)})[/dim]"
    if device.error:
        return [f"{header}: [red]error:[/red] {escape(device.error)}"]
    if not device.changes:
        return [f"{header}: no changes"]
    lines = [header]
    for change in device.changes:
        lines.append(_change_line(change))
        if diffs and change.diff:
            lines += _diff_lines(change.diff)
    if device.daemon_reload:
        lines.append("  [cyan]↻[/cyan] systemd daemon-reload  [dim]unit files change[/dim]")
    lines += [f"  [yellow]warning:[/yellow] {escape(w)}" for w in device.warnings]
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


def show_plan(plan: Plan, console: Console) -> None:
    for device in plan.devices:
        for line in device_lines(device):
            console.print(line, highlight=False)
    console.print()
    console.print(f"[bold]{escape(summary_line(plan))}[/bold]", highlight=False)
    hint = unreachable_hint(plan)
    if hint:
        console.print(f"  [cyan]hint:[/cyan] {escape(hint)}", highlight=False)
