"""Shared helpers for the benchmark scripts: whole-process timing, interleaved A/B runs, targets as ratios.

Every measured command is a fresh process timed from spawn to exit (what a user waits for). Commands are run
round-robin after one unmeasured warm-up each, so drift on a busy machine (2 cores, shared) hits all of them
alike; medians are compared, never single runs. A target is a ratio to a floor measured in the same run
(`python -c 'import typer'`, one SSH connection, ...), so figures hold across machines of different speed.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """The benchmark cannot produce meaningful figures (a command failed, a setup step went wrong)."""


@dataclass
class Sample:
    seconds: float
    max_rss_mb: float
    cpu_seconds: float = 0.0  # the command's own CPU time (user + system), its waited-for children included
    machine_cpu_seconds: float = 0.0  # CPU time every core spent busy meanwhile (/proc/stat), simulated devices too


def _machine_busy() -> float:
    """Seconds of CPU time all cores have spent busy since boot: /proc/stat's first line (proc(5)) without idle,
    iowait and steal (time the hypervisor gave to other guests)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


# GNU time reports the child's own peak RSS. wait4's ru_maxrss would not: Linux keeps the high-water mark of the
# memory a process had before execve, which for a child forked from this driver is the driver's.
_TIME = Path("/usr/bin/time")


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT, expect_ok: bool = True) -> Sample:
    """Run `argv` once: wall time from spawn to exit and the child's peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        wrapped = [str(_TIME), "-f", "%M", "-o", rss.name, *argv] if _TIME.exists() else list(argv)
        busy = _machine_busy()
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        busy = _machine_busy() - busy
        proc.returncode = os.waitstatus_to_exitcode(status)
        if expect_ok and proc.returncode != 0:
            out.seek(0)
            text = out.read().decode(errors="replace")[-3000:]
            raise BenchError(f"{' '.join(argv)} exited with {proc.returncode}:\n{text}")
        figures = rss.read().split()
        peak_kib = int(figures[-1]) if figures and figures[-1].isdigit() else usage.ru_maxrss
    return Sample(elapsed, peak_kib / 1024, usage.ru_utime + usage.ru_stime, busy)


def interleaved(
    commands: dict[str, Sequence[str]],
    runs: int,
    *,
    env: dict[str, str] | None = None,
    warmup: int = 1,
    before: Callable[[str], None] | None = None,
) -> dict[str, list[Sample]]:
    """Run every command `runs` times, round-robin, after `warmup` unmeasured rounds; `before(label)` runs
    (unmeasured) ahead of each run, e.g. to put a device back into the state the command expects."""
    samples: dict[str, list[Sample]] = {label: [] for label in commands}
    for n in range(warmup + runs):
        for label, argv in commands.items():
            if before is not None:
                before(label)
            sample = run(argv, env=env)
            if n >= warmup:
                samples[label].append(sample)
    return samples


def median(samples: Sequence[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def peak_rss(samples: Sequence[Sample]) -> float:
    return max(s.max_rss_mb for s in samples)


@dataclass
class Target:
    """`what` must be at most `limit`: a ratio (`unit` "x") or an absolute figure (s, MB)."""

    what: str
    value: float
    limit: float
    unit: str = "x"
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.limit

    def line(self) -> str:
        figure = f"{self.value:.2f}{self.unit}" if self.unit == "x" else f"{self.value:.2f} {self.unit}"
        limit = f"{self.limit:g}{self.unit}" if self.unit == "x" else f"{self.limit:g} {self.unit}"
        detail = f"  ({self.detail})" if self.detail else ""
        return f"{'PASS' if self.met else 'FAIL'}  {self.what}: {figure} (target ≤ {limit}){detail}"


def machine() -> str:
    load = os.getloadavg()[0]
    return (
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.2f} at start"
    )


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def timings(samples: dict[str, list[Sample]], labels: dict[str, str] | None = None) -> str:
    """A table of min/median/max in ms and peak RSS per command, and the median CPU time: the command's own and
    the whole machine's while it ran (on the simulated site the devices' sshd and scripts share the cores, so
    machine CPU near cores x wall time means the run is bound by CPU, not by waiting)."""
    rows = [["command", "min ms", "median ms", "max ms", "peak RSS MB", "CPU ms", "machine CPU ms"]]
    for label, runs in samples.items():
        secs = [s.seconds * 1000 for s in runs]
        rows.append(
            [
                (labels or {}).get(label, label),
                f"{min(secs):.0f}",
                f"{statistics.median(secs):.0f}",
                f"{max(secs):.0f}",
                f"{peak_rss(runs):.0f}",
                f"{statistics.median(s.cpu_seconds for s in runs) * 1000:.0f}",
                f"{statistics.median(s.machine_cpu_seconds for s in runs) * 1000:.0f}",
            ]
        )
    return table(rows)


def finish(targets: list[Target]) -> int:
    """Print each target's verdict; the exit status is 1 when any target is missed."""
    print()
    for target in targets:
        print(target.line())
    return 0 if all(t.met for t in targets) else 1


_compiled = False


def byte_compile() -> None:
    """Byte-compile umhctl's modules once, as pip does when it installs a wheel. An editable install runs from the
    source tree, where PYTHONDONTWRITEBYTECODE would otherwise have every measured start compile them again, while
    the libraries it is compared with (typer, pyinfra) come compiled from site-packages."""
    global _compiled
    if not _compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "umhctl")], check=True)
        _compiled = True


def umhctl(*argv: str) -> list[str]:
    """The console script when installed next to this interpreter, else `python -m umhctl` (byte-compiled)."""
    byte_compile()
    script = Path(sys.executable).parent / "umhctl"
    return [str(script), *argv] if script.exists() else [sys.executable, "-m", "umhctl", *argv]
