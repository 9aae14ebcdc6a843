"""Text views of `umhctl status` (a table and a verdict per device) and `umhctl history` (applies per device)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umhctl.sitestatus import HistoryResult, StatusResult


def show_status(result: StatusResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    from umhctl.cli import views

    out = views.console()
    table = Table(box=None, pad_edge=False)
    for column in ("DEVICE", "SSH", "APPLIED", "BEHIND", "DRIFT", "FAILED UNITS", "K3S", "FLATCAR", "VERDICT"):
        table.add_column(column)
    for d in result.devices:
        if not d.reachable:
            table.add_row(d.device, "unreachable", "-", "-", "-", "-", "-", "-", "[red]unhealthy[/red]")
            continue
        applied = (d.applied_commit or "never")[:12] + (" +dirty" if d.applied_dirty else "")
        k3s = ", ".join(
            ("running" if s["running"] and s["active"] == "active" else f"not running ({s['active']})")
            for s in d.k3s.values()
        )
        verdict = "[green]healthy[/green]" if d.healthy else "[red]unhealthy[/red]"
        table.add_row(
            d.device,
            f"{d.latency_ms:.0f} ms" if d.latency_ms is not None else "ok",
            applied,
            "-" if d.behind is None else str(d.behind),
            str(d.drift),
            ", ".join(d.failed_units) or "none",
            k3s or "-",
            f"{d.os_version or 'unknown'} (pin {d.pinned_version})",
            verdict,
        )
    out.print(table)
    for d in result.devices:
        for problem in d.problems:
            out.print(f"{escape(d.device)}: {escape(problem)}")
    healthy = sum(1 for d in result.devices if d.healthy)
    out.print(f"{healthy} of {views.count(len(result.devices), 'device')} healthy")


def show_history(result: HistoryResult) -> None:
    from rich.markup import escape

    from umhctl.cli import views

    out = views.console()
    for d in result.devices:
        out.print(f"[bold]{escape(d.device)}[/bold] ({d.ref})")
        if not d.entries:
            out.print("  never applied from this repository")
        for e in d.entries:
            dirty = " (with uncommitted changes)" if e.dirty else ""
            out.print(f"  {e.commit[:12]}  {escape(e.when)}  {e.verb} by {escape(e.who)}{dirty}: {escape(e.subject)}")
        if d.live is not None:
            if "error" in d.live:
                out.print(f"  [red]live: {escape(str(d.live['error']))}[/red]")
            else:
                commit = str(d.live.get("commit") or "none")[:12]
                verdict = "matches the ref" if d.live_match else "[red]differs from the ref[/red]"
                out.print(f"  live: the device runs {commit}, applied by {escape(str(d.live.get('by')))}: {verdict}")
