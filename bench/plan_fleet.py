"""Benchmark: a no-op `umhctl plan` of the 30-device simulated retrofit site against the SSH floor.

Run as root from the repository root: `python3 bench/plan_fleet.py [--runs N] [--parallel N]`. Brings the
retrofit site up in a scratch directory, applies it once, then measures, as whole processes, interleaved
(bench/harness.py):

- the SSH floor: bench/ssh_floor.py, one paramiko connection and one `sudo -n true` per device, the same
  endpoints, key, known_hosts (strict) and parallelism;
- `umhctl plan --sim --detailed-exitcode` of the whole site (exit 0: nothing to do);
- the same two for one device (`--device`, and the floor for that device alone);
- `plan --device X` of one device of a 500-device site (bench/gen_site.py 500; only that device is simulated,
  `sim up --device`), and the floor for that device.

It also counts remote commands per device in an in-process plan. Targets (issue 14): plan ≤ 1.5x the floor,
for the 30-device site and for one device of the 500-device site; the exit status is 1 when one is missed, 2
when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from harness import ROOT, BenchError, Target, finish, interleaved, machine, median, timings, umhctl

sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--parallel", type=int, default=16)
    args = parser.parse_args()
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="umhctl-bench-plan-", dir="/tmp"))
    env = {
        **os.environ,
        "UMHCTL_SECRETS_DIR": str(work / "secrets"),
        "UMHCTL_SIM_STATE": str(work / "sim"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_STATE_HOME": str(work / "state"),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)

    def commit_all(repo: Path, message: str) -> None:
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", message]):
            subprocess.run(["git", "-C", str(repo), *cmd], check=True, capture_output=True)

    repo = work / "site"
    shutil.copytree(ROOT / "blueprints", repo)
    commit_all(repo, "retrofit")
    blueprint = repo / "retrofit-site.yaml"

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(umhctl(*argv), capture_output=True, text=True, env=env)

    def bring_up(site: Path, base: str, *only: str) -> None:
        """Start the site (or only the devices named), fetch its images, apply it."""
        chosen = [arg for name in only for arg in ("--device", name)]
        for argv in (
            ("sim", "up", "-f", str(site), "--base-address", base, *chosen),
            ("fetch", "--sim", "-f", str(site)),  # apply uploads images from the verified cache
            ("apply", "--sim", "-f", str(site), "--yes", *chosen),
        ):
            done = cli(*argv)
            if done.returncode != 0:
                raise BenchError(f"umhctl {' '.join(argv)}:\n{done.stdout}{done.stderr}")

    def endpoints_of(site: Path, into: Path) -> list[str]:
        from umhctl.blueprint.loader import load_blueprint
        from umhctl.sim.state import sim_inventory

        inventory = sim_inventory(load_blueprint(site))
        into.write_text(
            json.dumps(
                {
                    "known_hosts": str(inventory.known_hosts),
                    "identity": str(inventory.identity),
                    "user": inventory.user,
                    "endpoints": inventory.endpoints,
                }
            )
        )
        return sorted(inventory.endpoints)

    large_repo = work / "large"
    from gen_site import write_site

    large = write_site(500, large_repo, name="bench-large")
    commit_all(large_repo, "500 devices")

    try:
        bring_up(blueprint, "127.84.0.10")
        endpoints = work / "endpoints.json"
        names = endpoints_of(blueprint, endpoints)
        one = names[-1]
        from umhctl.blueprint.loader import load_blueprint

        large_one = sorted(d.name for d in load_blueprint(large).blueprint.devices)[-1]
        bring_up(large, "127.84.8.10", large_one)
        large_endpoints = work / "large-endpoints.json"
        endpoints_of(large, large_endpoints)

        from umhctl import api
        from umhctl.remote import ssh
        from umhctl.sim.state import sim_inventory

        calls: Counter[str] = Counter()
        original = ssh.Connection.run

        def counting(self: ssh.Connection, script: str, **kw: object) -> ssh.Result:
            calls[self.endpoint.device] += 1
            return original(self, script, **kw)  # type: ignore[arg-type]

        ssh.Connection.run = counting  # type: ignore[method-assign]
        done = api.plan(blueprint, inventory=sim_inventory, parallel=args.parallel).plan
        if done.has_changes or done.has_errors:
            raise BenchError(f"the plan after apply is not a no-op: {done.summary()}")
        per_device = sorted(set(calls.values()))

        floor = [sys.executable, str(ROOT / "bench" / "ssh_floor.py"), str(endpoints), "--parallel", str(args.parallel)]
        plan = ["plan", "--sim", "-f", str(blueprint), "--detailed-exitcode", "--parallel", str(args.parallel)]
        commands = {
            "floor": floor,
            "plan": umhctl(*plan),
            "floor1": [*floor, "--device", one],
            "plan1": umhctl(*plan, "--device", one),
            "floor500": [*floor[:2], str(large_endpoints), *floor[3:], "--device", large_one],
            "plan500": umhctl("plan", "--sim", "-f", str(large), "--detailed-exitcode", "--device", large_one),
        }
        labels = {
            "floor": f"SSH floor, {len(names)} devices",
            "plan": "umhctl plan (no-op), site",
            "floor1": f"SSH floor, {one}",
            "plan1": f"umhctl plan --device {one}",
            "floor500": f"SSH floor, {large_one} (500-device site)",
            "plan500": f"umhctl plan --device {large_one} (500-device site)",
        }
        samples = interleaved(commands, args.runs, env=env)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    finally:
        cli("sim", "down", "-f", str(blueprint))
        cli("sim", "down", "-f", str(large))
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.runs} runs per command after 1 warm-up, round-robin, --parallel {args.parallel}\n")
    print(timings(samples, labels))
    print(f"\nremote commands per device in a no-op plan: {per_device}")
    site = median(samples["plan"]) / median(samples["floor"])
    device = median(samples["plan1"]) / median(samples["floor1"])
    print(f"plan --device X of the 30-device site / SSH floor of one device: {device:.2f}x (no target)")
    large_device = median(samples["plan500"]) / median(samples["floor500"])
    return finish(
        [
            Target("no-op plan of the 30-device site / SSH floor", site, 1.5),
            Target("plan --device X of a 500-device site / SSH floor of one device", large_device, 1.5),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
