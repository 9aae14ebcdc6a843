"""The installed package is complete: templates/ ships inside the wheel and is found from there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import ROOT


def test_wheel_ships_templates_and_uses_them(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("umhctl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n for n in names if n.startswith("umhctl/templates/")}
    expected = {f"umhctl/templates/{p.relative_to(ROOT / 'templates')}" for p in (ROOT / "templates").rglob("*.j2")}
    assert expected and expected <= shipped
    # The simulated site's non-Python parts (shell stand-ins run inside devices) ship too.
    sim = {
        f"umhctl/sim/{p.relative_to(ROOT / 'umhctl' / 'sim')}"
        for p in (ROOT / "umhctl" / "sim").rglob("*")
        if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts
    }
    assert sim <= set(names), sim - set(names)
    # A real (non-editable) install into a fresh target, run from elsewhere: it must find its own templates.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import umhctl.templating as t; print(t.templates_dir()); "
        "print(t.render_template('flatcar/update.conf.j2', device='d', site='s', group=None, reboot_strategy='off'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(target)},
    ).stdout
    assert out.splitlines()[0] == str(target / "umhctl" / "templates")
    assert "SERVER=disabled" in out
