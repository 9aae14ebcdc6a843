"""bench/peers/gen_pyinfra.py turns umhctl's render into a pyinfra inventory and deploy (the peer benchmark's
input). The generator needs no pyinfra: its output is checked here as Python source holding the render's data."""

from __future__ import annotations

import ast
import importlib.util
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from umhctl.cli import app

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_pyinfra", ROOT / "bench" / "peers" / "gen_pyinfra.py")
assert _spec is not None and _spec.loader is not None
gen_pyinfra = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_pyinfra)


def _assigned(source: str, name: str) -> Any:
    """The literal assigned to `name` at module level (the generated files hold plain data)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} = ... in the generated source")


@pytest.fixture(scope="module")
def demo_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render")
    env = {"UMHCTL_SECRETS_DIR": str(tmp_path_factory.mktemp("secrets"))}
    result = CliRunner().invoke(
        app, ["render", "-f", str(ROOT / "blueprints" / "demo-site.yaml"), "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    return out


def _endpoints(render: Path) -> dict[str, Any]:
    devices = sorted(p.parent.name for p in render.glob("*/plan-input.json"))
    return {
        "known_hosts": "/sim/known_hosts",
        "identity": "/sim/id_ed25519",
        "user": "core",
        "endpoints": {d: ["127.0.0.1", 2200 + n] for n, d in enumerate(devices)},
    }


def test_the_deploy_puts_every_rendered_file_and_link_with_its_mode(demo_render: Path, tmp_path: Path) -> None:
    images = tmp_path / "store"
    images.mkdir()
    inputs = {p.parent.name: json.loads(p.read_text()) for p in demo_render.glob("*/plan-input.json")}
    names = {a["name"] for data in inputs.values() for a in data["artifacts"]}
    assert names, "the demo site has system extension images"
    for name in names:
        (images / name).write_bytes(b"image")
    store = {name: images / name for name in names}
    inventory, deploy = gen_pyinfra.generate(demo_render, _endpoints(demo_render), tmp_path / "py", store)

    source = deploy.read_text()
    compile(source, str(deploy), "exec")
    devices = _assigned(source, "DEVICES")
    assert sorted(devices) == sorted(inputs) and len(inputs) >= 2
    assert any(f["secret"] for data in inputs.values() for f in data["files"])
    for device, data in inputs.items():
        want = devices[device]
        files = {f["path"]: f for f in want["files"]}
        assert sorted(files) == [f["path"] for f in data["files"]]
        for f in data["files"]:
            put = files[f["path"]]
            assert (put["mode"], put["owner"], put["group"], put["restarts"]) == (
                f["mode"],
                f["owner"],
                f["group"],
                f["restarts"],
            )
            src = Path(put["src"])
            assert src == demo_render / device / "rootfs" / f["path"].lstrip("/")
            assert src.is_file()
            if f["secret"]:  # pyinfra reads secrets from the render, which keeps them to the owner
                assert stat.S_IMODE(src.stat().st_mode) == 0o600, src
        assert want["links"] == data["links"]
        assert {a["path"] for a in want["artifacts"]} == {a["path"] for a in data["artifacts"]}
        assert all(Path(a["src"]).parent == images for a in want["artifacts"])
    # Restarts run only when a file that restarts them changed, and as root, like every write.
    assert "_if=any_changed(" in source and source.count("_sudo=True") == 4

    inv_source = inventory.read_text()
    compile(inv_source, str(inventory), "exec")
    hosts = dict(_assigned(inv_source, "devices"))
    assert sorted(hosts) == sorted(inputs)
    for device, data in hosts.items():
        assert [data["ssh_hostname"], data["ssh_port"]] == _endpoints(demo_render)["endpoints"][device]
        assert data["ssh_strict_host_key_checking"] == "yes"  # pyinfra's default is accept-new
        assert data["ssh_known_hosts_file"] == "/sim/known_hosts"
        assert (data["ssh_user"], data["ssh_key"]) == ("core", "/sim/id_ed25519")


def test_images_are_left_out_without_a_store_and_gaps_are_errors(demo_render: Path, tmp_path: Path) -> None:
    _, deploy = gen_pyinfra.generate(demo_render, _endpoints(demo_render), tmp_path / "py")
    assert all(not d["artifacts"] for d in _assigned(deploy.read_text(), "DEVICES").values())

    partial = _endpoints(demo_render)
    dropped = sorted(partial["endpoints"])[0]
    del partial["endpoints"][dropped]
    with pytest.raises(ValueError, match=f"no endpoint for {dropped}"):
        gen_pyinfra.generate(demo_render, partial, tmp_path / "py2")
    with pytest.raises(ValueError, match="holds no umhctl render"):
        gen_pyinfra.generate(tmp_path / "py", _endpoints(demo_render), tmp_path / "py3")
    with pytest.raises(ValueError, match="no verified copy"):
        gen_pyinfra.generate(demo_render, _endpoints(demo_render), tmp_path / "py4", {})
