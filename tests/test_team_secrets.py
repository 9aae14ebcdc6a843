"""Secrets in git, encrypted with age: operators and CI share one site repository (real git, real age via pyrage,
real ssh-keygen keys)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.agestore import AgeVault
from umhctl.cli import app
from umhctl.errors import UmhctlError

from .conftest import BLUEPRINTS, git


def _age_identity(path: Path) -> str:
    from pyrage import x25519

    identity = x25519.Identity.generate()
    path.write_text(f"# created for a test\n{identity}\n")
    return str(identity.to_public())


def _ssh_identity(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path.with_name(path.name + ".pub").read_text().strip()


def umhctl(identity: Path | None, store: Path, *args: str) -> tuple[int, str]:
    env = {"UMHCTL_SECRETS_DIR": str(store), "UMHCTL_AGE_IDENTITY": str(identity) if identity else ""}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture
def team(tmp_path: Path) -> dict[str, Path]:
    """Keys of two operators (alice: SSH ed25519, bob: age) and a CI job (age), and a site repository."""
    keys = tmp_path / "keys"
    keys.mkdir()
    _ssh_identity(keys / "alice", "alice@laptop")
    _age_identity(keys / "bob.txt")
    _age_identity(keys / "ci.txt")
    repo = tmp_path / "origin"
    shutil.copytree(BLUEPRINTS, repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "site")
    return {"alice": keys / "alice", "bob": keys / "bob.txt", "ci": keys / "ci.txt", "repo": repo, "tmp": tmp_path}


def _public(identity: Path) -> str:
    if identity.suffix == ".txt":
        from pyrage import x25519

        line = next(x for x in identity.read_text().splitlines() if x.startswith("AGE-SECRET-KEY-"))
        return str(x25519.Identity.from_str(line).to_public())
    return identity.with_name(identity.name + ".pub").read_text().strip()


def _share(team: dict[str, Path]) -> None:
    """alice moves the site's secrets into git and adds bob and CI; committed."""
    repo, alice = team["repo"], team["alice"]
    site = str(repo / "demo-site.yaml")
    code, out = umhctl(alice, team["tmp"] / "alice-store", "secrets", "init", "-f", site)
    assert code == 0, out
    for who in ("bob", "ci"):
        code, out = umhctl(
            alice, team["tmp"] / "alice-store", "secrets", "add-recipient", _public(team[who]), "-f", site
        )
        assert code == 0, out
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Encrypted site secrets")


def _render_as(team: dict[str, Path], who: str) -> Path:
    """A fresh clone, an empty local store, the person's own key: what a colleague or CI sees."""
    clone = team["tmp"] / f"clone-{who}"
    subprocess.run(["git", "clone", "-q", str(team["repo"]), str(clone)], check=True)
    out = team["tmp"] / f"render-{who}"
    code, output = umhctl(
        team[who], team["tmp"] / f"store-{who}", "render", "-f", str(clone / "demo-site.yaml"), "--out", str(out)
    )
    assert code == 0, output
    assert not (team["tmp"] / f"store-{who}").exists(), "nothing may be generated into a local store"
    return out


def _tree(root: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            files[str(path.relative_to(root))] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            files[str(path.relative_to(root))] = path.read_bytes()
    return files


def test_two_operators_and_ci_render_byte_identical_output_with_the_same_host_keys(team: dict[str, Path]) -> None:
    _share(team)
    renders = {who: _tree(_render_as(team, who)) for who in ("alice", "bob", "ci")}
    assert renders["alice"] == renders["bob"] == renders["ci"]
    host_key = "edge-01/rootfs/etc/ssh/ssh_host_ed25519_key.pub"
    assert renders["alice"][host_key].startswith(b"ssh-ed25519 ")
    committed = (team["repo"] / "secrets/demo-site/ssh-host-key.edge-01.pub").read_bytes()
    assert renders["bob"][host_key].split()[:2] == committed.split()[:2]


def test_a_removed_recipient_can_no_longer_decrypt(team: dict[str, Path]) -> None:
    _share(team)
    site = str(team["repo"] / "demo-site.yaml")
    code, out = umhctl(
        team["alice"], team["tmp"] / "s", "secrets", "remove-recipient", "-f", site, _public(team["bob"])
    )
    assert code == 0, out
    assert "grafana-admin: umhctl secrets rotate grafana-admin" in out  # what bob could read, and how to rotate it
    assert "ssh-host-key.edge-01: umhctl reset device edge-01 --rotate-host-key" in out
    code, out = umhctl(team["bob"], team["tmp"] / "s", "render", "-f", site, "--out", str(team["tmp"] / "r"))
    assert code == 1
    assert "cannot decrypt" in out and "ssh-agent cannot decrypt" in out
    # the remaining recipients still can
    code, out = umhctl(team["ci"], team["tmp"] / "s", "render", "-f", site, "--out", str(team["tmp"] / "r"))
    assert code == 0, out


def test_init_takes_over_the_local_store_so_devices_keep_their_host_keys(team: dict[str, Path]) -> None:
    site = str(team["repo"] / "demo-site.yaml")
    store = team["tmp"] / "alice-store"
    code, out = umhctl(team["alice"], store, "render", "-f", site, "--out", str(team["tmp"] / "before"))
    assert code == 0, out
    code, out = umhctl(team["alice"], store, "secrets", "init", "-f", site)
    assert code == 0, out
    assert "Taken over from" in out
    code, out = umhctl(team["alice"], team["tmp"] / "empty", "render", "-f", site, "--out", str(team["tmp"] / "after"))
    assert code == 0, out
    assert _tree(team["tmp"] / "before") == _tree(team["tmp"] / "after")


def test_list_names_every_secret_and_its_source_never_a_value(team: dict[str, Path]) -> None:
    _share(team)
    site = str(team["repo"] / "demo-site.yaml")
    code, out = umhctl(None, team["tmp"] / "none", "secrets", "list", "-f", site, "-o", "json")
    assert code == 0, out
    document = json.loads(out)
    entries = {e["name"]: e for e in document["secrets"]}
    assert entries["grafana-admin"] == {
        "name": "grafana-admin",
        "source": "generate",
        "store": "encrypted",
        "present": True,
        "detail": "",
    }
    assert {"ssh-host-key.hub-01", "k3s-token.edge-02", "plan-seal-key"} <= set(entries)
    vault = AgeVault(team["repo"] / "secrets/demo-site", team["ci"])
    for name in vault.names():
        value = vault.read(name)
        assert value and value.strip() not in out


def test_rotate_gives_one_generated_secret_a_new_value(team: dict[str, Path]) -> None:
    _share(team)
    site = str(team["repo"] / "demo-site.yaml")
    vault = AgeVault(team["repo"] / "secrets/demo-site", team["bob"])
    before = {n: vault.read(n) for n in vault.names()}
    code, out = umhctl(team["bob"], team["tmp"] / "s", "secrets", "rotate", "-f", site, "grafana-admin")
    assert code == 0, out
    vault = AgeVault(team["repo"] / "secrets/demo-site", team["ci"])
    after = {n: vault.read(n) for n in vault.names()}
    assert [n for n in before if before[n] != after[n]] == ["secret.grafana-admin"]
    assert git(team["repo"], "status", "--porcelain").strip() == "M secrets/demo-site/secret.grafana-admin.age"
    code, out = umhctl(team["bob"], team["tmp"] / "s", "secrets", "rotate", "-f", site, "ssh-host-key.edge-01")
    assert code == 1 and "reset device edge-01 --rotate-host-key" in out


def test_no_secret_value_is_ever_in_git_history_in_plaintext(team: dict[str, Path]) -> None:
    _share(team)
    site = str(team["repo"] / "demo-site.yaml")
    values = [AgeVault(team["repo"] / "secrets/demo-site", team["ci"]).read(n) for n in _names(team)]
    umhctl(team["alice"], team["tmp"] / "s", "secrets", "rotate", "-f", site, "db-nodered")
    umhctl(team["alice"], team["tmp"] / "s", "secrets", "remove-recipient", "-f", site, _public(team["bob"]))
    git(team["repo"], "commit", "-qam", "rotate, remove bob")
    values += [AgeVault(team["repo"] / "secrets/demo-site", team["ci"]).read(n) for n in _names(team)]
    needles = {line for v in values for line in (v or "").splitlines() if len(line) >= 16 and "PRIVATE KEY" not in line}
    assert len(needles) > 10
    history = subprocess.run(
        ["git", "-C", str(team["repo"]), "log", "-p", "--all", "--binary"], capture_output=True, check=True
    ).stdout
    objects = [line.split()[0] for line in git(team["repo"], "rev-list", "--all", "--objects").splitlines()]
    blobs = [
        subprocess.run(["git", "-C", str(team["repo"]), "cat-file", "-p", o], capture_output=True).stdout
        for o in objects
        if git(team["repo"], "cat-file", "-t", o).strip() == "blob"
    ]
    for needle in needles:
        assert needle.encode() not in history
        assert not any(needle.encode() in blob for blob in blobs)


def _names(team: dict[str, Path]) -> list[str]:
    return AgeVault(team["repo"] / "secrets/demo-site").names()


def test_validate_imports_neither_age_nor_git_libraries() -> None:
    """validate stays fast: pyrage (and any git library) load only when a command needs them."""
    code = (
        "import sys\n"
        "from umhctl.cli import main\n"
        f"sys.argv = ['umhctl', 'validate', '-f', {str(BLUEPRINTS / 'demo-site.yaml')!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyrage', 'git', 'paramiko')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_ssh_login_key_of_plan_is_tried_besides_the_operators_age_key(
    team: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.secrets import SecretStore

    _share(team)
    loaded = load_blueprint(team["repo"] / "demo-site.yaml")
    deploy = team["tmp"] / "deploy"
    _ssh_identity(deploy, "deploy@ci")  # logs in to devices, is no recipient
    monkeypatch.setenv("UMHCTL_AGE_IDENTITY", str(team["bob"]))
    token = SecretStore.for_blueprint(loaded.blueprint, team["repo"], login_key=deploy).k3s_token("edge-01")
    monkeypatch.setenv("UMHCTL_AGE_IDENTITY", str(deploy))
    with pytest.raises(UmhctlError, match="cannot decrypt"):
        SecretStore.for_blueprint(loaded.blueprint, team["repo"]).k3s_token("edge-01")
    # alice's SSH key both logs in and decrypts
    store = SecretStore.for_blueprint(loaded.blueprint, team["repo"], login_key=team["alice"])
    assert store.k3s_token("edge-01") == token and len(token) == 48
