"""The installed package is complete: templates/ ships inside the wheel and is found from there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


def test_own_templates_compile_once_into_a_private_cache_and_never_from_one_others_can_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jinja2

    from umhctl import templating

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = templating._bytecode_cache()
    assert cache is not None
    directory = tmp_path / "umhctl" / "jinja2"
    assert directory.stat().st_mode & 0o777 == 0o700

    def render(bytecode: jinja2.BytecodeCache | None) -> str:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templating.templates_dir())),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            bytecode_cache=bytecode,
        )
        return env.get_template("flatcar/update.conf.j2").render(
            device="d", site="s", group=None, reboot_strategy="off"
        )

    fresh = render(None)
    assert render(cache) == fresh and len(list(directory.iterdir())) == 1, "compiled once, kept"
    # A damaged entry is compiled again, never an error.
    (entry,) = directory.iterdir()
    entry.write_bytes(entry.read_bytes()[:40])
    assert render(templating._bytecode_cache()) == fresh
    # Bytecode is code: a directory someone else may write into is not used.
    directory.chmod(0o770)
    assert templating._bytecode_cache() is None
    directory.chmod(0o700)
    (tmp_path / "umhctl").chmod(0o777)
    assert templating._bytecode_cache() is None
