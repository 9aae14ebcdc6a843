"""What an operator reads during plan, apply and reset, on the simulated demo site, through the CLI.

One simulated site for the module; each test leaves it converged.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app

from .conftest import ROOT, SiteRepo, git, needs_simulated_devices, simulated_demo_site

pytestmark = needs_simulated_devices

BASE = f"127.87.{os.getpid() % 250 + 1}.10"


@dataclass
class Site(SiteRepo):
    def run(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "-f", str(self.blueprint)])
        return result.exit_code, result.output

    def converged(self) -> bool:
        return self.run("plan", "--sim", "--detailed-exitcode")[0] == 0


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with simulated_demo_site(BASE) as blueprint:
        s = Site(blueprint.parent, blueprint)
        assert s.run("apply", "--sim", "--yes")[0] == 0
        yield s


def test_plan_and_apply_into_a_pipe_do_not_import_rich(site: Site) -> None:
    """Off a terminal the plan view and the progress lines are plain text, printed without rich."""
    for command in (["plan", "--sim"], ["apply", "--sim", "--yes", "--device", "edge-01"]):
        code = (
            "import sys; from umhctl.cli import main\n"
            f"sys.argv = ['umhctl', *{command!r}, '-f', {str(site.blueprint)!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
        )
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr
        assert "No changes. " in done.stdout, done.stdout


def test_plan_text_says_what_changed_and_from_what(site: Site) -> None:
    update_conf = site.file("edge-01", "/etc/flatcar/update.conf")
    update_conf.chmod(0o600)  # a hand chmod
    site.edit("timezone: Europe/Berlin", "timezone: Europe/Paris", "Paris time")
    site.edit(
        "    address: 192.0.2.22\n    installDisk: /dev/sda",
        "    address: 192.0.2.22\n    installDisk: /dev/sdb",
        "sdb",
    )
    try:
        code, out = site.run("plan", "--sim")
        text = " ".join(out.split())
        assert code == 0
        assert "/etc/flatcar/update.conf (drift) changed on the device since the last apply (mode 0644 → 0600)" in text
        assert (
            "/etc/localtime points to ../usr/share/zoneinfo/Europe/Berlin → ../usr/share/zoneinfo/Europe/Paris" in text
        )
        assert "Flatcar is installed on /dev/sda, the blueprint says /dev/sdb" in text
    finally:
        git(site.repo, "revert", "--no-edit", "HEAD")
    assert site.run("apply", "--sim", "--yes")[0] == 0
    assert site.converged()


def test_apply_ends_with_one_summary_line(site: Site) -> None:
    site.file("edge-02", "/etc/hostname").write_text("x\n")
    code, out = site.run("apply", "--sim", "--yes")
    assert code == 0, out
    assert "3 devices: 1 changed, 2 unchanged, 0 failed in " in out
    code, out = site.run("apply", "--sim", "--yes", "--device", "edge-02")
    assert "No changes. 1 device matches the blueprint." in out


def test_when_no_device_answers_the_likely_cause_is_named(site: Site) -> None:
    from umhctl.sim.site import reboot_device

    for device in site.sim.devices:
        reboot_device(site.sim.state_dir, device, power_off=True)
    try:
        code, out = site.run("plan", "--sim")
        assert code == 1
        assert "Nothing could be planned: no device answered." in out and "plant network" in out
    finally:
        code, out = site.run("sim", "up")
        assert code == 0
    # sim up says how each device came up, one line per device as it happens
    assert all(f"{device}: " in out for device in site.sim.devices), out
    assert site.converged()


def test_ctrl_c_during_a_reset_says_where_it_stopped_and_how_to_finish(site: Site) -> None:
    watcher = site.sim.watcher_pid
    assert watcher
    os.kill(watcher, signal.SIGSTOP)  # the reboot does not happen: the reset waits for the device
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "umhctl", "reset", "device", "edge-01", "--sim", "-f", str(site.blueprint), "--yes"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("edge-01: waiting for the device"):
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        os.kill(watcher, signal.SIGCONT)
    assert proc.returncode == 130, out + err
    text = " ".join((out + err).split())
    assert "interrupted (Ctrl-C) while waiting for the device" in text
    assert f"umhctl reset device edge-01 --wait -f {site.blueprint} --sim" in text
    assert "(failed)" in out
    code, out = site.run("reset", "device", "edge-01", "--wait", "--sim", "--yes")
    assert code == 0, out
    assert site.converged()


def test_sim_up_from_another_checkout_of_the_same_site_is_refused(site: Site, tmp_path: Path) -> None:
    other = tmp_path / "other-checkout"
    shutil.copytree(site.repo, other)
    assert site.run("sim", "status")[0] == 0
    result = CliRunner().invoke(app, ["sim", "up", "-f", str(other / site.blueprint.name)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert f"was started from {site.blueprint}, and it runs" in text and "--state-dir" in text
    assert site.sim.blueprint == str(site.blueprint), "the running site was not re-pointed"
