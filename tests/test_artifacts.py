"""Pinned artifacts: lock, fetch, and first boots that download them, against a real HTTP mirror on 127.0.0.1.

The mirror serves fixture images in the sysext bakery's layout (<name>-<version>-<arch>.raw and
<name>-<version>/SHA256SUMS). First boots run the real Ignition binary, which verifies the hashes itself.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl import api
from umhctl.artifacts import Artifact, ArtifactCache, LockFile, lock_path
from umhctl.blueprint.loader import load_blueprint
from umhctl.cli import app
from umhctl.errors import UmhctlError
from umhctl.render import render_site
from umhctl.render.ignition import ignition_json
from umhctl.secrets import SecretStore
from umhctl.sim.provision import IGNITION, make_base_root, run_ignition

from .conftest import BLUEPRINTS, EXAMPLES, git

K3S = "v1.32.2+k3s1"
IMAGE = f"k3s-{K3S}-x86-64.raw"


def fixture_image(name: str) -> bytes:
    return (f"fixture image {name}\n".encode() * 4096)[:65536]


@dataclass
class Mirror:
    root: Path
    url: str

    def publish(self, name: str, version: str, data: bytes | None = None) -> str:
        filename = f"{name}-{version}-x86-64.raw"
        data = fixture_image(filename) if data is None else data
        (self.root / filename).write_bytes(data)
        sums = self.root / f"{name}-{version}" / "SHA256SUMS"
        sums.parent.mkdir(exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        sums.write_text(f"{digest}  {filename}\n")
        return digest


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    root = tmp_path / "mirror"
    (root / "extensions").mkdir(parents=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Mirror(root / "extensions", f"http://127.0.0.1:{server.server_address[1]}/extensions")
    finally:
        server.shutdown()


@pytest.fixture
def site(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo blueprint in a scratch repository, its images fetched at first boot from the test's mirror."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("UMHCTL_SECRETS_DIR", str(tmp_path / "secrets"))
    repo = tmp_path / "site"
    shutil.copytree(BLUEPRINTS, repo)
    blueprint = repo / "demo-site.yaml"
    text = blueprint.read_text().replace(
        "\nos:\n", f"\nartifacts:\n  mirror: {mirror.url}\n  delivery: ignition\n\nos:\n", 1
    )
    blueprint.write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "site")
    return blueprint


def test_lock_pins_from_the_mirrors_sha256sums_and_fetch_verifies(site: Path, mirror: Mirror) -> None:
    digest = mirror.publish("k3s", K3S)
    result = api.lock(site)
    assert [(a.name, a.sha256, a.change) for a in result.artifacts] == [(IMAGE, digest, "added")]
    data = json.loads(lock_path(site).read_text())
    assert data["artifacts"][IMAGE]["sha256"] == digest
    assert data["artifacts"][IMAGE]["source"] == f"{mirror.url}/k3s-{K3S}/SHA256SUMS"
    fetched = api.fetch(site)
    assert [(a.name, a.status, a.size) for a in fetched.artifacts] == [(IMAGE, "downloaded", 65536)]
    assert api.fetch(site).artifacts[0].status == "cached", "a second fetch verifies the cached copy"
    # A cached copy that rotted is caught and removed.
    cached = ArtifactCache().path(LockFile.load(lock_path(site)).pins[IMAGE])
    cached.write_bytes(b"rotten")
    with pytest.raises(UmhctlError, match=r"hash mismatch .* in the cache"):
        api.fetch(site)
    assert not cached.exists()


def test_a_mirror_serving_another_file_is_refused_naming_both_hashes(site: Path, mirror: Mirror) -> None:
    digest = mirror.publish("k3s", K3S)
    api.lock(site)
    (mirror.root / IMAGE).write_bytes(b"someone replaced it")
    actual = hashlib.sha256(b"someone replaced it").hexdigest()
    code = CliRunner().invoke(app, ["fetch", "-f", str(site)])
    assert code.exit_code == 1
    message = " ".join(code.output.split())
    assert f"hash mismatch for {IMAGE}" in message and digest in message and actual in message
    assert list((Path(ArtifactCache().directory)).glob("*")) == [], "nothing unverified is kept"


def test_lock_downloads_to_hash_when_no_sha256sums_lists_it(site: Path, mirror: Mirror) -> None:
    digest = mirror.publish("k3s", K3S)
    shutil.rmtree(mirror.root / f"k3s-{K3S}")
    with pytest.raises(UmhctlError, match="404") as refused:
        api.lock(site)
    assert "--download" in (refused.value.hint or "")
    (entry,) = api.lock(site, download=True).artifacts
    assert entry.sha256 == digest and entry.source == f"{mirror.url}/{IMAGE}"
    assert LockFile.load(lock_path(site)).pins[IMAGE].size == 65536


def test_plan_refuses_unpinned_images_with_the_command_that_pins_them(site: Path) -> None:
    result = CliRunner().invoke(app, ["plan", "-f", str(site)])
    assert result.exit_code == 1
    assert f"{IMAGE} not pinned" in result.output and f"umhctl lock -f {site}" in result.output


def _remote_files(config: dict) -> list[dict]:
    return [f for f in config["storage"]["files"] if not f["contents"]["source"].startswith("data:")]


def test_first_boot_downloads_verify_the_locked_hash(site: Path, mirror: Mirror, device_roots: Path) -> None:
    digest = mirror.publish("k3s", K3S)
    api.lock(site)
    loaded = load_blueprint(site)
    store = SecretStore.for_blueprint(loaded.blueprint, site.parent)
    renders = render_site(loaded, store)
    for r in renders:
        (remote,) = _remote_files(r.ignition)
        assert remote["contents"] == {
            "source": f"{mirror.url}/{IMAGE}",
            "verification": {"hash": f"sha256-{digest}"},
        }
        assert r.ignition["ignition"]["timeouts"]["httpTotal"] > 0, "no endless retries without the mirror"
        assert {
            "path": "/etc/extensions/k3s.raw",
            "target": f"/opt/extensions/k3s/{IMAGE}",
            "hard": False,
            "overwrite": True,
        } in r.ignition["storage"]["links"]
        path = device_roots / f"{r.device}.ign"
        path.write_text(ignition_json(r.ignition))
        assert subprocess.run(["ignition-validate", str(path)], capture_output=True).returncode == 0

    if not IGNITION.exists():
        pytest.skip("the real Ignition binary is not installed")
    hub = renders[0]
    good = device_roots / "good"
    make_base_root(good)
    run_ignition(hub.ignition, good)
    assert (good / f"opt/extensions/k3s/{IMAGE}").read_bytes() == fixture_image(IMAGE)

    # The mirror serves another file than the one locked: Ignition refuses it, as first boot on a device would.
    (mirror.root / IMAGE).write_bytes(b"tampered")
    bad = device_roots / "bad"
    make_base_root(bad)
    with pytest.raises(UmhctlError, match=r"hash verification failed"):
        run_ignition(hub.ignition, bad)
    assert not (bad / f"opt/extensions/k3s/{IMAGE}").exists()

    # The mirror lacks it: a 404 fails at once.
    (mirror.root / IMAGE).unlink()
    missing = device_roots / "missing"
    make_base_root(missing)
    with pytest.raises(UmhctlError, match=r"not found"):
        run_ignition(hub.ignition, missing)


def test_a_simulated_device_has_no_internet(device_roots: Path) -> None:
    config = {
        "ignition": {"version": "3.3.0"},
        "storage": {
            "files": [{"path": "/opt/x", "contents": {"source": "https://extensions.flatcar.org/extensions/x.raw"}}]
        },
    }
    root = device_roots / "offline"
    make_base_root(root)
    with pytest.raises(UmhctlError, match="no internet"):
        run_ignition(config, root)


def test_a_rebuild_fetches_nothing(site: Path, mirror: Mirror) -> None:
    mirror.publish("k3s", K3S)
    api.lock(site)
    loaded = load_blueprint(site)
    store = SecretStore.for_blueprint(loaded.blueprint, site.parent)
    for r in render_site(loaded, store, self_contained=True):
        assert _remote_files(r.ignition) == []
        assert "/etc/extensions/k3s.raw" not in {link["path"] for link in r.ignition["storage"]["links"]}
        (artifact,) = r.state.artifacts
        assert artifact.sha256 is not None and artifact.url is None, "apply uploads it from the cache"


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_every_remote_source_of_the_examples_carries_the_locked_hash(
    example: str, tmp_path: Path, mirror: Mirror
) -> None:
    """As shipped (delivery: apply) the examples' first boots download nothing; switched to a mirror, every
    download carries the lock file's hash."""
    repo = tmp_path / "site"
    shutil.copytree(BLUEPRINTS, repo)
    blueprint = repo / example
    loaded = load_blueprint(blueprint)
    store = SecretStore.for_blueprint(loaded.blueprint, repo, tmp_path / "secrets")
    assert all(_remote_files(r.ignition) == [] for r in render_site(loaded, store))
    text = blueprint.read_text().replace(
        "\nos:\n", f"\nartifacts:\n  mirror: {mirror.url}\n  delivery: ignition\n\nos:\n", 1
    )
    blueprint.write_text(text)
    mirror.publish("k3s", loaded.blueprint.versions.k3s)
    api.lock(blueprint)
    pins = LockFile.load(lock_path(blueprint)).pins
    loaded = load_blueprint(blueprint)
    for r in render_site(loaded, store):
        remotes = _remote_files(r.ignition)
        assert remotes
        for remote in remotes:
            name = remote["contents"]["source"].rsplit("/", 1)[1]
            assert remote["contents"]["verification"]["hash"] == f"sha256-{pins[name].sha256}"
    assert Artifact("k3s", loaded.blueprint.versions.k3s).filename in pins
