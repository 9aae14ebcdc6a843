"""Views: how command results reach the terminal (rich text) or a program (JSON on stdout alone).

One text view per result type, and one JSON view for all: the result's `to_dict()` under a versioned envelope.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, Protocol

from umhctl.diagnostics import Diagnostic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from umhctl.phases import Outcome
    from umhctl.results import (
        ApplyResult,
        FetchResult,
        LockResult,
        PlanResult,
        RenderResult,
        ResetResult,
        ValidateResult,
    )

FORMAT_VERSION = "1"


class Result(Protocol):
    command: str

    def to_dict(self) -> dict[str, Any]: ...


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    plain = not stream.isatty() or "NO_COLOR" in os.environ
    return Console(file=stream, highlight=False, soft_wrap=True, no_color=plain, emoji=False)


def print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"format_version": FORMAT_VERSION, **document}, indent=2, sort_keys=False) + "\n")


def show_json(result: Result) -> None:
    print_json({"command": result.command, **result.to_dict()})


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# What rich removes from printed text (rich/control.py, STRIP_CONTROL_CODES): bell, backspace, VT, FF, CR.
_RICH_STRIPS = dict.fromkeys([7, 8, 11, 12, 13])

Line = list[tuple[str, str | None]]  # (text, rich style or None) segments of one line


def print_lines(lines: list[Line], *, stderr: bool = False) -> None:
    """Print styled lines. Into a pipe or a file rich prints the text unchanged (no colour, no wrapping, control
    codes stripped), so there it is written directly, and a `validate` in CI or a script does not pay for
    importing rich. Tabs go through rich, which expands them by display width."""
    stream = sys.stderr if stderr else sys.stdout
    plain = ["".join(text for text, _ in line) for line in lines]
    if not stream.isatty() and not any("\t" in text for text in plain):
        stream.write("".join(text.translate(_RICH_STRIPS) + "\n" for text in plain))
        return
    from rich.markup import escape

    out = console(stderr)
    for line in lines:
        out.print("".join(f"[{style}]{escape(text)}[/{style}]" if style else escape(text) for text, style in line))


def show_diagnostics(diagnostics: list[Diagnostic], *, stderr: bool = False) -> None:
    lines: list[Line] = []
    for d in diagnostics:
        colour = "red" if d.severity == "error" else "yellow"
        lines.append([(f"{d.file}:{d.line}:{d.column}:", "bold"), (" ", None), (f"{d.severity}:", colour)])
        lines[-1].append((f" {d.message}", None))
        if d.hint:
            lines.append([("  ", None), ("hint:", "cyan"), (f" {d.hint}", None)])
    print_lines(lines, stderr=stderr)


def show_error(message: str, hint: str | None = None) -> None:
    lines: list[Line] = [[("error:", "red"), (f" {message}", None)]]
    if hint:
        lines.append([("  ", None), ("hint:", "cyan"), (f" {hint}", None)])
    print_lines(lines, stderr=True)


def show_line(text: str, *, stderr: bool = False) -> None:
    """One line for people; with stderr=True it stays out of the way of JSON on stdout."""
    print_lines([[(text, None)]], stderr=stderr)


# -- one text view per result -----------------------------------------------------------------------------------


def show_validate(result: ValidateResult) -> None:
    show_diagnostics(result.diagnostics)
    if result.valid:
        c = result.counts
        counts = (
            count(c["devices"], "device"),
            count(c["io_link_masters"], "IO-Link master"),
            count(c["sensors"], "sensor"),
            count(c["dashboards"], "dashboard"),
        )
        show_line(f"{result.file}: valid ({', '.join(counts)})")
    else:
        show_line(f"{result.file}: {count(sum(d.severity == 'error' for d in result.diagnostics), 'error')}")


def show_render(result: RenderResult) -> None:
    for d in result.devices:
        show_line(f"{d.device}: {d.files} files, {d.links} links -> {d.path}")
    show_line(f"rendered {count(len(result.devices), 'device')}{' (secrets redacted)' if result.redacted else ''}")
    if result.known_hosts_updated:
        show_line(
            f"recorded the host keys of {', '.join(result.known_hosts_updated)} in {result.known_hosts}: commit it, "
            "so that everyone connecting to the site checks the devices' keys"
        )


def show_plan(result: PlanResult) -> None:
    from umhctl.cli.planview import show_plan as show

    show(result.plan)
    if result.saved_to is not None:
        show_line(f"Saved the plan to {result.saved_to}; apply it with: umhctl apply {result.saved_to}")


def show_apply(result: ApplyResult) -> None:
    if result.message:
        show_line(result.message)
        return
    if result.cancelled:
        show_line("Apply cancelled.")
        return
    failed_to_plan = [o.device for o in result.outcomes if o.failed_phase == "plan"]
    if failed_to_plan:
        show_error(f"could not plan {', '.join(failed_to_plan)}; nothing was applied there")
    if result.outcomes:
        show_outcomes(result.outcomes, title="Apply")
    show_line(apply_summary(result))
    if result.retry_hint:
        show_line(f"rerun only the failed ones with: {result.retry_hint}")
    if result.replan_hint:
        show_line(f"make a new plan, review it and apply that file: {result.replan_hint}")


def apply_summary(result: ApplyResult) -> str:
    """`3 devices: 2 changed, 1 unchanged, 0 failed in 4.1 s`."""
    by_device = {o.device: o for o in result.outcomes}
    changed = sum(1 for o in result.outcomes if o.ok and o.changed_device)
    failed = sum(1 for o in result.outcomes if not o.ok)
    unchanged = sum(
        1
        for d in result.plan.devices
        if d.device not in by_device or (by_device[d.device].ok and not by_device[d.device].changed_device)
    )
    seconds = result.seconds
    total = len(result.plan.devices)
    return f"{count(total, 'device')}: {changed} changed, {unchanged} unchanged, {failed} failed in {seconds:.1f} s"


def show_outcomes(outcomes: Sequence[Outcome], *, title: str) -> None:
    """The per-device result table at the end of a fleet run (plain lines when not on a terminal: logs stay
    greppable instead of wrapped into table cells)."""
    from rich.markup import escape
    from rich.table import Table

    out = console()
    if out.is_terminal:
        table = Table(title=f"{title} results", title_justify="left")
        for column in ("device", "result", "time", "details"):
            table.add_column(column)
        for o in outcomes:
            result = "[green]ok[/green]" if o.ok else f"[red]failed[/red] ({escape(o.failed_title or '')})"
            details = escape(_details(o))
            table.add_row(escape(o.device), result, f"{o.seconds:.1f} s", details)
        out.print(table)
    else:
        for o in outcomes:
            result = "ok" if o.ok else f"failed in {o.failed_title}"
            out.print(f"{o.device}: {result} ({o.seconds:.1f} s): {_details(o)}", markup=False, highlight=False)


def _details(o: Outcome) -> str:
    if o.ok:
        return "; ".join(o.notes)
    return f"{o.error} (hint: {o.hint})" if o.hint else o.error or ""


def show_reset(result: ResetResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    if result.cancelled:
        show_line("Reset cancelled.")
        return
    if result.new_host_key:
        show_line(f"{result.device}: new host key {result.new_host_key.split()[1][:20]}…", stderr=True)
    if result.media is not None:
        show_line(f"Install media for {result.device} written to {result.media.directory}:")
        show_line(result.media.install_command)
        show_line(f"Instructions: {result.media.directory / 'INSTRUCTIONS.txt'}")
    outcome = result.outcome
    if outcome is None:
        return
    table = Table(title=f"reset device {result.device}", title_justify="left")
    table.add_column("phase")
    table.add_column("time", justify="right")
    for timing in outcome.timings:
        failed = not outcome.ok and timing.key == outcome.failed_phase
        table.add_row(escape(timing.title) + (" [red](failed)[/red]" if failed else ""), f"{timing.seconds:.1f} s")
    table.add_row("[bold]total[/bold]", f"[bold]{outcome.seconds:.1f} s[/bold]")
    out = console()
    out.print(table)
    for note in outcome.notes:
        out.print(f"  {escape(note)}", highlight=False)
    if outcome.ok:
        out.print(
            f"[green]{escape(outcome.device)} is rebuilt and matches the blueprint ({outcome.seconds:.1f} s).[/green]"
        )
        return
    if result.rotation_undone:
        show_line(f"{result.device}: the host key rotation was undone; the device keeps its key", stderr=True)
    show_error(f"reset of {result.device} failed while {outcome.failed_title}: {outcome.error}", outcome.hint)


def show_lock(result: LockResult) -> None:
    for a in result.artifacts:
        show_line(f"{a.name}: sha256 {a.sha256} ({a.change}; from {a.source})")
    for name in result.removed:
        show_line(f"{name}: no longer needed, dropped")
    changed = any(a.change != "unchanged" for a in result.artifacts) or result.removed
    commit = ": commit it" if changed and result.committed else ""
    show_line(f"{'wrote' if changed else 'unchanged:'} {result.lock_file}{commit}")


def show_fetch(result: FetchResult) -> None:
    for a in result.artifacts:
        what = "downloaded" if a.status == "downloaded" else "already cached"
        show_line(f"{a.name}: {what}, {a.size} bytes, sha256 verified")
    show_line(f"{count(len(result.artifacts), 'artifact')} in {result.cache}: apply can now run without internet")
