"""Benchmark: `umhctl render --out` of a 500-device blueprint (bench/gen_site.py 500), whole process.

Each measured run writes into a fresh directory (what a CI job does); secrets are generated once in the
unmeasured warm-up. Targets (issue 14): median ≤ 2 s and peak RSS ≤ 250 MB; the exit status is 1 when one is
missed, 2 when the benchmark cannot run.

    python3 bench/render_scale.py [--runs 5] [--devices 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gen_site import write_site
from harness import BenchError, Target, finish, interleaved, machine, median, peak_rss, timings, umhctl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--devices", type=int, default=500)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="umhctl-bench-render-") as tmp:
        work = Path(tmp)
        blueprint = write_site(args.devices, work / "site")
        out = work / "out"
        env = {**os.environ, "UMHCTL_SECRETS_DIR": str(work / "secrets")}

        def fresh(_: str) -> None:
            shutil.rmtree(out, ignore_errors=True)

        commands = {"render": umhctl("render", "-f", str(blueprint), "--out", str(out))}
        try:
            samples = interleaved(commands, args.runs, env=env, before=fresh)
        except BenchError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 2
        files = sum(1 for _ in out.rglob("*"))
    print(f"{args.runs} runs after 1 warm-up; {files} paths written per run\n")
    print(timings(samples, {"render": f"umhctl render --out ({args.devices} devices)"}))
    return finish(
        [
            Target(f"render --out of {args.devices} devices", median(samples["render"]), 2.0, unit="s"),
            Target("peak RSS of that render", peak_rss(samples["render"]), 250, unit="MB"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
