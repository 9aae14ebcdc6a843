"""Where a blueprint's files[] may write on a device, and that a path conflict never crashes render."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from umhctl.blueprint.devicepaths import refusal
from umhctl.blueprint.loader import load_blueprint, validate_text
from umhctl.blueprint.model import ExtraFile
from umhctl.errors import UmhctlError
from umhctl.render import render_site
from umhctl.render.desired import DesiredState, File
from umhctl.render.output import write_render

from .conftest import BLUEPRINTS, EXAMPLES

DEMO_FILE = "path: /etc/systemd/journald.conf.d/50-retention.conf"


def _errors_for_path(demo_text: str, path: str) -> list[tuple[int, int, str, str]]:
    text = demo_text.replace(DEMO_FILE, f"path: {path}")
    _, _, diags = validate_text(text, "bp.yaml", base_dir=BLUEPRINTS)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if f"path: {path}" in row)
    return [(d.line, d.column, d.message, d.hint or "") for d in diags if d.severity == "error" and d.line == line]


# The four paths that wrecked a device in issue 16, and more of the same kind.
@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/etc/ssh", "sshd"),
        ("/etc/systemd/network", "network configuration"),
        ("/var/lib/umhctl", "record and lock"),
        ("/dev/null", "outside the places"),
        ("/etc/ssh/sshd_config", "sshd"),
        ("/etc/systemd", "a file cannot take its place"),
        ("/etc/systemd/system", "a file cannot take its place"),
        ("/etc/systemd/system/multi-user.target.wants", "holds /etc/systemd/system/multi-user.target.wants/k3s"),
        ("/etc/shadow", "user database"),
        ("/etc/sudoers.d/core", "sudo -n"),
        ("/etc/flatcar/update.conf", "update.conf"),
        ("/etc/rancher/k3s/registries.yaml", "k3s"),
        ("/var/lib/rancher/k3s/server/manifests/evil.yaml", "k3s"),
        ("/opt/extensions/x.raw", "extension"),
        ("/home/core/.ssh/authorized_keys", "SSH access"),
        ("/usr/local/bin/tool", "read-only"),
        ("/boot/grub.cfg", "outside the places"),
        ("/run/x", "outside the places"),
        ("/proc/sys/kernel/x", "outside the places"),
        ("/var/log/app.log", "outside the places"),
        ("/var/lib/app.conf", "/var/lib/<app>/"),
        ("/home/other/x", "outside the places"),
        ("/etc", "top-level directory"),
        ("/opt", "top-level directory"),
    ],
)
def test_files_outside_the_admin_places_are_refused(demo_text: str, path: str, fragment: str) -> None:
    errors = _errors_for_path(demo_text, path)
    assert errors, f"{path} validated"
    ((_, column, message, hint),) = errors
    assert column == 11 and fragment in message, message
    assert "/etc" in hint and "/opt" in hint and "/var/lib/<app>/" in hint and "/home/core/" in hint


@pytest.mark.parametrize("path", ["relative/x", "/etc/../x", "/etc/./x", "/etc//x", "/etc/x/", "/etc/x y"])
def test_paths_that_are_not_normalized_are_refused(demo_text: str, path: str) -> None:
    (error,) = _errors_for_path(demo_text, path)
    assert "normalized absolute path" in error[2]


@pytest.mark.parametrize(
    "path",
    ["/etc/chrony.conf", "/etc/systemd/system/app.service", "/opt/app/config.yaml", "/opt/bin/tool",
     "/var/lib/app/settings.json", "/home/core/notes.txt", "/etc/sshx/y", "/etc/hosts"],
)  # fmt: skip
def test_files_in_the_admin_places_are_fine(demo_text: str, path: str) -> None:
    assert _errors_for_path(demo_text, path) == []


def test_files_nested_in_another_file_are_refused(demo_text: str) -> None:
    text = demo_text.replace(
        "files:\n",
        "files:\n  - path: /etc/app\n    template: files/journald-retention.conf.j2\n"
        "    vars: {max_use: 1M, max_retention: 1day}\n"
        "  - path: /etc/app/x.conf\n    template: files/journald-retention.conf.j2\n"
        "    vars: {max_use: 1M, max_retention: 1day}\n",
    )
    _, _, diags = validate_text(text, "bp.yaml", base_dir=BLUEPRINTS)
    (error,) = [d for d in diags if d.severity == "error"]
    assert "would have to be a file and a directory" in error.message
    assert (error.line, error.column) == (text.splitlines().index("  - path: /etc/app/x.conf") + 1, 11)


def _tailscale_demo(directory: Path) -> Path:
    from .tailnet import tailscale_site

    return tailscale_site(directory / "site")


@pytest.mark.parametrize("example", [*EXAMPLES, None], ids=lambda p: p.name if p else "demo-site with tailscale")
def test_every_path_umhctl_renders_is_refused_to_files(example: Path | None, tmp_path: Path) -> None:
    """The policy knows every place umhctl writes: a new rendered path must be added to it."""
    loaded = load_blueprint(example or _tailscale_demo(tmp_path))
    user = loaded.blueprint.access.user
    site_files = {f.path for f in loaded.blueprint.files}
    for render in render_site(loaded, None, redact=True):  # type: ignore[arg-type]
        state = render.state
        paths = [f.path for f in state.files] + [x.path for x in state.links] + [a.path for a in state.artifacts]
        for path in set(paths) - site_files:
            assert refusal(path, user) is not None, f"{path} is rendered by umhctl but files[] may write it"


@pytest.mark.parametrize("path", ["/etc/ssh", "/etc/systemd/network", "/var/lib/rancher/k3s/server"])
def test_render_of_an_unvalidated_conflict_is_a_clean_error(path: str, tmp_path: Path) -> None:
    """A blueprint that skipped validate (a library caller) still gets a clean error, never FileExistsError."""
    loaded = load_blueprint(BLUEPRINTS / "demo-site.yaml")
    extra = ExtraFile.model_validate({"path": path, "template": "files/journald-retention.conf.j2", "vars": {}})
    extra = extra.model_copy(update={"vars": {"max_use": "1M", "max_retention": "1day"}})
    bp = loaded.blueprint.model_copy(update={"files": [extra]})
    with pytest.raises(UmhctlError, match="needs it to be a directory"):
        render_site(dataclasses.replace(loaded, blueprint=bp), None, redact=True)  # type: ignore[arg-type]


def test_write_render_turns_a_conflict_into_a_clean_error(tmp_path: Path) -> None:
    from umhctl.render import DeviceRender

    state = DesiredState("hub-01", files=[File("/etc/a", b"1"), File("/etc/a/b", b"2")])  # not .sorted(): raw
    render = DeviceRender("hub-01", state, load_blueprint(BLUEPRINTS / "demo-site.yaml").blueprint)
    with pytest.raises(UmhctlError, match="cannot write /etc/a"):
        write_render(render, tmp_path)


def test_desired_state_refuses_a_file_that_is_another_files_directory() -> None:
    # '/etc/a-b' sorts between '/etc/a' and '/etc/a/b': the check must not depend on neighbours in sort order.
    state = DesiredState("hub-01", files=[File("/etc/a", b"1"), File("/etc/a-b", b"2"), File("/etc/a/b", b"3")])
    with pytest.raises(UmhctlError, match="'/etc/a' is a file, but '/etc/a/b' needs it to be a directory"):
        state.sorted()


@pytest.mark.parametrize(
    ("disk", "ok"),
    [
        ("/dev/sda", True),
        ("/dev/nvme0n1", True),
        ("/dev/disk/by-id/ata-SAMSUNG_MZ7LH480HAHQ-00005_S45PNA0M", True),
        ("/dev/disk/by-path/pci-0000:00:1f.2-ata-1", True),
        ("/dev/../../etc/shadow", False),
        ("/dev/./sda", False),
        ("/dev//sda", False),
        ("/dev/sda/", False),
        ("/dev", False),
        ("/etc/shadow", False),
    ],
)
def test_install_disk_is_a_normalized_path_under_dev(demo_text: str, disk: str, ok: bool) -> None:
    old = "    address: 192.0.2.21\n    installDisk: /dev/sda\n"
    text = demo_text.replace(old, f"    address: 192.0.2.21\n    installDisk: {disk}\n")
    assert old in demo_text
    _, _, diags = validate_text(text, "bp.yaml", base_dir=BLUEPRINTS)
    errors = [d.message for d in diags if d.severity == "error"]
    assert (errors == []) is ok, errors
    if not ok:
        assert "normalized disk device path under /dev" in errors[0]
