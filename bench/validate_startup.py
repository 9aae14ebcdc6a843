"""Cold start of `umhctl validate` against the import floor, and a 500-device blueprint (a benchmark, not a test).

Every run is a fresh process timed from spawn to exit (bench/harness.py: one warm-up, then round-robin runs,
medians). Targets (issue 14), each printed as PASS/FAIL; the exit status is 1 when one is missed:

- validate of the 30-device example (blueprints/retrofit-site.yaml) ≤ 1.6x the import floor
  `python -c 'import typer, pydantic, ruamel.yaml'`;
- validate of a 500-device blueprint (bench/gen_site.py 500: 10 hubs, 490 edges, 1,950 sensors) ≤ 1 s;
- the validate path imports none of kubernetes, paramiko, GitPython (`python -X importtime`).

For context it also prints the floor of what validate really loads (typer, PyYAML, pydantic's BaseModel,
jinja2 for the example's templated file; into a pipe, its output needs no rich) and both YAML parsers in
process: libyaml (the
fast path) and ruamel.yaml (the reference, still used for anything the fast path cannot vouch for).

    python3 bench/validate_startup.py [--runs 10]

Exit status: 0 all targets met, 1 a target missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, BenchError, Target, finish, interleaved, machine, median, timings, umhctl

sys.path.insert(0, str(ROOT))

EXAMPLE = "blueprints/retrofit-site.yaml"
HEAVY = {"kubernetes": "kubernetes", "paramiko": "paramiko", "git": "GitPython"}


def heavy_imports(blueprint: str) -> list[str]:
    argv = [sys.executable, "-X", "importtime", "-m", "umhctl", "validate", "-f", blueprint]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited with {result.returncode}:\n{result.stderr[-2000:]}")
    names = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    return sorted({n for n in names if n.split(".")[0] in HEAVY})


def parsers_in_process(paths: list[Path]) -> list[str]:
    from umhctl.blueprint.yamlsource import _parse_fast, _parse_reference

    lines = []
    for path in paths:
        text = path.read_text()
        figures = []
        for parse in (_parse_fast, _parse_reference):
            start = time.process_time()
            doc = parse(text, str(path))
            figures.append(time.process_time() - start)
            if doc is None:
                raise BenchError(f"the fast path did not read {path}")
        lines.append(
            f"  {path.name} ({text.count(chr(10))} lines): libyaml {figures[0] * 1000:.0f} ms, "
            f"ruamel.yaml {figures[1] * 1000:.0f} ms CPU ({figures[1] / figures[0]:.0f}x)"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command (default 10)")
    args = parser.parse_args()
    py = sys.executable
    print(machine())
    with tempfile.TemporaryDirectory(prefix="umhctl-bench-validate-") as tmp:
        from gen_site import write_site

        large = write_site(500, Path(tmp))
        commands = {
            "floor": [py, "-c", "import typer, pydantic, ruamel.yaml"],
            "needed": [py, "-c", "import typer, yaml, jinja2; from pydantic import BaseModel"],
            "example": umhctl("validate", "-f", EXAMPLE),
            "large": umhctl("validate", "-f", str(large)),
        }
        labels = {
            "floor": "import typer, pydantic, ruamel.yaml",
            "needed": "import what validate needs",
            "example": "umhctl validate (30 devices)",
            "large": "umhctl validate (500 devices)",
        }
        try:
            samples = interleaved(commands, args.runs)
            heavy = heavy_imports(EXAMPLE)
            parse_lines = parsers_in_process([ROOT / EXAMPLE, large])
        except BenchError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 2
    print(f"{args.runs} runs per command after 1 warm-up, round-robin\n")
    print(timings(samples, labels))
    print("\nYAML parse in process (CPU time):")
    print("\n".join(parse_lines))
    floor = median(samples["floor"])
    example = median(samples["example"])
    return finish(
        [
            Target(
                "validate of the 30-device example / import floor",
                example / floor,
                1.6,
                detail=f"{example / median(samples['needed']):.2f}x what validate imports",
            ),
            Target("validate of a 500-device blueprint", median(samples["large"]), 1.0, unit="s"),
            Target(
                "heavy modules (kubernetes, paramiko, GitPython) on the validate path",
                len(heavy),
                0,
                unit="modules",
                detail=", ".join(heavy[:5]),
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
