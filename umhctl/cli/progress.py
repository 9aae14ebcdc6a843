"""Progress of a fleet run: a live rich display on a terminal, plain "device: phase" lines otherwise."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from umhctl.cli import views

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from umhctl.phases import Outcome


class ConsoleReporter:
    """Implements umhctl.phases.Reporter on stderr (so JSON on stdout stays alone): rich's live display on a
    terminal; elsewhere plain lines, without importing rich (views.print_lines)."""

    def __init__(self) -> None:
        self.log_phases = False
        self.lock = threading.Lock()
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def start(self, devices: Sequence[str], activity: str) -> None:
        # Off a terminal, every phase of an apply or reset is logged; a plan is quick and its result says all.
        self.log_phases = activity != "plan"
        if not sys.stderr.isatty():
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[device]}[/bold]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=views.console(stderr=True),
            transient=True,
        )
        for name in devices:
            self.tasks[name] = self.progress.add_task("waiting", device=name, total=None)
        self.progress.start()

    def phase(self, device: str, key: str, title: str) -> None:
        if self.progress:
            self.progress.update(self.tasks[device], description=title)
        elif self.log_phases:
            with self.lock:
                views.show_line(f"{device}: {title}", stderr=True)

    def done(self, outcome: Outcome) -> None:
        if self.progress:
            state = "[green]done[/green]" if outcome.ok else f"[red]failed[/red] in {outcome.failed_title}"
            self.progress.update(self.tasks[outcome.device], description=state)

    def stop(self) -> None:
        if self.progress:
            self.progress.stop()
            self.progress = None
