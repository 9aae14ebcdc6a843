"""Phases and the fleet runner: apply and reset are ordered lists of titled phases, run per device in parallel.

A phase has a title, a should-run test and a run step (k0sctl's design). After a phase fails, the remaining
phases are skipped except cleanup ones (unlock, disconnect). One device's failure never stops the others; the
outcome of each device, with the time of each phase, is collected for the summary table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from umhctl.errors import UmhctlError


class HasDevice(Protocol):
    device: str


C = TypeVar("C", bound=HasDevice)


def _always(_: object) -> bool:
    return True


@dataclass(frozen=True)
class Phase(Generic[C]):
    title: str
    run: Callable[[C], None]
    should_run: Callable[[C], bool] = _always
    cleanup: bool = False  # runs even when an earlier phase failed (unlock, disconnect)


@dataclass
class Outcome:
    device: str
    ok: bool = True
    error: str | None = None
    failed_phase: str | None = None
    timings: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what happened, for the summary table

    @property
    def seconds(self) -> float:
        return sum(t for _, t in self.timings)


def run_phases(ctx: C, phases: Sequence[Phase[C]], report: Callable[[str], None]) -> Outcome:
    outcome = Outcome(ctx.device)
    for phase in phases:
        if not outcome.ok and not phase.cleanup:
            continue
        if not phase.should_run(ctx):
            continue
        report(phase.title)
        start = time.monotonic()
        try:
            phase.run(ctx)
        except UmhctlError as exc:
            if outcome.ok:
                outcome.ok, outcome.error, outcome.failed_phase = (
                    False,
                    _strip_device(str(exc), ctx.device),
                    phase.title,
                )
        except Exception as exc:  # a bug must fail this device, not the whole fleet run
            if outcome.ok:
                outcome.ok, outcome.failed_phase = False, phase.title
                outcome.error = f"internal error: {type(exc).__name__}: {exc}"
        outcome.timings.append((phase.title, time.monotonic() - start))
    return outcome


def _strip_device(message: str, device: str) -> str:
    prefix = f"{device}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class _Reporter:
    """Per-device progress: a live rich display on a terminal, plain "device: phase" lines otherwise."""

    def __init__(self, console: Console, devices: Sequence[str], *, log_phases: bool) -> None:
        self.console = console
        self.log_phases = log_phases
        self.lock = threading.Lock()
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        if console.is_terminal:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[device]}[/bold]"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            for name in devices:
                self.tasks[name] = self.progress.add_task("waiting", device=name, total=None)

    def __enter__(self) -> _Reporter:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def phase(self, device: str, title: str) -> None:
        if self.progress:
            self.progress.update(self.tasks[device], description=title)
        elif self.log_phases:
            with self.lock:
                self.console.print(f"{device}: {title}", highlight=False, markup=False)

    def done(self, outcome: Outcome) -> None:
        if self.progress:
            state = "[green]done[/green]" if outcome.ok else f"[red]failed[/red] in {outcome.failed_phase}"
            self.progress.update(self.tasks[outcome.device], description=state)


def run_fleet(
    contexts: Sequence[C],
    phases: Sequence[Phase[C]],
    *,
    parallel: int,
    console: Console,
    log_phases: bool = True,
) -> list[Outcome]:
    """Run the phases on every device, at most `parallel` at a time; outcomes in the order given.

    Off a terminal, each phase is logged as a "device: phase" line unless `log_phases` is off (plan: quick,
    and its result says everything)."""
    with _Reporter(console, [c.device for c in contexts], log_phases=log_phases) as reporter:

        def one(ctx: C) -> Outcome:
            outcome = run_phases(ctx, phases, lambda title: reporter.phase(ctx.device, title))
            reporter.done(outcome)
            return outcome

        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            return list(pool.map(one, contexts))
