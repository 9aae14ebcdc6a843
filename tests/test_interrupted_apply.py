"""What an interrupted apply leaves behind is shown by plan and cleared by the next apply: a lock whose holder
died, umhctl's own temp files; and transitions between file and directory converge in one apply.

Against the simulated site (real sshd, real files). Tests run in order; each leaves the site converged.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from umhctl.sim.state import SimSite

from .conftest import git, needs_simulated_devices, simulated_demo_site
from .test_converge import Site

pytestmark = needs_simulated_devices

BASE = f"127.87.{os.getpid() % 250 + 1}.10"
MANIFESTS = "/var/lib/rancher/k3s/server/manifests"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with simulated_demo_site(BASE) as blueprint:
        s = Site(blueprint.parent, blueprint, SimSite.load(blueprint))
        assert s.apply()[0] == 0
        yield s


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def changes(plan: dict, device: str) -> list[dict]:
    return next(d for d in plan["devices"] if d["device"] == device)["changes"]


def test_a_lock_whose_holder_died_is_shown_by_plan_and_named_with_the_command_that_clears_it(site: Site) -> None:
    lock = site.device_file("edge-01", "/var/lib/umhctl/lock.d")
    lock.mkdir()
    holder = f"alice <alice@example.com>, pid {dead_pid()} on {socket.gethostname()} (umhctl apply)"
    (lock / "token.0123456789abcdef").write_text(holder)
    # The session dropped during verify: every file is in place, only the lock is left. Plan must not call it
    # converged.
    code, plan = site.plan("--detailed-exitcode")
    assert code == 2
    (lock_change,) = changes(plan, "edge-01")
    assert (lock_change["action"], lock_change["kind"], lock_change["target"]) == (
        "-",
        "lock",
        str(lock)[len(str(site.sim.root("edge-01"))) :],
    )
    assert lock_change["before"]["holder"] == holder and lock_change["before"]["holder_gone"] is True
    assert plan["summary"]["locks"] == 1 and plan["summary"]["devices_changed"] == 1
    unlock = f"umhctl apply --device edge-01 --force-unlock -f {site.blueprint} --sim"
    edge = next(d for d in plan["devices"] if d["device"] == "edge-01")
    assert any(unlock in w for w in edge["warnings"])
    code, text, _ = site.run("plan", "--sim", "-f", str(site.blueprint))
    assert "- lock /var/lib/umhctl/lock.d" in text and "no longer running" in text and unlock in text
    assert "1 device locked" in text

    code, out = site.apply()
    assert code == 1
    assert "that run is gone" in out and "another apply is running" not in out
    assert unlock in out, "the per-device result keeps the command that clears the lock"
    assert "--retry-failed" not in out, "a retry fails the same way on a locked device"
    assert (lock / "token.0123456789abcdef").exists()

    code, out, err = site.run(*unlock.split()[1:], "--yes")
    assert code == 0, out + err
    assert not lock.exists()
    assert site.plan("--detailed-exitcode")[0] == 0


def test_a_live_holder_is_not_called_dead(site: Site) -> None:
    lock = site.device_file("edge-02", "/var/lib/umhctl/lock.d")
    lock.mkdir()
    (lock / "token.0123456789abcdef").write_text(f"bob, pid {os.getpid()} on {socket.gethostname()} (umhctl apply)")
    try:
        code, plan = site.plan("--detailed-exitcode")
        assert code == 2
        (lock_change,) = changes(plan, "edge-02")
        assert lock_change["before"]["holder_gone"] is False
        site.device_file("edge-02", "/etc/hostname").write_text("x\n")
        code, out = site.apply()
        assert code == 1 and "another apply is running" in out and "gone" not in out
        assert "--force-unlock" in out and "--retry-failed" not in out
    finally:
        (lock / "token.0123456789abcdef").unlink()
        lock.rmdir()
    assert site.apply()[0] == 0
    assert site.plan("--detailed-exitcode")[0] == 0


def test_leftover_temp_files_are_shown_and_removed_and_nothing_else_is(site: Site) -> None:
    leftovers = [f"{MANIFESTS}/.umhctl-0123456789abcdef-7.tmp", "/etc/.umhctl-fedcba9876543210-0.tmp"]
    for path in leftovers:
        site.device_file("edge-02", path).write_text("half a manifest\n")
    site.device_file("edge-02", "/var/lib/umhctl/.umhctl-fedcba9876543210-12.tmp").symlink_to("/nowhere")
    leftovers.append("/var/lib/umhctl/.umhctl-fedcba9876543210-12.tmp")
    # Not umhctl's exact shape, or not next to a managed path: never touched.
    decoys = [f"{MANIFESTS}/.umhctl-notmine.tmp", f"{MANIFESTS}/x.tmp", "/opt/.umhctl-0123456789abcdef-1.tmp"]
    for path in decoys:
        site.device_file("edge-02", path).write_text("someone else's\n")
    code, plan = site.plan("--detailed-exitcode")
    assert code == 2
    found = [(c["action"], c["kind"], c["target"]) for c in changes(plan, "edge-02")]
    assert sorted(found) == sorted(("-", "leftover", p) for p in leftovers)
    assert plan["summary"]["leftovers"] == 3 and plan["summary"]["delete"] == 0
    _, text, _ = site.run("plan", "--sim", "-f", str(site.blueprint))
    assert f"- leftover {MANIFESTS}/.umhctl-0123456789abcdef-7.tmp" in text
    assert "3 leftover temp files to remove" in text
    code, out = site.apply()
    assert code == 0, out
    for path in leftovers:
        assert not os.path.lexists(site.device_file("edge-02", path)), path
    for path in decoys:
        assert site.device_file("edge-02", path).read_text() == "someone else's\n"
        site.device_file("edge-02", path).unlink()
    assert site.plan("--detailed-exitcode")[0] == 0


# -- transitions between file and directory, and the directories umhctl created --------------------------------

ENTRY = """
  - path: {path}
    template: files/journald-retention.conf.j2
    devices: [edge-01]
    vars: {{max_use: 1G, max_retention: 1week}}
"""


def set_extra_file(site: Site, path: str | None, message: str) -> None:
    text = site.blueprint.read_text()
    start = text.index("\nfiles:\n") + len("\nfiles:\n")
    marker = "  # test entry\n"
    if marker in text:
        end = text.index(marker)
        text = text[:end] + text[text.index("\n", text.index("vars:", end)) + 1 :]
    if path is not None:
        text = text[:start] + marker + ENTRY.format(path=path).lstrip("\n") + text[start:]
    site.blueprint.write_text(text)
    git(site.repo, "commit", "-qam", message)


def converges_in_one_apply(site: Site) -> dict:
    code, plan = site.plan("--detailed-exitcode")
    assert code == 2
    code, out = site.apply()
    assert code == 0, out
    code, after = site.plan("--detailed-exitcode")
    assert code == 0, after
    return plan


def test_file_to_directory_and_back_converge_in_one_apply_each(site: Site) -> None:
    created = site.device_file("edge-01", "/var/lib/umhctl/created-dirs.list")
    set_extra_file(site, "/opt/acme/app/conf", "a file")
    converges_in_one_apply(site)
    assert site.device_file("edge-01", "/opt/acme/app/conf").is_file()
    assert {"/opt/acme", "/opt/acme/app"} <= set(created.read_text().split())

    set_extra_file(site, "/opt/acme/app/conf/main.conf", "the file becomes a directory")
    plan = converges_in_one_apply(site)
    found = {(c["action"], c["target"]) for c in changes(plan, "edge-01")}
    assert {("+", "/opt/acme/app/conf/main.conf"), ("-", "/opt/acme/app/conf")} <= found
    assert "1G" in site.device_file("edge-01", "/opt/acme/app/conf/main.conf").read_text()

    set_extra_file(site, "/opt/acme/app/conf", "the directory becomes a file again")
    plan = converges_in_one_apply(site)
    replace = next(c for c in changes(plan, "edge-01") if c["target"] == "/opt/acme/app/conf")
    assert replace["action"] == "±" and replace["before"]["removable"] is True
    assert site.device_file("edge-01", "/opt/acme/app/conf").is_file()

    set_extra_file(site, None, "the file goes")
    plan = converges_in_one_apply(site)
    dirs = [c["target"] for c in changes(plan, "edge-01") if c["kind"] == "directory"]
    assert dirs == ["/opt/acme/app", "/opt/acme"], "umhctl's empty directories go, the deepest first"
    assert not site.device_file("edge-01", "/opt/acme").exists()
    assert site.device_file("edge-01", "/opt").is_dir(), "never a directory umhctl did not create"
    assert "/opt/acme" not in created.read_text().split()


def test_a_directory_umhctl_did_not_create_is_never_removed(site: Site) -> None:
    foreign = site.device_file("edge-01", "/opt/vendor/conf")
    foreign.mkdir(parents=True)
    set_extra_file(site, "/opt/vendor/conf", "a file where the vendor's directory is")
    code, plan = site.plan("--detailed-exitcode")
    replace = next(c for c in changes(plan, "edge-01") if c["target"] == "/opt/vendor/conf")
    assert replace["before"]["removable"] is False and "never deletes" in replace["reason"]
    code, out = site.apply()
    assert code == 1 and "never deletes such a directory" in out and "nothing was changed" in out
    assert foreign.is_dir()
    foreign.rmdir()
    assert site.apply()[0] == 0
    set_extra_file(site, None, "no vendor file")
    assert site.apply()[0] == 0
    assert site.device_file("edge-01", "/opt/vendor").is_dir(), "made by hand: kept although empty"
    site.device_file("edge-01", "/opt/vendor").rmdir()
    assert site.plan("--detailed-exitcode")[0] == 0


def test_file_to_link_and_link_to_file_converge_in_one_apply(site: Site) -> None:
    record = json.loads(site.device_file("edge-01", "/var/lib/umhctl/applied.json").read_text())
    link_path, link_target = next(iter(record["links"].items()))
    link = site.device_file("edge-01", link_path)
    link.unlink()
    link.write_text("a file where a link belongs\n")
    hostname = site.device_file("edge-01", "/etc/hostname")
    hostname.unlink()
    hostname.symlink_to("/etc/os-release")
    plan = converges_in_one_apply(site)
    assert {(c["action"], c["target"]) for c in changes(plan, "edge-01")} >= {("±", link_path), ("±", "/etc/hostname")}
    assert os.readlink(link) == link_target
    assert not hostname.is_symlink() and hostname.read_text() == "edge-01\n"
