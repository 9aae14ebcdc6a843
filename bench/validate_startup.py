"""Cold-start benchmark of `umhctl validate` (a benchmark, not a test: nothing here runs under pytest).

Every run is a fresh interpreter process, timed from spawn to exit, so the figures are what a user or a CI job
waits for. The baseline is a bare `python -c pass` on the same interpreter; the difference is umhctl's own
cost: imports (typer, rich, pydantic, ruamel.yaml, jinja2) plus loading and checking the blueprint.
One unmeasured warm-up run per command comes first, so byte-code compilation and a cold page cache do not
end up in the figures. Commands are measured round-robin, so drift on a busy machine hits all of them alike.

It also runs `python -X importtime -m umhctl validate ...` once and fails (exit 1) if a heavy module that only
other commands need is imported on the validate path: kubernetes, paramiko or git (GitPython).

    python3 bench/validate_startup.py                # from the repository root
    python3 bench/validate_startup.py --runs 30 -f blueprints/demo-site.yaml

Exit status: 0 all good, 1 a heavy module is imported, 2 the benchmark could not run (e.g. validate failed).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BLUEPRINT = "blueprints/retrofit-site.yaml"
# Top-level packages that must stay off the validate path (they belong to apply/reset/plan).
HEAVY = {"kubernetes": "kubernetes", "paramiko": "paramiko", "git": "GitPython"}


class BenchError(Exception):
    """The benchmark cannot produce meaningful figures."""


def run_once(argv: list[str], *, expect_ok: bool) -> float:
    """Wall time of one run in milliseconds."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if expect_ok and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise BenchError(f"{' '.join(argv)} exited with {result.returncode}:\n{output}")
    return elapsed


def measure(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label in commands}
    for label, argv in commands.items():  # warm-up, not measured
        run_once(argv, expect_ok=label != "baseline")
    for _ in range(runs):
        for label, argv in commands.items():
            times[label].append(run_once(argv, expect_ok=label != "baseline"))
    return times


def imported_modules(blueprint: str) -> tuple[list[tuple[str, int]], float]:
    """(module, self µs) for every module the validate command imports, and the wall time in ms."""
    argv = [sys.executable, "-X", "importtime", "-m", "umhctl", "validate", "-f", blueprint]
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited with {result.returncode}:\n{result.stderr[-2000:]}")
    modules = []
    for line in result.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package", nesting shown by indentation
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, _, name = line.split("|", 2)
        modules.append((name.strip(), int(own.removeprefix("import time:"))))
    if not modules:
        raise BenchError("python -X importtime printed no import lines")
    return modules, elapsed


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in pairs]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Cold-start wall time of `umhctl validate` against `python -c pass`.")
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command (default 10)")
    parser.add_argument(
        "-f", "--file", default=DEFAULT_BLUEPRINT, help=f"blueprint relative to the repository ({DEFAULT_BLUEPRINT})"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not (ROOT / args.file).is_file():
        parser.error(f"no such blueprint: {ROOT / args.file}")

    commands = {
        "baseline": [sys.executable, "-c", "pass"],
        "module": [sys.executable, "-m", "umhctl", "validate", "-f", args.file],
    }
    labels = {
        "baseline": "python -c pass",
        "module": "python -m umhctl validate",
        "script": "umhctl validate (console script)",
    }
    script = shutil.which("umhctl")
    if script:
        commands["script"] = [script, "validate", "-f", args.file]

    print(f"python {platform.python_version()} ({sys.executable}) on {platform.system()} {platform.machine()}")
    print(f"blueprint {args.file}, {args.runs} runs per command after 1 warm-up, wall time in ms")
    if script:
        print(f"console script {script}")
    try:
        times = measure(commands, args.runs)
        modules, importtime_ms = imported_modules(args.file)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2

    base = statistics.median(times["baseline"])
    rows = [["command", "min", "median", "max", "median - baseline"]]
    for label, samples in times.items():
        median = statistics.median(samples)
        delta = "" if label == "baseline" else f"{median - base:+.1f}"
        rows.append([labels[label], f"{min(samples):.1f}", f"{median:.1f}", f"{max(samples):.1f}", delta])
    print()
    print(table(rows))
    if not script:
        print(f"({labels['script']}: skipped, 'umhctl' is not on PATH; install with 'pip install -e .')")

    # Import cost by top-level package: the sum of each module's own ("self") time, so nothing counts twice.
    own: dict[str, int] = {}
    for name, self_us in modules:
        package = name.split(".")[0]
        own[package] = own.get(package, 0) + self_us
    heaviest = sorted(own.items(), key=lambda item: item[1], reverse=True)[:8]
    total_ms = sum(own.values()) / 1000
    print()
    print(
        f"python -X importtime -m umhctl validate: {len(modules)} modules, {total_ms:.0f} ms importing "
        f"({importtime_ms:.0f} ms wall with tracing)"
    )
    print(table([["top-level package", "import ms (self)"], *[[p, f"{us / 1000:.1f}"] for p, us in heaviest]]))

    found = sorted({name for name, _ in modules if name.split(".")[0] in HEAVY})
    print()
    if found:
        shown = ", ".join(found[:10]) + (f", ... ({len(found)} in all)" if len(found) > 10 else "")
        packages = sorted({HEAVY[name.split(".")[0]] for name in found})
        print(f"FAIL: the validate path imports {', '.join(packages)}: {shown}")
        return 1
    print(f"PASS: the validate path imports none of {', '.join(HEAVY.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
