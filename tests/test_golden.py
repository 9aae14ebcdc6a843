"""Golden files: the demo site's rendered devices, byte for byte (secrets redacted, fixed secret store).

After an intended renderer change: `pytest tests/test_golden.py --update-golden`, then review `git diff tests/golden`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from umhctl.blueprint.loader import load_blueprint
from umhctl.render import render_site
from umhctl.render.output import write_render
from umhctl.secrets import SecretStore

from .conftest import BLUEPRINTS, ROOT

GOLDEN = ROOT / "tests" / "golden" / "demo-site"
MODES = "MODES"  # git keeps only 644/755: the rendered modes are recorded here instead
FIXED_SECRETS = ROOT / "tests" / "data" / "golden-secrets" / "demo-site"


def _tree(root: Path) -> dict[str, tuple[str, bytes]]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel == MODES:
            continue
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path).encode())
        elif path.is_file():
            out[rel] = (f"{path.stat().st_mode & 0o777:04o}", path.read_bytes())
    return out


def test_demo_site_renders_as_reviewed(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store_dir = tmp_path / "secrets"
    shutil.copytree(FIXED_SECRETS, store_dir)
    loaded = load_blueprint(BLUEPRINTS / "demo-site.yaml")
    store = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent, store_dir)
    out = tmp_path / "render"
    for r in render_site(loaded, store, redact=True):
        write_render(r, out)
    actual = _tree(out)
    modes = "".join(f"{mode} {rel}\n" for rel, (mode, _) in actual.items() if mode != "link")
    if request.config.getoption("--update-golden"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN, symlinks=True)
        (GOLDEN / MODES).write_text(modes)
        pytest.skip("golden files rewritten; review the diff")
    expected = _tree(GOLDEN)
    assert sorted(actual) == sorted(expected), "the set of rendered files changed"
    for rel, (_, content) in expected.items():
        assert actual[rel][1] == content, f"{rel} differs from tests/golden (run with --update-golden if intended)"
    assert modes == (GOLDEN / MODES).read_text(), "file modes changed"


TAILSCALE_GOLDEN = ROOT / "tests" / "golden" / "tailscale"


def test_tailscale_enroll_unit_and_config_render_as_reviewed(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo site with its Tailscale section on: edge-01's enroll unit and its whole Ignition config."""
    from .tailnet import tailscale_site

    store_dir = tmp_path / "secrets"
    shutil.copytree(FIXED_SECRETS, store_dir)
    loaded = load_blueprint(tailscale_site(tmp_path / "site"))
    store = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent, store_dir)
    (render,) = render_site(loaded, store, devices=["edge-01"], redact=True)
    out = tmp_path / "render"
    write_render(render, out)
    actual = {
        "umhctl-tailscale-enroll.service": (
            out / "edge-01/rootfs/etc/systemd/system/umhctl-tailscale-enroll.service"
        ).read_bytes(),
        "edge-01.ignition.json": (out / "edge-01/ignition.json").read_bytes(),
    }
    if request.config.getoption("--update-golden"):
        TAILSCALE_GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, content in actual.items():
            (TAILSCALE_GOLDEN / name).write_bytes(content)
        pytest.skip("golden files rewritten; review the diff")
    for name, content in actual.items():
        assert content == (TAILSCALE_GOLDEN / name).read_bytes(), f"{name} differs from tests/golden/tailscale"
