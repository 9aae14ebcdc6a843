"""Benchmark: time from `umhctl reset device` to a verified device, on the simulated demo site.

Run as root from the repository root: `python3 bench/reset_device.py [--runs N]`. Brings up a simulated demo
site in a scratch directory, applies it, then resets edge-01 N times and prints the phase times.
Not a test: it prints figures. Target: under 60 s per reset (on the sim, most of it is waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def umhctl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "umhctl", *args], capture_output=True, text=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="umhctl-bench-reset-", dir="/tmp"))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "UMHCTL_SECRETS_DIR": str(work / "secrets"),
        "UMHCTL_SIM_STATE": str(work / "sim"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_STATE_HOME": str(work / "state"),
    }
    repo = work / "site"
    shutil.copytree(ROOT / "blueprints", repo)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "demo"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, capture_output=True)
    blueprint = str(repo / "demo-site.yaml")
    try:
        up = umhctl("sim", "up", "-f", blueprint, "--base-address", "127.83.0.10", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert umhctl("apply", "--sim", "-f", blueprint, "--yes", env=env).returncode == 0
        walls, phases = [], {}
        for _ in range(args.runs):
            start = time.monotonic()
            done = umhctl("reset", "device", "edge-01", "--sim", "-f", blueprint, "--yes", "-o", "json", env=env)
            walls.append(time.monotonic() - start)
            result = json.loads(done.stdout)
            assert result["ok"], result
            for p in result["phases"]:
                phases.setdefault(p["phase"], []).append(p["seconds"])
        print(f"reset device edge-01 on the simulated demo site: {args.runs} runs")
        print(
            f"  command to verified device (wall, incl. CLI start): median {statistics.median(walls):.2f} s, "
            f"max {max(walls):.2f} s (target < 60 s)"
        )
        for name, values in phases.items():
            print(f"  {name:28s} median {statistics.median(values):6.2f} s")
    finally:
        umhctl("sim", "down", "-f", blueprint, env=env)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
