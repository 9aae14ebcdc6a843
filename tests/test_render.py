"""Rendering: real validators (ignition-validate, the real Ignition binary), determinism, secret handling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from umhctl.blueprint.loader import LoadedBlueprint, load_blueprint
from umhctl.cli import app
from umhctl.render import DeviceRender, render_site
from umhctl.render.ignition import ignition_json
from umhctl.render.output import write_render
from umhctl.secrets import SecretStore
from umhctl.sim.provision import make_base_root, run_ignition

from .conftest import BLUEPRINTS, EXAMPLES, ROOT
from .leaks import needles, scan, secret_values


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secrets")


def _render(path: Path, secrets_dir: Path, **kw: object) -> tuple[LoadedBlueprint, SecretStore, list[DeviceRender]]:
    loaded = load_blueprint(path)
    store = SecretStore.for_blueprint(loaded.blueprint, path.parent, secrets_dir / loaded.blueprint.metadata.name)
    return loaded, store, render_site(loaded, store, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def rendered(secrets_dir: Path) -> dict[str, tuple[SecretStore, list[DeviceRender]]]:
    out = {}
    for path in EXAMPLES:
        _, store, renders = _render(path, secrets_dir)
        out[path.name] = (store, renders)
    return out


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_every_ignition_passes_ignition_validate(rendered, example: str, tmp_path: Path) -> None:
    _, renders = rendered[example]
    assert len(renders) == len(load_blueprint(BLUEPRINTS / example).blueprint.devices)
    for r in renders:
        path = tmp_path / f"{r.device}.ign"
        path.write_text(ignition_json(r.ignition))
        proc = subprocess.run(["ignition-validate", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{r.device}: {proc.stdout}{proc.stderr}"
        assert proc.stdout.strip() == "" and proc.stderr.strip() == "", "no warnings either"


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_real_ignition_stages_exactly_the_desired_state(rendered, example: str, device_roots: Path) -> None:
    _, renders = rendered[example]
    bp = load_blueprint(BLUEPRINTS / example).blueprint
    for r in renders:
        root = device_roots / r.device
        make_base_root(root)
        run_ignition(r.ignition, root)
        for f in r.state.files:
            on_disk = root / f.path.lstrip("/")
            assert on_disk.read_bytes() == f.content, f"{r.device}:{f.path}"
            assert on_disk.stat().st_mode & 0o7777 == f.mode, f"{r.device}:{f.path}"
            owners = {"root": 0, "core": 500}
            assert (on_disk.stat().st_uid, on_disk.stat().st_gid) == (owners[f.owner], owners[f.group])
        for link in r.ignition["storage"]["links"]:
            assert os.readlink(root / link["path"].lstrip("/")) == link["target"]
        # The k3s image comes with the first apply: first boot neither fetches it nor links to it.
        assert not os.path.lexists(root / "etc/extensions/k3s.raw")
        keys = (root / "home/core/.ssh/authorized_keys.d/ignition").read_text()
        assert all(k in keys for k in bp.access.authorized_keys)
        assert (root / "etc/hostname").read_text() == f"{bp.device(r.device).host_name}\n"


def test_render_is_deterministic(secrets_dir: Path) -> None:
    first = _render(BLUEPRINTS / "retrofit-site.yaml", secrets_dir)[2]
    second = _render(BLUEPRINTS / "retrofit-site.yaml", secrets_dir)[2]
    for a, b in zip(first, second, strict=True):
        assert ignition_json(a.ignition) == ignition_json(b.ignition)
        assert a.butane == b.butane
        assert a.state == b.state


def test_generated_secrets_are_kept_and_per_device(rendered) -> None:
    _, renders = rendered["demo-site.yaml"]
    keys = {r.device: r.state.file("/etc/ssh/ssh_host_ed25519_key.pub").content for r in renders}
    assert len(set(keys.values())) == len(keys)
    tokens = {r.state.file("/etc/rancher/k3s/token").content for r in renders}
    assert len(tokens) == len(renders)


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_secrets_only_in_0600_files_and_never_when_redacted(secrets_dir: Path, tmp_path: Path, example: str) -> None:
    _, store, renders = _render(BLUEPRINTS / example, secrets_dir)
    for r in renders:
        write_render(r, tmp_path / "plain", store.sealer())
    secrets = secret_values(store.directory)
    assert secrets
    # Nor any unkeyed digest of a secret, or of a file that holds one, outside the 0600 files.
    secret_files = [f.content for r in renders for f in r.state.files if f.secret]
    assert scan(tmp_path / "plain", needles(secrets, secret_files)) == {}
    carriers = 0
    for path in (tmp_path / "plain").rglob("*"):
        if path.is_file() and not path.is_symlink():
            text = path.read_bytes().decode(errors="replace")
            if any(s in text for s in secrets):
                carriers += 1
                assert path.stat().st_mode & 0o777 == 0o600, path
    assert carriers > 0
    _, _, redacted = _render(BLUEPRINTS / example, secrets_dir, redact=True)
    for r in redacted:
        write_render(r, tmp_path / "redacted")
    for path in (tmp_path / "redacted").rglob("*"):
        if path.is_file() and not path.is_symlink():
            text = path.read_bytes().decode(errors="replace")
            assert not any(s in text for s in secrets), path


def test_render_cli_layout(tmp_path: Path, secrets_dir: Path) -> None:
    env = {"UMHCTL_SECRETS_DIR": str(secrets_dir)}
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["render", "-f", str(BLUEPRINTS / "demo-site.yaml"), "--device", "edge-01", "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["edge-01"]
    device = out / "edge-01"
    assert json.loads((device / "ignition.json").read_text())["ignition"]["version"] == "3.3.0"
    assert (device / "butane.yaml").read_text().startswith('variant: flatcar\nversion: "1.0.0"\n')
    assert (device / "rootfs/etc/hostname").read_text() == "edge-01\n"
    plan_input = json.loads((device / "plan-input.json").read_text())
    assert {f["path"] for f in plan_input["files"]} >= {"/etc/hostname", "/etc/rancher/k3s/config.yaml"}
    # Rendering again replaces the device directory instead of failing or mixing old files in.
    again = CliRunner().invoke(
        app, ["render", "-f", str(BLUEPRINTS / "demo-site.yaml"), "--device", "edge-01", "--out", str(out)], env=env
    )
    assert again.exit_code == 0, again.output


def test_render_unknown_device_is_a_clean_error(tmp_path: Path, secrets_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["render", "-f", str(BLUEPRINTS / "demo-site.yaml"), "--device", "edge-9", "--out", str(tmp_path)],
        env={"UMHCTL_SECRETS_DIR": str(secrets_dir)},
    )
    assert result.exit_code == 1
    assert "no device 'edge-9'" in result.output


def test_render_can_record_host_keys_in_the_site_known_hosts(tmp_path: Path, secrets_dir: Path) -> None:
    import shutil

    site = tmp_path / "site"
    shutil.copytree(BLUEPRINTS, site)
    env = {"UMHCTL_SECRETS_DIR": str(secrets_dir)}
    args = ["render", "-f", str(site / "demo-site.yaml"), "--out", str(tmp_path / "out")]
    assert CliRunner().invoke(app, args, env=env).exit_code == 0
    assert "192.0.2.10" not in (site / "known_hosts").read_text(), "only on request"
    result = CliRunner().invoke(app, [*args, "--update-known-hosts"], env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in (site / "known_hosts").read_text().splitlines() if not line.startswith("#")]
    public = (tmp_path / "out/hub-01/rootfs/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    assert f"192.0.2.10 {public[0]} {public[1]}" in lines
    assert len(lines) == 3
    again = CliRunner().invoke(app, [*args, "--update-known-hosts"], env=env)
    assert "recorded the host keys" not in again.output, "nothing changes the second time"


def test_golden_files_hold_no_secret_and_no_digest_of_one() -> None:
    golden_secrets = ROOT / "tests" / "data" / "golden-secrets" / "demo-site"
    assert scan(ROOT / "tests" / "golden", needles(secret_values(golden_secrets)), skip_private=False) == {}


def test_what_is_derived_from_a_secret_is_keyed(tmp_path: Path) -> None:
    """A file that changes with a password (and is not a 0600 secret file) must change with the seal key too:
    then it depends on the password only through the keyed seal, never through a plain hash."""
    loaded = load_blueprint(BLUEPRINTS / "demo-site.yaml")

    def render(store_dir: Path) -> dict[str, bytes]:
        store = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent, store_dir)
        return {
            f"{r.device}:{f.path}": f.content for r in render_site(loaded, store) for f in r.state.files if not f.secret
        }

    base = tmp_path / "a"
    render(base)
    other_password = tmp_path / "b"
    shutil.copytree(base, other_password)
    (other_password / "secret.db-nodered").write_text("another-password\n")
    other_key = tmp_path / "c"
    shutil.copytree(other_password, other_key)
    (other_key / "plan-seal-key").write_text("another-seal-key\n")
    first, second, third = render(base), render(other_password), render(other_key)
    depends_on_password = {name for name in first if first[name] != second[name]}
    assert depends_on_password, "the database setup Job is named after its inputs"
    assert {name for name in depends_on_password if second[name] == third[name]} == set()


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_percent_encoding_is_urllib_quote(text: str) -> None:
    from urllib.parse import quote

    from umhctl.render.ignition import percent_encode

    assert percent_encode(text) == quote(text, safe="")


def test_a_render_for_plan_builds_no_first_boot_config_and_the_same_when_asked(secrets_dir: Path) -> None:
    path = BLUEPRINTS / "demo-site.yaml"
    _, _, eager = _render(path, secrets_dir)
    _, _, lazy = _render(path, secrets_dir, first_boot=False)
    for now, later in zip(eager, lazy, strict=True):
        assert {"ignition", "butane"} <= vars(now).keys()
        assert not {"ignition", "butane"} & vars(later).keys(), "plan and apply do not pay for Ignition"
        assert later.state == now.state
        assert ignition_json(later.ignition) == ignition_json(now.ignition) and later.butane == now.butane
