"""Start-up of the console script: `umhctl --version` and `umhctl --help` against `python -c 'import typer'`.

A benchmark, not a test. Whole-process medians, interleaved (bench/harness.py). Target (issue 14): each
≤ 1.3x the floor; the exit status is 1 when one is missed, 2 when the benchmark cannot run.

    python3 bench/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import sys

from harness import BenchError, Target, finish, interleaved, machine, median, timings, umhctl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="measured runs per command (default 20)")
    args = parser.parse_args()
    print(machine())
    commands = {
        "floor": [sys.executable, "-c", "import typer"],
        "version": umhctl("--version"),
        "help": umhctl("--help"),
    }
    labels = {"floor": "python -c 'import typer'", "version": "umhctl --version", "help": "umhctl --help"}
    try:
        samples = interleaved(commands, args.runs)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(f"{args.runs} runs per command after 1 warm-up, round-robin; {commands['version'][0]}\n")
    print(timings(samples, labels))
    floor = median(samples["floor"])
    return finish(
        [
            Target("umhctl --version / import typer", median(samples["version"]) / floor, 1.3),
            Target("umhctl --help / import typer", median(samples["help"]) / floor, 1.3),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
