"""Benchmark: umhctl against pyinfra on the same simulated site, the same desired state, the same change.

Run as root from the repository root, with pyinfra installed (`pip install -e '.[bench]'`):

    python3 bench/peers/compare.py [--devices N] [--runs N] [--parallel N]

Generates an N-device blueprint (bench/gen_site.py) in a scratch git repository, with a second commit that changes
one file on every device (the NTP servers: /etc/systemd/timesyncd.conf.d/50-umhctl.conf, which restarts
systemd-timesyncd), brings the simulated site up and converges it with `umhctl apply --sim --yes`. pyinfra gets
an inventory and a deploy generated from umhctl's own render of each commit (gen_pyinfra.py: every file with its
mode and owner, every link, the system extension image, the same restarts; strict host keys against the sim's
known_hosts). Then, as whole processes, interleaved (bench/harness.py):

- no-op: `umhctl apply --sim --yes` against `pyinfra -y inventory.py deploy.py`, the site already converged.
  Apply, not plan: a pyinfra run is its apply (it checks and changes in one go), so the comparable umhctl
  command is the one that would change the device too;
- one change: before each run (unmeasured) the site is put back to the first commit with umhctl apply; then
  `umhctl apply` of the second commit against pyinfra's deploy of the second commit's render;
- the SSH floor (bench/ssh_floor.py), with the no-op runs: one connection and `sudo -n true` per device.

Once, unmeasured, each command runs under count_remote.py (SSH connections, remote commands and SFTP sessions per
device, counted in paramiko, which both use), and `umhctl plan` afterwards checks that pyinfra's run left exactly
umhctl's desired state (the deploy is a faithful translation). If `ansible` is on PATH, `ansible -m ping` runs
once against one device and its refusal is printed: Ansible's modules need Python on the device, and neither
Flatcar nor the simulated device has any.

Target (issue 14): the one-change apply ≥ 5x faster than pyinfra's (umhctl/pyinfra ≤ 0.2); exit 1 when missed,
2 when the benchmark cannot run.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness import ROOT, BenchError, Target, finish, interleaved, machine, median, table, timings, umhctl  # noqa: E402

sys.path.insert(0, str(ROOT))
CHANGED_FILE = "/etc/systemd/timesyncd.conf.d/50-umhctl.conf"
EXTRA_NTP = "192.0.2.4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10, help="devices in the generated site (default 10)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=16, help="devices worked on at once, by both tools")
    args = parser.parse_args()
    pyinfra = Path(sys.executable).parent / "pyinfra"
    if not pyinfra.exists():
        print(f"ERROR: no pyinfra next to {sys.executable}: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="umhctl-bench-peers-", dir="/tmp"))
    env = {
        **os.environ,
        "UMHCTL_SECRETS_DIR": str(work / "secrets"),
        "UMHCTL_SIM_STATE": str(work / "sim"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_STATE_HOME": str(work / "state"),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    repo = work / "site"

    def sh(*argv: str | Path) -> str:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(map(str, argv))}: exit {done.returncode}\n{done.stdout}{done.stderr}")
        return done.stdout

    def git(*argv: str) -> str:
        return sh("git", "-C", repo, *argv)

    blueprint = repo / "site.yaml"
    try:
        import gen_site

        data = gen_site.blueprint(args.devices, f"bench-{args.devices}")
        gen_site.write_site(args.devices, repo)
        git("init", "-q", "-b", "base")
        git("add", "-A")
        git("commit", "-qm", "generated site")
        git("checkout", "-qb", "change")
        write_blueprint(blueprint, {**data, "os": {**data["os"], "ntp": [*data["os"]["ntp"], EXTRA_NTP]}})
        git("commit", "-qam", f"one more NTP server: {CHANGED_FILE} on every device")
        git("checkout", "-q", "base")

        sh(*umhctl("sim", "up", "-f", str(blueprint), "--base-address", "127.86.0.10"))
        sh(*umhctl("fetch", "--sim", "-f", str(blueprint)))  # apply uploads images from the verified cache
        sh(*umhctl("apply", "--sim", "-f", str(blueprint), "--yes"))

        from umhctl.blueprint.loader import load_blueprint
        from umhctl.sim.state import SimSite, sim_inventory

        loaded = load_blueprint(blueprint)
        inventory = sim_inventory(loaded)
        endpoints: dict[str, Any] = {
            "known_hosts": str(inventory.known_hosts),
            "identity": str(inventory.identity),
            "user": inventory.user,
            "endpoints": {d: list(e) for d, e in inventory.endpoints.items()},
        }
        (work / "endpoints.json").write_text(json.dumps(endpoints))
        lock = SimSite.load(loaded).state_dir / "artifacts.lock.json"
        import gen_pyinfra

        store = gen_pyinfra.artifact_store(lock, work / "cache" / "umhctl" / "artifacts" / "sha256")
        decks = {}
        for commit in ("base", "change"):
            git("checkout", "-q", commit)
            sh(*umhctl("render", "-f", str(blueprint), "--out", str(work / "render" / commit)))
            decks[commit] = gen_pyinfra.generate(work / "render" / commit, endpoints, work / "pyinfra" / commit, store)
        git("checkout", "-q", "base")

        parallel = str(args.parallel)
        apply = umhctl("apply", "--sim", "-f", str(blueprint), "--yes", "--parallel", parallel)

        def deploy(commit: str) -> list[str]:
            inv, dep = decks[commit]
            return [str(pyinfra), "-y", "--parallel", parallel, str(inv), str(dep)]

        def counted(argv: list[str], name: str) -> dict[str, dict[str, int]]:
            # argv[0] is the console script: run it in process under count_remote.py instead.
            out = work / f"counts-{name}.json"
            script = Path(argv[0]).name
            sh(sys.executable, HERE / "count_remote.py", out, script, *argv[1:])
            return dict(json.loads(out.read_text()))

        def converged(what: str) -> None:
            # pyinfra does not write umhctl's applied-state record: a plan after it may want to rewrite that, and
            # nothing else.
            from umhctl import api

            done = api.plan(blueprint, inventory=sim_inventory, parallel=args.parallel).plan
            left = [f"{d.device}: {c.kind} {c.path}" for d in done.devices for c in d.changes if c.kind != "record"]
            left += [f"{d.device}: {d.error}" for d in done.devices if d.error]
            if left:
                raise BenchError(f"after {what}, umhctl plan finds work left: {'; '.join(left[:5])}")

        def reset_to_base(_: str) -> None:
            git("checkout", "-q", "base")
            sh(*apply)
            git("checkout", "-q", "change")

        counts = {
            "noop-umhctl": counted(apply, "noop-umhctl"),
            "noop-pyinfra": counted(deploy("base"), "noop-pyinfra"),
        }
        converged("pyinfra's no-op run")
        # The SSH floor (bench/ssh_floor.py: one connection and `sudo -n true` per device, same endpoints, key,
        # strict known_hosts, parallelism) does not depend on the devices' state: measured with the no-op runs.
        floor = [sys.executable, str(ROOT / "bench" / "ssh_floor.py"), str(work / "endpoints.json")]
        noop = interleaved(
            {"umhctl": apply, "pyinfra": deploy("base"), "floor": [*floor, "--parallel", parallel]}, args.runs, env=env
        )

        reset_to_base("")
        counts["change-umhctl"] = counted(apply, "change-umhctl")
        reset_to_base("")
        counts["change-pyinfra"] = counted(deploy("change"), "change-pyinfra")
        converged("pyinfra's one-change run")  # pyinfra left exactly what umhctl renders for the change
        change = interleaved({"umhctl": apply, "pyinfra": deploy("change")}, args.runs, env=env, before=reset_to_base)
        git("checkout", "-q", "base")
        refusal = ansible_ping(work, endpoints)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    finally:
        subprocess.run(umhctl("sim", "down", "-f", str(blueprint)), capture_output=True, env=env)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{args.devices} simulated devices, {args.runs} runs per command after 1 warm-up, round-robin, "
        f"--parallel {args.parallel}\n"
    )
    labels = {
        "umhctl": "umhctl apply --yes",
        "pyinfra": "pyinfra -y inventory.py deploy.py",
        "floor": "SSH floor (bench/ssh_floor.py)",
    }
    print("no-op (site converged):")
    print(timings(noop, labels))
    print(f"\none change ({CHANGED_FILE} on every device, one restart):")
    print(timings(change, labels))
    rows = [["per device (median)", "connections", "remote commands", "SFTP sessions"]]
    for label, per in counts.items():
        rows.append(
            [
                label,
                *(f"{statistics.median(c[k] for c in per.values()):g}" for k in ("connections", "commands", "sftp")),
            ]
        )
    print()
    print(table(rows))
    noop_ratio = median(noop["pyinfra"]) / median(noop["umhctl"])
    change_ratio = median(change["pyinfra"]) / median(change["umhctl"])
    print(f"\nno-op: umhctl {noop_ratio:.1f}x faster than pyinfra; one change: {change_ratio:.1f}x faster")
    floor_s = median(noop["floor"])
    over = {k: median(runs[k]) / floor_s for runs, k in ((noop, "umhctl"), (noop, "pyinfra"))}
    print(
        f"against the SSH floor: no-op umhctl {over['umhctl']:.1f}x, pyinfra {over['pyinfra']:.1f}x; one change "
        f"umhctl {median(change['umhctl']) / floor_s:.1f}x, pyinfra {median(change['pyinfra']) / floor_s:.1f}x"
    )
    print(f"ansible: {refusal}")
    return finish(
        [
            Target(
                "one-change apply, umhctl / pyinfra",
                median(change["umhctl"]) / median(change["pyinfra"]),
                0.2,
                detail=f"umhctl {change_ratio:.1f}x faster, target ≥ 5x",
            )
        ]
    )


def write_blueprint(path: Path, data: dict[str, Any]) -> None:
    # As gen_site.write_site dumps it (data, never text edits).
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    with path.open("w", encoding="utf-8") as stream:
        yaml.dump(data, stream)


def ansible_ping(work: Path, endpoints: dict[str, Any]) -> str:
    """Ansible against one device, once: its modules run on Python on the device, which has none."""
    ansible = shutil.which("ansible") or shutil.which("ansible", path=str(Path(sys.executable).parent))
    if ansible is None:
        return "ansible-core not installed: skipped"
    device, (address, port) = sorted(endpoints["endpoints"].items())[0]
    host = {
        "ansible_host": address,
        "ansible_port": port,
        "ansible_user": endpoints["user"],
        "ansible_ssh_private_key_file": endpoints["identity"],
        "ansible_ssh_common_args": (
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={endpoints['known_hosts']} -F /dev/null"
        ),
    }
    inventory = work / "ansible-inventory.json"  # JSON is YAML: ansible's yaml inventory plugin reads it
    inventory.write_text(json.dumps({"all": {"hosts": {device: host}}}))
    done = subprocess.run(
        [ansible, "all", "-i", str(inventory), "-m", "ping"],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_NOCOLOR": "1"},
    )
    output = " ".join((done.stdout + done.stderr).split())
    verdict = "refused" if done.returncode != 0 else "UNEXPECTEDLY succeeded"
    return f"`ansible {device} -m ping` {verdict} (exit {done.returncode}): {output[:400]}"


if __name__ == "__main__":
    sys.exit(main())
