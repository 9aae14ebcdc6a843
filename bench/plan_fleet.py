"""Benchmark: a no-op `umhctl plan` of the 30-device simulated retrofit site.

Run as root from the repository root: `python3 bench/plan_fleet.py [--runs N] [--parallel N]`. Brings the
retrofit site up in a scratch directory, applies it once, then measures plans that find nothing to do: wall
time in process and for the whole CLI run, and remote commands per device (target: one round trip per device,
under 1 s for 30 devices on 2 cores). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="umhctl-bench-plan-", dir="/tmp"))
    os.environ.update(
        UMHCTL_SECRETS_DIR=str(work / "secrets"),
        UMHCTL_SIM_STATE=str(work / "sim"),
        XDG_CACHE_HOME=str(work / "cache"),
        XDG_STATE_HOME=str(work / "state"),
        PYTHONPATH=str(ROOT),
    )
    repo = work / "site"
    shutil.copytree(ROOT / "blueprints", repo)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "retrofit"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, capture_output=True)
    blueprint = repo / "retrofit-site.yaml"

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "umhctl", *argv], capture_output=True, text=True)

    try:
        up = cli("sim", "up", "-f", str(blueprint), "--base-address", "127.84.0.10")
        assert up.returncode == 0, up.stdout + up.stderr
        applied = cli("apply", "--sim", "-f", str(blueprint), "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr

        from umhctl import api
        from umhctl.remote import ssh
        from umhctl.sim.state import sim_inventory

        calls: Counter[str] = Counter()
        original = ssh.Connection.run

        def counting(self: ssh.Connection, script: str, **kw: object) -> ssh.Result:
            calls[self.endpoint.device] += 1
            return original(self, script, **kw)  # type: ignore[arg-type]

        ssh.Connection.run = counting  # type: ignore[method-assign]
        in_process = []
        for _ in range(args.runs):
            start = time.monotonic()
            plan = api.plan(blueprint, inventory=sim_inventory, parallel=args.parallel).plan
            in_process.append(time.monotonic() - start)
            assert not plan.has_changes and not plan.has_errors, plan.summary()
        per_device = {n / args.runs for n in calls.values()}
        cli_runs = []
        for _ in range(args.runs):
            start = time.monotonic()
            done = cli("plan", "--sim", "-f", str(blueprint), "--detailed-exitcode", "--parallel", str(args.parallel))
            cli_runs.append(time.monotonic() - start)
            assert done.returncode == 0, done.stdout + done.stderr
        print(
            f"no-op plan of the simulated retrofit site: {len(calls)} devices, --parallel {args.parallel}, "
            f"{args.runs} runs"
        )
        print(f"  remote commands per device per plan: {sorted(per_device)}")
        print(
            f"  plan in process (render + connect + probe + plan): median {statistics.median(in_process):.2f} s, "
            f"min {min(in_process):.2f} s"
        )
        print(f"  umhctl plan (whole CLI run): median {statistics.median(cli_runs):.2f} s, min {min(cli_runs):.2f} s")
    finally:
        cli("sim", "down", "-f", str(blueprint))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
