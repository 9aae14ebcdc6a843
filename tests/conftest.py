from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "blueprints"
EXAMPLES = sorted(BLUEPRINTS.glob("*.yaml"))


@pytest.fixture
def demo_text() -> str:
    return (BLUEPRINTS / "demo-site.yaml").read_text()
