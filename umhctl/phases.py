"""Phases and the fleet runner: plan, apply and reset are ordered lists of phases, run per device in parallel.

A phase (k0sctl's design) has a stable key, a title for people, whether it changes the device, a should-run
test, a run step, and whether it is a cleanup step that runs even after a failure (unlock, disconnect). A phase
may be the point of no return (reset's staging): once it succeeded, a failure later no longer means "nothing
happened", and the outcome says so. After a phase fails, the remaining phases are skipped except cleanup ones.
One device's failure never stops the others. Phases are identified by key, never by title.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from umhctl.errors import UmhctlError


class HasDevice(Protocol):
    device: str


C = TypeVar("C", bound=HasDevice)


def _always(_: object) -> bool:
    return True


@dataclass(frozen=True, eq=False)
class Phase(Generic[C]):
    key: str
    title: str
    run: Callable[[C], None]
    should_run: Callable[[C], bool] = _always
    changes_device: bool = False
    cleanup: bool = False  # runs even when an earlier phase failed (unlock, disconnect)
    point_of_no_return: bool = False  # once this succeeded, the device will not be as it was


@dataclass(frozen=True)
class Timing:
    key: str
    title: str
    seconds: float


@dataclass
class Outcome:
    device: str
    ok: bool = True
    error: str | None = None
    hint: str | None = None
    failed_phase: str | None = None  # the key of the phase that failed
    failed_title: str | None = None
    past_no_return: bool = False  # a point-of-no-return phase succeeded before the failure (or the end)
    changed_device: bool = False  # a phase that changes the device ran (fully or in part)
    interrupted: bool = False  # stopped by Ctrl-C (then `failed_phase` is where)
    timings: list[Timing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what happened, for the summary

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.timings)

    def fail(self, phase: Phase[Any], error: str, hint: str | None = None) -> None:
        if self.ok:  # the first failure is the one that counts; cleanup failures after it add nothing
            self.ok, self.error, self.hint = False, error, hint
            self.failed_phase, self.failed_title = phase.key, phase.title

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "ok": self.ok,
            "error": self.error,
            "hint": self.hint,
            "failed_phase": self.failed_phase,
            "past_point_of_no_return": self.past_no_return,
            "changed_device": self.changed_device,
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 3),
            "phases": [{"phase": t.key, "title": t.title, "seconds": round(t.seconds, 3)} for t in self.timings],
            "notes": self.notes,
        }


class Reporter(Protocol):
    """Progress of a fleet run, for a view to show (the library never prints)."""

    def start(self, devices: Sequence[str], activity: str) -> None: ...

    def phase(self, device: str, key: str, title: str) -> None: ...

    def done(self, outcome: Outcome) -> None: ...

    def stop(self) -> None: ...


class SilentReporter:
    def start(self, devices: Sequence[str], activity: str) -> None:
        pass

    def phase(self, device: str, key: str, title: str) -> None:
        pass

    def done(self, outcome: Outcome) -> None:
        pass

    def stop(self) -> None:
        pass


INTERRUPTED = "interrupted (Ctrl-C)"


def run_phases(ctx: C, phases: Sequence[Phase[C]], reporter: Reporter, stop: threading.Event | None = None) -> Outcome:
    """Run the phases in order. Ctrl-C (KeyboardInterrupt here, or `stop` set by the fleet runner) ends the run at
    the phase it reached, like a failure there: the cleanup phases still run (a second Ctrl-C skips them)."""
    outcome = Outcome(ctx.device)
    for phase in phases:
        if not outcome.ok and not phase.cleanup:
            continue
        if not phase.should_run(ctx):
            continue
        if stop is not None and stop.is_set() and outcome.ok and not phase.cleanup:
            outcome.fail(phase, f"{INTERRUPTED} before {phase.title}")
            outcome.interrupted = True
            continue
        reporter.phase(ctx.device, phase.key, phase.title)
        start = time.monotonic()
        outcome.changed_device |= phase.changes_device
        try:
            phase.run(ctx)
        except KeyboardInterrupt:
            if outcome.interrupted:
                raise  # Ctrl-C again, during the cleanup: stop right away
            outcome.fail(phase, f"{INTERRUPTED} while {phase.title}")
            outcome.ok, outcome.interrupted = False, True
        except UmhctlError as exc:
            outcome.fail(phase, _strip_device(str(exc), ctx.device), exc.hint)
        except Exception as exc:  # a bug must fail this device, not the whole fleet run
            outcome.fail(phase, f"internal error: {type(exc).__name__}: {exc}")
        else:
            outcome.past_no_return |= phase.point_of_no_return and outcome.ok
        outcome.timings.append(Timing(phase.key, phase.title, time.monotonic() - start))
    return outcome


def _strip_device(message: str, device: str) -> str:
    prefix = f"{device}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def run_fleet(
    contexts: Sequence[C],
    phases: Sequence[Phase[C]],
    *,
    parallel: int,
    reporter: Reporter | None = None,
    activity: str = "apply",
) -> list[Outcome]:
    """Run the phases on every device, at most `parallel` at a time; outcomes in the order given. `activity`
    ("plan", "apply", "reset") tells the reporter what is going on."""
    report = reporter or SilentReporter()
    report.start([c.device for c in contexts], activity)
    stop = threading.Event()

    def one(ctx: C) -> Outcome:
        outcome = run_phases(ctx, phases, report, stop)
        report.done(outcome)
        return outcome

    try:
        if parallel <= 1 or len(contexts) <= 1:
            # In this thread: Ctrl-C reaches the phase that is running and is reported as stopping there.
            return [one(ctx) for ctx in contexts]
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(one, ctx) for ctx in contexts]
            try:
                wait(futures)
            except KeyboardInterrupt:
                # Each device stops at its next phase boundary and still unlocks and disconnects.
                stop.set()
                wait(futures)
            return [f.result() for f in futures]
    finally:
        report.stop()
