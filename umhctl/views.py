"""Views: how command results reach the terminal (rich text) or a program (JSON on stdout alone)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from umhctl.diagnostics import Diagnostic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from umhctl.fleet import Outcome

FORMAT_VERSION = "1"


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    plain = not stream.isatty() or "NO_COLOR" in os.environ
    return Console(file=stream, highlight=False, soft_wrap=True, no_color=plain, emoji=False)


def print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"format_version": FORMAT_VERSION, **document}, indent=2, sort_keys=False) + "\n")


def show_diagnostics(diagnostics: list[Diagnostic], *, stderr: bool = False) -> None:
    from rich.markup import escape

    console = _console(stderr)
    for d in diagnostics:
        colour = "red" if d.severity == "error" else "yellow"
        console.print(
            f"[bold]{escape(d.file)}:{d.line}:{d.column}:[/bold] [{colour}]{d.severity}:[/{colour}] {escape(d.message)}"
        )
        if d.hint:
            console.print(f"  [cyan]hint:[/cyan] {escape(d.hint)}")


def show_error(message: str, hint: str | None = None) -> None:
    from rich.markup import escape

    console = _console(stderr=True)
    console.print(f"[red]error:[/red] {escape(message)}")
    if hint:
        console.print(f"  [cyan]hint:[/cyan] {escape(hint)}")


def show_line(text: str, *, stderr: bool = False) -> None:
    """One line for people; with stderr=True it stays out of the way of JSON on stdout."""
    from rich.markup import escape

    _console(stderr).print(escape(text))


def show_outcomes(outcomes: Sequence[Outcome], *, title: str) -> None:
    """The per-device result table at the end of a fleet run (plain lines when not on a terminal: logs stay
    greppable instead of wrapped into table cells)."""
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    if console.is_terminal:
        table = Table(title=f"{title} results", title_justify="left")
        for column in ("device", "result", "time", "details"):
            table.add_column(column)
        for o in outcomes:
            result = "[green]ok[/green]" if o.ok else f"[red]failed[/red] ({escape(o.failed_phase or '')})"
            details = escape(o.error if o.error else "; ".join(o.notes))
            table.add_row(escape(o.device), result, f"{o.seconds:.1f} s", details)
        console.print(table)
    else:
        for o in outcomes:
            result = "ok" if o.ok else f"failed in {o.failed_phase}"
            details = o.error if o.error else "; ".join(o.notes)
            console.print(f"{o.device}: {result} ({o.seconds:.1f} s): {details}", markup=False, highlight=False)
    failed = sum(not o.ok for o in outcomes)
    if failed:
        show_line(f"{failed} of {len(outcomes)} devices failed; rerun only those with: umhctl apply --retry-failed")


def show_timings(outcome: Outcome, *, title: str) -> None:
    """A timed summary of each phase of one device's run."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("phase")
    table.add_column("time", justify="right")
    for phase, seconds in outcome.timings:
        failed = not outcome.ok and phase == outcome.failed_phase
        table.add_row(escape(phase) + (" [red](failed)[/red]" if failed else ""), f"{seconds:.1f} s")
    table.add_row("[bold]total[/bold]", f"[bold]{outcome.seconds:.1f} s[/bold]")
    console = _console()
    console.print(table)
    for note in outcome.notes:
        console.print(f"  {escape(note)}", highlight=False)
    if outcome.ok:
        console.print(f"[green]{escape(outcome.device)} is rebuilt and matches the blueprint.[/green]")
