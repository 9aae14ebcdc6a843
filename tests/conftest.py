from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
