"""Benchmark: the 30-device retrofit site as a simulated site (as root).

    python3 bench/sim_fleet.py [--blueprint blueprints/retrofit-site.yaml] [--workers 4]

Measures the wall time of `sim up` (render, Ignition, sshd start for every device), the memory of the running
devices (PSS from /proc/PID/smaps_rollup of every device process: each device's unshare and its sshd), whether
every device answers a real SSH login (paramiko, strict host keys, `hostname` must match), and the time of
`sim down`; then checks nothing is left. Uses a throwaway state dir and secret store under /tmp.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from umhctl.blueprint.loader import load_blueprint  # noqa: E402
from umhctl.errors import UmhctlError  # noqa: E402
from umhctl.sim import probe, process  # noqa: E402
from umhctl.sim import site as sim_site  # noqa: E402


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blueprint", type=Path, default=ROOT / "blueprints" / "retrofit-site.yaml")
    parser.add_argument("--workers", type=int, default=sim_site.WORKERS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: simulated devices are namespaces and chroots", file=sys.stderr)
        return 1

    base = Path(tempfile.mkdtemp(prefix="umhctl-bench-sim-", dir="/tmp"))
    state = base / "state"
    os.environ["UMHCTL_SECRETS_DIR"] = str(base / "secrets")
    bp = load_blueprint(args.blueprint).blueprint
    rows: list[tuple[str, str]] = []
    try:
        # Secrets (host keys) are generated on the first render; generate them first so `up` is timed alone.
        from umhctl.render import render_site
        from umhctl.secrets import SecretStore

        loaded = load_blueprint(args.blueprint)
        render_site(loaded, SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent))

        started = time.perf_counter()
        site, results = sim_site.up(args.blueprint, state_dir=state, workers=args.workers)
        up_s = time.perf_counter() - started
        running = sum(r.status == "running" for r in results)
        rows.append(("devices", f"{len(bp.devices)} in the blueprint, {running} running"))
        rows.append(("sim up (render + Ignition + sshd start)", f"{up_s:.2f} s ({args.workers} workers)"))

        pids = []
        for name in site.devices:
            pid = site.devices[name].pid
            if pid:
                pids += [pid, *process.descendants(pid)]
        total_kib = sum(pss_kib(pid) for pid in pids)
        rows.append(
            (
                "memory, idle devices (PSS)",
                f"{total_kib / 1024:.1f} MiB total, {total_kib / 1024 / max(1, running):.2f} MiB/device "
                f"({len(pids)} processes)",
            )
        )
        rows.append(("watcher process (PSS, host side)", f"{pss_kib(site.watcher_pid or 0) / 1024:.1f} MiB"))
        disk = sum(f.stat().st_size for f in (state / "devices").rglob("*") if f.is_file() and not f.is_symlink())
        rows.append(("disk, device roots", f"{disk / 1024 / max(1, running):.0f} KiB/device"))

        def reach(name: str) -> bool:
            try:
                return probe.run(site, name, "hostname").strip() == bp.device(name).host_name
            except UmhctlError:
                return False

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=10) as pool:
            reached = sum(pool.map(reach, site.devices))
        reach_s = time.perf_counter() - started
        rows.append(
            (
                "reachability (paramiko, strict host keys, 10 threads)",
                f"{reached}/{len(site.devices)} in {reach_s:.2f} s",
            )
        )

        started = time.perf_counter()
        sim_site.down(state)
        down_s = time.perf_counter() - started
        left_processes, left_mounts = sim_site.sweep_check(state)
        rows.append(("sim down", f"{down_s:.2f} s"))
        rows.append(("left after down", f"{len(left_processes)} processes, {len(left_mounts)} mounts"))
    finally:
        sim_site.down(state)
        shutil.rmtree(base, ignore_errors=True)

    width = max(len(k) for k, _ in rows)
    print(f"simulated site from {args.blueprint.name} on {os.cpu_count()} CPUs")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
