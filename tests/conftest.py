from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from umhctl.sim.state import SimSite

ROOT = Path(__file__).resolve().parent.parent

# Simulated devices are real sshd processes in namespaces: root, Debian's ignition and openssh-server.
needs_simulated_devices = pytest.mark.skipif(
    os.geteuid() != 0
    or not Path("/usr/lib/dracut/modules.d/30ignition/ignition").exists()
    or not Path("/usr/sbin/sshd").exists(),
    reason="simulated devices need root, ignition and openssh-server",
)
BLUEPRINTS = ROOT / "blueprints"
EXAMPLES = sorted(BLUEPRINTS.glob("*.yaml"))


@pytest.fixture
def demo_text() -> str:
    return (BLUEPRINTS / "demo-site.yaml").read_text()


@pytest.fixture
def device_roots() -> Iterator[Path]:
    """A directory for device roots that uid 500 can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="umhctl-test-roots-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current renderers (review the diff!)",
    )
    parser.addoption(
        "--faults",
        type=int,
        default=20,
        metavar="N",
        help="trials of the fault-injection suite (tests/faults/, marker `faults`): applies killed at random points",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault injection against the simulated site (tests/faults/)")
    # What umhctl caches on its own (compiled templates) goes to a scratch directory, never the developer's cache;
    # tests that need a cache of their own still set XDG_CACHE_HOME themselves.
    if "XDG_CACHE_HOME" not in os.environ:
        os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="umhctl-test-cache-", dir="/tmp")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@dataclass
class SiteRepo:
    """A simulated site as the site tests see it: its git repository, its blueprint and each device's root.
    Each test module subclasses it with the way it runs the CLI (text, JSON, stdout and stderr apart)."""

    repo: Path
    blueprint: Path

    @property
    def sim(self) -> SimSite:
        from umhctl.sim.state import SimSite

        return SimSite.load(self.blueprint)

    def file(self, device: str, path: str) -> Path:
        return self.sim.root(device) / path.lstrip("/")

    def edit(self, old: str, new: str, message: str) -> None:
        """Replace the first `old` in the blueprint and commit."""
        text = self.blueprint.read_text()
        assert old in text, old
        self.commit(text.replace(old, new, 1), message)

    def commit(self, text: str, message: str) -> None:
        self.blueprint.write_text(text)
        git(self.repo, "commit", "-qam", message)


@contextmanager
def simulated_demo_site(base_address: str) -> Iterator[Path]:
    """The demo blueprint in a scratch git repository, its simulated site up; yields the blueprint path.

    umhctl's secret store, simulated-site state, content cache and run state all point into the scratch
    directory for the duration, so a developer's own sites are never touched.
    """
    from typer.testing import CliRunner

    from umhctl.cli import app

    work = Path(tempfile.mkdtemp(prefix="umhctl-site-", dir="/tmp"))
    keys = ("UMHCTL_SECRETS_DIR", "UMHCTL_SIM_STATE", "XDG_CACHE_HOME", "XDG_STATE_HOME")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        UMHCTL_SECRETS_DIR=str(work / "secrets"),
        UMHCTL_SIM_STATE=str(work / "sim"),
        XDG_CACHE_HOME=str(work / "cache"),
        XDG_STATE_HOME=str(work / "state"),
    )
    repo = work / "site"
    shutil.copytree(BLUEPRINTS, repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "demo site")
    blueprint = repo / "demo-site.yaml"
    result = CliRunner().invoke(app, ["sim", "up", "-f", str(blueprint), "--base-address", base_address])
    assert result.exit_code == 0, result.output
    # The simulated site's stand-in images, into the (scratch) artifact cache: what `umhctl fetch` does at the office.
    result = CliRunner().invoke(app, ["fetch", "--sim", "-f", str(blueprint)])
    assert result.exit_code == 0, result.output
    try:
        yield blueprint
    finally:
        CliRunner().invoke(app, ["sim", "down", "-f", str(blueprint)])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work, ignore_errors=True)
