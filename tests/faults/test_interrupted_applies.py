"""Fault injection: applies killed at random points, then the device must be whole and explain itself.

Against the simulated site (real sshd, real files, real bash). Each trial flips one device between two renders of
a blueprint that adds many files (hundreds of KB), starts `python -m umhctl apply` as a process and, after a
random delay, SIGKILLs either umhctl itself or the device side of the session (the bash running a script and the
sshd session processes, found by their root: the device's). Then:

- every managed file is entirely the old or entirely the new render (sha256);
- every temp file umhctl left is one plan shows (as a leftover), and a lock left is one plan shows;
- a re-apply (with --force-unlock when plan says the holder is gone) converges: plan --detailed-exitcode is 0.

The default run makes 20 trials; `pytest tests/faults --faults N` makes N. With UMHCTL_FAULTS_REPORT=FILE the
figures are written there as JSON (the README quotes a 200-trial run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from umhctl.sim.state import SimSite

from ..conftest import git, needs_simulated_devices, simulated_demo_site
from ..test_converge import Site

pytestmark = [needs_simulated_devices, pytest.mark.faults]

BASE = f"127.88.{os.getpid() % 250 + 1}.10"
DEVICE = "edge-01"
FILES = 28  # x ~11 KB each: ~300 KB changed per apply
TEMPLATE = """# fault-injection payload {{ vars.n }} ({{ vars.seed }})
{% for i in range(120) %}{{ vars.seed }} {{ vars.n }} {{ i }} abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv
{% endfor %}"""


def payload_path(n: int) -> str:
    return f"/opt/faults/payload-{n:02d}.conf" if n % 2 else f"/etc/faults.d/payload-{n:02d}.conf"


def entries(seed: str) -> str:
    return "".join(
        f"  - path: {payload_path(n)}\n    template: files/faults.j2\n    devices: [{DEVICE}]\n"
        f"    vars: {{n: {n}, seed: {seed}}}\n"
        for n in range(FILES)
    )


@dataclass
class Figures:
    trials: int = 0
    umhctl_kills: int = 0
    device_kills: int = 0  # device-side processes were found and killed
    interrupted: int = 0  # the killed apply did not finish (umhctl exited nonzero or by the signal)
    torn_files: int = 0
    leftovers_found: int = 0  # temp files left by a kill (each shown by plan, or it counts as unexplained)
    locks_found: int = 0
    dead_holders: int = 0  # locks plan reported as held by a run that is gone
    unexplained: int = 0  # temp files or locks plan did not show
    converged: int = 0  # re-apply then plan --detailed-exitcode 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


class FaultSite:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.root = site.sim.root(DEVICE).resolve()
        self.hashes: dict[str, dict[str, str]] = {}
        self.apply_seconds = 2.0

    def set_state(self, seed: str) -> None:
        text = self.site.blueprint.read_text()
        start = text.index("\nfiles:\n") + len("\nfiles:\n")
        end = text.index("  # faults end\n") + len("  # faults end\n") if "# faults end" in text else start
        self.site.blueprint.write_text(text[:start] + entries(seed) + "  # faults end\n" + text[end:])
        git(self.site.repo, "commit", "-qam", f"faults: {seed}")

    def device_hashes(self) -> dict[str, str]:
        out = {}
        for n in range(FILES):
            path = self.root / payload_path(n).lstrip("/")
            out[payload_path(n)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"
        return out

    def plan(self) -> tuple[int, dict]:
        return self.site.plan("--device", DEVICE, "--detailed-exitcode")

    def converge(self, *extra: str) -> bool:
        code, _ = self.site.apply("--device", DEVICE, *extra)
        return code == 0 and self.plan()[0] == 0

    def apply_process(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "umhctl", "apply", "--sim", "-f", str(self.site.blueprint), "--yes"]
        return subprocess.Popen(
            [*argv, "--device", DEVICE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
        )

    def device_processes(self) -> list[int]:
        """The device side of sessions: the bash running a script (and its sudo), sshd's session processes, by
        their root (the device's); the device's sshd listener (`sshd -D`) is spared: the device stays reachable."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if Path(os.readlink(f"/proc/{entry}/root")).resolve() != self.root:
                    continue
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            name = args[0].rsplit(b"/", 1)[-1]
            if name in (b"bash", b"sudo") or (name.startswith(b"sshd") and b"-D" not in args):
                found.append(int(entry))
        return found

    def quiet(self, timeout: float = 20) -> None:
        """Until no script runs on the device any more (a killed umhctl's script may run on to its end)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(self.is_script(pid) for pid in self.device_processes()):
                return
            time.sleep(0.05)

    @staticmethod
    def comm(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return ""

    def is_script(self, pid: int) -> bool:
        return self.comm(pid) == "bash"

    def temp_files(self) -> set[str]:
        found = set()
        for directory in ("/opt/faults", "/etc/faults.d", "/var/lib/umhctl", "/etc", "/opt"):
            base = self.root / directory.lstrip("/")
            if base.is_dir():
                found |= {f"{directory}/{p.name}" for p in base.iterdir() if p.name.startswith(".umhctl-")}
        return found


@pytest.fixture(scope="module")
def faults(request: pytest.FixtureRequest) -> Iterator[FaultSite]:
    with simulated_demo_site(BASE) as blueprint:
        (blueprint.parent / "files" / "faults.j2").write_text(TEMPLATE)
        git(blueprint.parent, "add", "-A")
        site = FaultSite(Site(blueprint.parent, blueprint, SimSite.load(blueprint)))
        for seed in ("old", "new"):
            site.set_state(seed)
            assert site.converge(), f"the {seed} render does not converge"
            site.hashes[seed] = site.device_hashes()
        assert site.hashes["old"] != site.hashes["new"]
        # How long an apply takes as a process: the kills fall anywhere in it.
        site.set_state("old")
        started = time.monotonic()
        assert site.apply_process().wait(timeout=120) == 0
        site.apply_seconds = time.monotonic() - started
        yield site


def test_applies_killed_at_random_points_leave_whole_files_and_explain_what_they_left(
    faults: FaultSite, request: pytest.FixtureRequest
) -> None:
    trials = int(request.config.getoption("--faults"))
    rng = random.Random(int(os.environ.get("UMHCTL_FAULTS_SEED", "16")))
    figures = Figures()
    started = time.monotonic()
    current = "old"
    for trial in range(trials):
        target = "new" if current == "old" else "old"
        faults.set_state(target)
        kind = "umhctl" if trial % 2 == 0 else "device"
        process = faults.apply_process()
        time.sleep(rng.uniform(0.2, faults.apply_seconds))
        if kind == "umhctl":
            process.send_signal(signal.SIGKILL)
            figures.umhctl_kills += 1
        else:
            # The device side runs only while a script does: let a random number of scripts pass (each is one
            # `sudo -n bash`: probe, lock, re-read, write, restart, verify, unlock), kill the next somewhere inside.
            skip, scripts = rng.randint(0, 3), set()
            while process.poll() is None and len(scripts) <= skip:
                scripts |= {pid for pid in faults.device_processes() if faults.comm(pid) == "sudo"}
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.1))
            victims = faults.device_processes()
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            figures.device_kills += bool(victims)
        code = process.wait(timeout=120)
        figures.interrupted += code != 0
        faults.quiet()

        hashes = faults.device_hashes()
        torn = [p for p, h in hashes.items() if h not in (faults.hashes["old"][p], faults.hashes["new"][p])]
        figures.torn_files += len(torn)
        figures.problems += [f"trial {trial} ({kind}): torn {p}" for p in torn]

        _, plan = faults.plan()
        device = next(d for d in plan["devices"] if d["device"] == DEVICE)
        assert device["error"] is None, device["error"]
        shown = {c["target"] for c in device["changes"] if c["kind"] == "leftover"}
        temps = faults.temp_files()
        figures.leftovers_found += len(temps)
        unexplained = sorted(temps - shown)
        lock_change = next((c for c in device["changes"] if c["kind"] == "lock"), None)
        lock_left = (faults.root / "var/lib/umhctl/lock.d").exists()
        figures.locks_found += lock_left
        if lock_left and lock_change is None:
            unexplained.append("lock.d")
        dead = bool(lock_change and lock_change["before"]["holder_gone"])
        figures.dead_holders += dead
        if lock_change is not None and not dead:
            unexplained.append(f"a lock plan calls live: {lock_change['reason']}")
        figures.unexplained += len(unexplained)
        figures.problems += [f"trial {trial} ({kind}): unexplained {u}" for u in unexplained]

        if faults.converge(*(["--force-unlock"] if lock_change is not None else [])):
            figures.converged += 1
        else:
            figures.problems.append(f"trial {trial} ({kind}): did not converge")
        assert not faults.temp_files(), "a converged device has no temp files"
        current = target
        figures.trials += 1
    figures.seconds = round(time.monotonic() - started, 1)

    report = json.dumps(asdict(figures), indent=2)
    print(report)
    if os.environ.get("UMHCTL_FAULTS_REPORT"):
        Path(os.environ["UMHCTL_FAULTS_REPORT"]).write_text(report + "\n")
    assert figures.torn_files == 0, figures.problems
    assert figures.unexplained == 0, figures.problems
    assert figures.converged == trials, figures.problems
