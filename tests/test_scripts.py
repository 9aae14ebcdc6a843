"""Every device script: pinned by a golden file (inputs in -> exact script out), and run for real by bash in a
scratch device root (tests/scratch.py) to show it does what the gate expects of it.

After an intended script change: `pytest tests/test_scripts.py --update-golden`, then review `git diff tests/golden`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from umhctl.facts import CREATED_DIRS, LOCK_DIR, MANAGED_LIST, RECORD, SUMS
from umhctl.plan.model import Action, Change
from umhctl.remote import scripts
from umhctl.remote.gate import parse_facts, parse_status
from umhctl.render.desired import DesiredState, File, Link
from umhctl.sim.process import in_private_mounts

from .conftest import ROOT
from .scratch import BOOT_ARGV_SCRIPT, Scratch, can_run

GOLDEN = ROOT / "tests" / "golden" / "scripts"
TOKEN = "0123abcd"

pytestmark = pytest.mark.skipif(not can_run, reason="running device scripts in a scratch root needs root")


def desired() -> DesiredState:
    return DesiredState(
        "edge-01",
        files=[
            File("/etc/umhctl-demo/app.conf", b"answer=42\n", restarts=("app.service",)),
            File("/etc/umhctl-demo/token", b"s3cret\n", mode=0o600, secret=True, restarts=("k3s.service",)),
            File("/home/core/.ssh/authorized_keys.d/ops", b"ssh-ed25519 AAAA ops\n", 0o600, "core", "core"),
        ],
        links=[Link("/etc/umhctl-demo/current", "app.conf")],
    ).sorted()


def changes() -> list[Change]:
    return [
        Change(Action.CREATE, "file", "/etc/umhctl-demo/app.conf", "not on the device"),
        Change(Action.CREATE, "file", "/etc/umhctl-demo/token", "not on the device", sensitive=True),
        Change(Action.CREATE, "file", "/home/core/.ssh/authorized_keys.d/ops", "not on the device"),
        Change(Action.CREATE, "link", "/etc/umhctl-demo/current", "not on the device"),
        Change(Action.DELETE, "file", "/etc/umhctl-demo/old.conf", "no longer in the blueprint"),
    ]


def record(state: DesiredState) -> dict[str, object]:
    return {
        "files": {f.path: {"sha256": f.sha256, "secret": f.secret, "restarts": list(f.restarts)} for f in state.files},
        "links": {link.path: link.target for link in state.links},
        "install_disk": "/dev/sda",
    }


IGNITION = json.dumps({"ignition": {"version": "3.3.0"}})

CASES = {
    "probe": lambda: scripts.probe(["/etc/hostname", "/etc/localtime"], ["k3s.service"], ["/opt/extensions/k3s"]),
    "status-probe": lambda: scripts.probe(["/etc/hostname"], ["k3s.service"], [], status_units=["k3s.service"]),
    "lock": lambda: scripts.lock(TOKEN, "alice <a@example.com>, pid 1 on pc (umhctl apply)"),
    "lock-force": lambda: scripts.lock(TOKEN, "alice", force=True),
    "unlock": lambda: scripts.unlock(TOKEN),
    "lock-probe": lambda: scripts.lock_and_probe(TOKEN, "alice", ["/etc/hostname"], ["k3s.service"], []),
    "probe-locking": lambda: scripts.probe_locking_if_behind(
        TOKEN, "alice", "sha256:" + "0f" * 32, ["/etc/hostname"], ["k3s.service"], []
    ),
    "converge": lambda: scripts.converge(
        TOKEN,
        (["/etc/umhctl-demo/app.conf"], ["app.service"], []),
        (changes(), desired(), record(desired()), {"changes": 5}),
        (["app.service"], True),
    ),
    "write": lambda: scripts.write(changes(), desired(), record(desired()), {"changes": 5}, TOKEN),
    "restart": lambda: scripts.restart(["update-ssh-keys:core", "systemd-networkd.service", "k3s.service"], True),
    "upload": lambda: scripts.upload("/opt/extensions/k3s/k3s-v1.32.2+k3s1-x86-64.raw", "ab" * 32, TOKEN, 0),
    "prune": lambda: scripts.prune(["/opt/extensions/k3s/k3s-v1.32.1+k3s1-x86-64.raw"]),
    "stage-reset": lambda: scripts.stage_reset(IGNITION, [scripts.HOST_KEYS_KEEP, "/var/lib/rancher"]),
    "reboot": scripts.reboot,
    "reset-state": scripts.reset_state,
    "backup": lambda: scripts.backup(["/var/lib/rancher/k3s/storage", "/opt/data"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_is_as_reviewed(name: str, request: pytest.FixtureRequest) -> None:
    text = CASES[name]()
    golden = GOLDEN / f"{name}.sh"
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
        pytest.skip("golden script rewritten; review the diff")
    assert text == golden.read_text(), f"{name} differs from tests/golden/scripts (--update-golden if intended)"
    assert text.split("\n")[1] == "umask 077", "every script makes its files private until it widens them"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    s = Scratch()
    yield s
    s.close()


@pytest.fixture
def root(scratch: Scratch) -> Iterator[Path]:
    r = scratch.root()
    yield r
    scratch.remove(r)


def run(scratch: Scratch, root: Path, script: str, *, spy: bool = False) -> str:
    if spy:
        script = "export PATH=/opt/spy:$PATH\n" + script
    done = scratch.run(root, script)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def install_spies(root: Path) -> None:
    """chown and sync that record what they were given (and the mode of temp files at that moment)."""
    spy = root / "opt/spy"
    spy.mkdir(parents=True)
    (spy / "chown").write_text(
        '#!/bin/bash\nfor a; do [[ $a == *.umhctl-* ]] && stat -c "%a %n" -- "$a" >> /tmp/chown.log; done\n'
        'exec /usr/bin/chown "$@"\n'
    )
    (spy / "sync").write_text('#!/bin/bash\nprintf "%s\\n" "$@" >> /tmp/sync.log\nexec /usr/bin/sync "$@"\n')
    for tool in spy.iterdir():
        tool.chmod(0o755)


# -- probe ------------------------------------------------------------------------------------------------------


def test_probe_reports_files_links_and_other_things(scratch: Scratch, root: Path) -> None:
    (root / "etc/hostname").write_text("edge-01\n")
    (root / "etc/localtime").symlink_to("../usr/share/zoneinfo/UTC")
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True)
    facts = parse_facts(
        run(scratch, root, scripts.probe(["/etc/hostname", "/etc/localtime", "/etc/ssh/sshd_config.d", "/nope"], [])),
        "edge-01",
    )
    assert facts.path("/etc/hostname").kind == "file" and facts.path("/etc/hostname").mode == 0o644
    assert facts.path("/etc/localtime").target == "../usr/share/zoneinfo/UTC"
    assert facts.path("/etc/ssh/sshd_config.d").other == "directory"
    assert facts.path("/nope").kind == "absent" and facts.record is None


def test_a_probe_hashes_again_only_the_files_whose_stamp_changed_since_an_apply_memoized_them(
    scratch: Scratch, root: Path
) -> None:
    """The probe reads each managed file in full (on a device, a ~70 MB k3s image too) unless the memo an apply
    wrote vouches for it: same size, inode, mtime and ctime as when it was hashed, at least 2 s after it changed."""
    state = desired()
    paths = [f.path for f in state.files]
    sums = root / SUMS.lstrip("/")
    assert run(scratch, root, scripts.lock("aaaa", "alice")).strip() == "LOCKED"
    probe = (paths, [], [])
    run(scratch, root, scripts.converge("aaaa", probe, (changes()[:3], state, record(state), {}), unlock=False))
    assert sums.read_text() == "", "just written: a write in the same clock tick would keep the stamp, so no entry"
    time.sleep(2.1)
    run(scratch, root, scripts.converge("aaaa", probe, None, unlock=True))
    memo = {line.split("\t")[2]: line.split("\t") for line in sums.read_text().splitlines()}
    assert sorted(memo) == sorted(paths) and sums.stat().st_mode & 0o777 == 0o600
    assert all(memo[f.path][0] == f.sha256 for f in state.files)

    spy = root / "opt/spy"
    spy.mkdir(parents=True)
    (spy / "sha256sum").write_text('#!/bin/bash\necho "$*" >> /tmp/sha256sum.log\nexec /usr/bin/sha256sum "$@"\n')
    (spy / "sha256sum").chmod(0o755)
    log = root / "tmp/sha256sum.log"
    facts = parse_facts(run(scratch, root, scripts.probe(paths, []), spy=True), "edge-01")
    assert {p: facts.path(p).sha256 for p in paths} == {f.path: f.sha256 for f in state.files}
    assert not log.exists(), "every file vouched for by the memo: nothing read"

    # The same size, the mtime put back: only the ctime tells, and it cannot be put back.
    conf = root / "etc/umhctl-demo/app.conf"
    before = conf.stat()
    conf.write_bytes(b"answer=43\n")
    os.utime(conf, ns=(before.st_atime_ns, before.st_mtime_ns))
    facts = parse_facts(run(scratch, root, scripts.probe(paths, []), spy=True), "edge-01")
    assert facts.path("/etc/umhctl-demo/app.conf").sha256 == hashlib.sha256(b"answer=43\n").hexdigest()
    assert log.read_text() == "-- /etc/umhctl-demo/app.conf\n", "only the changed file is read"
    # A memo that lies about a file whose stamp it has right is believed: the stamp is what is trusted, which is
    # why only umhctl's probes, as root, write the memo, and only for files that had not changed for 2 s.
    (line,) = [entry for entry in sums.read_text().splitlines() if entry.endswith("/token")]
    sums.write_text(sums.read_text().replace(line, "0" * 64 + line[64:]))
    facts = parse_facts(run(scratch, root, scripts.probe(paths, [])), "edge-01")
    assert facts.path("/etc/umhctl-demo/token").sha256 == "0" * 64


def test_a_plan_memoizes_what_the_apply_before_it_wrote_too_recently_to_vouch_for(scratch: Scratch, root: Path) -> None:
    """The verify probe of an apply cannot vouch for the files that apply just wrote (the k3s image it uploaded
    among them); the first probe that finds them unchanged 2 s later adds them, then no plan reads them again.
    A probe writes the memo only when it learned something, and never where no apply has run."""
    state = desired()
    paths = [f.path for f in state.files]
    sums = root / SUMS.lstrip("/")
    assert parse_facts(run(scratch, root, scripts.probe(paths, [])), "edge-01").record is None
    assert not sums.parent.exists(), "a plan before the first apply creates nothing"
    assert run(scratch, root, scripts.lock("aaaa", "alice")).strip() == "LOCKED"
    run(scratch, root, scripts.converge("aaaa", ([], [], []), (changes()[:3], state, record(state), {})))
    spy = root / "opt/spy"
    spy.mkdir(parents=True)
    (spy / "sha256sum").write_text('#!/bin/bash\necho "$*" >> /tmp/sha256sum.log\nexec /usr/bin/sha256sum "$@"\n')
    (spy / "sha256sum").chmod(0o755)
    log = root / "tmp/sha256sum.log"

    def plan() -> str:
        facts = parse_facts(run(scratch, root, scripts.probe(paths, []), spy=True), "edge-01")
        assert {p: facts.path(p).sha256 for p in paths} == {f.path: f.sha256 for f in state.files}
        read = log.read_text() if log.exists() else ""
        log.unlink(missing_ok=True)
        return read

    assert plan() == f"-- {' '.join(paths)}\n" and sums.read_text() == "", "too recent: hashed, not vouched for"
    time.sleep(2.1)
    assert plan() == f"-- {' '.join(paths)}\n", "hashed once more, now memoized"
    memo = {line.split("\t")[2]: line.split("\t")[0] for line in sums.read_text().splitlines()}
    assert memo == {f.path: f.sha256 for f in state.files} and sums.stat().st_mode & 0o777 == 0o600
    written = sums.stat().st_mtime_ns
    assert plan() == "", "every file vouched for"
    assert sums.stat().st_mtime_ns == written, "nothing learned: the memo is not rewritten"
    assert sorted(p.name for p in sums.parent.iterdir() if p.name.startswith("sums")) == ["sums"], "no temp file left"


def test_probe_reports_the_lock_and_umhctls_own_leftover_temp_files(scratch: Scratch, root: Path) -> None:
    assert parse_facts(run(scratch, root, scripts.probe(["/etc/hostname"], [])), "edge-01").lock is None
    lock = root / LOCK_DIR.lstrip("/")
    lock.mkdir(parents=True)
    # A lock directory without an owner file (a take that died half way) is a lock too, judged by its own age.
    facts = parse_facts(run(scratch, root, scripts.probe(["/etc/hostname"], [])), "edge-01")
    assert facts.lock is not None and (facts.lock.owner, facts.lock.holder) == ("", "")
    (lock / "info").write_text("not a timestamp\nalice <a@example.com> pid 4242\n")  # an old-format lock
    facts = parse_facts(run(scratch, root, scripts.probe(["/etc/hostname"], [])), "edge-01")
    assert facts.lock is not None and facts.lock.holder == "alice <a@example.com> pid 4242"
    assert 0 <= facts.lock.age < 60
    (lock / "info").unlink()
    (lock / "token.0123abcd").write_text("bob, pid 1 on pc (umhctl apply)")
    facts = parse_facts(run(scratch, root, scripts.probe(["/etc/hostname"], [])), "edge-01")
    assert facts.lock is not None and facts.lock.token == "0123abcd"
    mine = ["/etc/.umhctl-0123abcd-3.tmp", "/var/lib/umhctl/.umhctl-0123abcd-9.tmp"]
    others = ["/etc/.umhctl-x.tmp", "/etc/.umhctl-0123abcd-3.tmp.bak", "/opt/.umhctl-0123abcd-1.tmp"]
    for path in mine + others:
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_text("x")
    facts = parse_facts(run(scratch, root, scripts.probe(["/etc/hostname"], [])), "edge-01")
    assert facts.leftovers == tuple(sorted(mine)), "only umhctl's exact temp names, only next to managed paths"


def test_probe_counts_the_entries_of_each_directory_apply_created(scratch: Scratch, root: Path) -> None:
    for d, entries in {"/opt/a": 2, "/opt/b": 0, "/var/c d": 1}.items():
        (root / d.lstrip("/")).mkdir(parents=True)
        for i in range(entries):
            (root / d.lstrip("/") / f"entry\n{i}").write_text("x")  # a newline in a name counts once
    (root / "opt/linked").symlink_to("a")
    record = root / CREATED_DIRS.lstrip("/")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("/opt/a\n/opt/b\n/var/c d\n/opt/a\n/opt/linked\n/opt/gone\n\n")
    facts = parse_facts(run(scratch, root, scripts.probe(["/etc/hostname"], [])), "edge-01")
    assert facts.created_dirs == {"/opt/a": 2, "/opt/b": 0, "/var/c d": 1}, "not a symlink, not what is gone"


def test_probe_lists_everything_in_an_owned_directory_hidden_names_too_and_never_through_a_symlink(
    scratch: Scratch, root: Path
) -> None:
    owned = root / "opt/extensions/k3s"
    owned.mkdir(parents=True)
    for name in ("k3s.raw", ".hidden.raw", ".umhctl-0123abcd-1.tmp"):
        (owned / name).write_text("x")
    (owned / "old").mkdir()
    elsewhere = root / "srv/images"
    elsewhere.mkdir(parents=True)
    (elsewhere / "foreign.raw").write_text("x")
    (root / "opt/extensions/tailscale").symlink_to("/srv/images")
    dirs = ["/opt/extensions/k3s", "/opt/extensions/tailscale", "/opt/extensions/empty", "/opt/extensions/none"]
    (root / "opt/extensions/empty").mkdir()
    facts = parse_facts(run(scratch, root, scripts.probe([], [], dirs)), "edge-01")
    listed = {path for path in facts.paths if path.startswith("/opt/")}
    inside = {"k3s.raw", ".hidden.raw", ".umhctl-0123abcd-1.tmp", "old"}
    assert listed == {f"/opt/extensions/k3s/{name}" for name in inside}
    assert facts.path("/opt/extensions/k3s/old").other == "directory"
    assert facts.leftovers == ("/opt/extensions/k3s/.umhctl-0123abcd-1.tmp",)


def test_probe_reads_every_units_state_in_one_systemctl_call(scratch: Scratch, root: Path) -> None:
    spy = root / "opt/spy"
    spy.mkdir(parents=True)
    # As systemd's is-active: one line per unit, in order (an unknown unit is "inactive").
    (spy / "systemctl").write_text(
        '#!/bin/bash\necho "$*" >> /tmp/systemctl.log\n[[ $1 == is-active ]] || exit 1\nshift 2\n'
        "for u; do case $u in a.service) echo active ;; b.service) echo failed ;; *) echo inactive ;; esac; done\n"
    )
    (spy / "systemctl").chmod(0o755)
    out = run(scratch, root, scripts.probe([], ["a.service", "b.service", "c.service"]), spy=True)
    facts = parse_facts(out, "edge-01")
    assert facts.units == {"a.service": "active", "b.service": "failed", "c.service": "inactive"}
    assert (root / "tmp/systemctl.log").read_text() == "is-active -- a.service b.service c.service\n"


def test_a_lock_directory_without_an_owner_or_with_a_garbled_one_still_gets_an_answer(
    scratch: Scratch, root: Path
) -> None:
    lock = root / LOCK_DIR.lstrip("/")
    lock.mkdir(parents=True)
    assert run(scratch, root, scripts.lock("aaaa", "alice")).strip() == "LOCKED", "an empty lock.d is nobody's"
    assert run(scratch, root, scripts.unlock("aaaa")).strip() == "UNLOCKED"
    lock.mkdir()
    (lock / "info").write_bytes(b"\xff\x00garbage, not a timestamp")
    held = run(scratch, root, scripts.lock("bbbb", "bob")).split()
    assert held[0] == "HELD" and held[1].isdigit()
    assert run(scratch, root, scripts.lock("bbbb", "bob", force=True)).split()[0] == "TOOK_OVER"


def test_the_status_probe_adds_os_version_k3s_and_failed_units(scratch: Scratch, root: Path) -> None:
    (root / "etc/hostname").write_text("edge-01\n")
    (root / "etc/os-release").write_text("ID=flatcar\nVERSION=4152.2.3\nVERSION_ID=4152.2.3\n")
    spy = root / "opt/spy"
    spy.mkdir(parents=True)
    # systemctl as a real device answers: k3s active with PID 1 as its main process, two failed units.
    (spy / "systemctl").write_text(
        "#!/bin/bash\n"
        "case $1 in is-active) echo active ;; is-enabled) echo enabled ;; show) echo 1 ;;\n"
        "list-units) printf 'broken.service loaded failed failed Broken\\nold.timer loaded failed failed X\\n' ;;\n"
        "esac\n"
    )
    (spy / "systemctl").chmod(0o755)
    script = scripts.probe(["/etc/hostname"], ["k3s.service"], [], status_units=["k3s.service"])
    facts, status = parse_status(run(scratch, root, script, spy=True), "edge-01")
    assert facts.path("/etc/hostname").kind == "file" and facts.units == {"k3s.service": "active"}
    assert status.os_version == "4152.2.3"
    assert status.k3s == {"k3s.service": ("active", True)}
    assert status.failed_units == ["broken.service", "old.timer"]
    # The variables os-release sets stay inside the subshell: the rest of the script is not affected.
    assert run(scratch, root, script + 'echo "NAME=${NAME:-}"\n', spy=True).splitlines()[-1] == "NAME="


# -- write ------------------------------------------------------------------------------------------------------


def test_write_stages_private_temp_files_places_everything_and_syncs_directories(scratch: Scratch, root: Path) -> None:
    install_spies(root)
    old = root / "etc/umhctl-demo/old.conf"
    old.parent.mkdir(parents=True)
    old.write_text("old\n")
    state = desired()
    out = run(scratch, root, scripts.write(changes(), state, record(state), {"changes": 5}, TOKEN), spy=True)
    assert out.split() == ["RENAMING", "APPLIED"]
    # A temp file for another owner was private (0600) when it got its owner, before its mode was widened on
    # purpose; root's stay root's as the script made them.
    modes = (root / "tmp/chown.log").read_text().splitlines()
    assert len(modes) == 1 and modes[0].startswith("600 /home/core/.ssh/authorized_keys.d/.umhctl-"), modes
    for f in state.files:
        on_disk = root / f.path.lstrip("/")
        assert on_disk.read_bytes() == f.content and on_disk.stat().st_mode & 0o777 == f.mode
    assert (root / "home/core/.ssh/authorized_keys.d/ops").stat().st_uid == 500
    assert all((root / f.path.lstrip("/")).stat().st_uid == 0 for f in state.files if f.owner == "root")
    assert (root / "etc/umhctl-demo/current").readlink() == Path("app.conf")
    assert not old.exists()
    assert (root / RECORD.lstrip("/")).stat().st_mode & 0o777 == 0o600
    assert (root / MANAGED_LIST.lstrip("/")).stat().st_mode & 0o777 == 0o644
    # Directories umhctl had to create are 0755, not 0700 as mkdir -p makes them under umask 077.
    assert (root / "etc/umhctl-demo").stat().st_mode & 0o777 == 0o755
    assert (root / "home/core/.ssh").stat().st_mode & 0o777 == 0o755
    synced = set((root / "tmp/sync.log").read_text().split())
    assert {"/etc/umhctl-demo", "/home/core/.ssh/authorized_keys.d", "/var/lib/umhctl"} <= synced
    assert len({p for p in synced if "/.umhctl-" in p}) == 5, "every staged file is fsynced before the renames"
    assert list(root.rglob(".umhctl-*")) == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"no newline at the end",
        b"quotes ' \" and `$(touch /tmp/pwned)` $HOME \\ %s %d \\n -- -e\n\n\n",
        "unicode: K\u00f6ln \u2713, CRLF\r\n\ttab\n".encode(),
        b"binary\0with a NUL\n",
        b"\xff\xfe not UTF-8\n",
        b"x" * (64 * 1024 + 1),
    ],
    ids=["empty", "no-newline", "shell-syntax", "unicode", "nul", "not-utf8", "large"],
)
def test_staged_content_arrives_byte_for_byte(scratch: Scratch, root: Path, content: bytes) -> None:
    script = "set -euo pipefail\numask 077\n" + scripts._content_to(content, "/tmp/staged") + "\n"
    assert run(scratch, root, script) == ""
    assert (root / "tmp/staged").read_bytes() == content
    assert not (root / "tmp/pwned").exists()


def test_a_failed_write_leaves_the_device_unchanged(scratch: Scratch, root: Path) -> None:
    state = desired()
    (root / "etc/umhctl-demo").mkdir(parents=True)
    (root / "etc/umhctl-demo/app.conf").write_text("before\n")
    # A file where a directory must be: staging the authorized key fails, before anything is renamed.
    (root / "home/core/.ssh").mkdir(parents=True)
    (root / "home/core/.ssh/authorized_keys.d").write_text("in the way\n")
    changed = [
        c if c.target != "/etc/umhctl-demo/app.conf" else Change(Action.UPDATE, "file", c.target, "x")
        for c in changes()
    ]
    done = scratch.run(root, scripts.write(changed, state, record(state), {}, TOKEN))
    assert done.returncode != 0 and "RENAMING" not in done.stdout
    assert (root / "etc/umhctl-demo/app.conf").read_text() == "before\n"
    assert not (root / RECORD.lstrip("/")).exists()
    assert list(root.rglob(".umhctl-*")) == [], "the staged temp files were removed"


# -- lock -------------------------------------------------------------------------------------------------------


def lock_info(root: Path) -> list[str]:
    return sorted(p.name for p in (root / LOCK_DIR.lstrip("/")).iterdir())


def aged(root: Path, seconds: int) -> None:
    """A `stat` that makes the lock files of dead runs (token.dead*) `seconds` older than they are, so a lock can
    be stale without waiting for it; every other file keeps its real ctime."""
    spy = root / "opt/spy"
    spy.mkdir(parents=True, exist_ok=True)
    (spy / "stat").write_text(
        "#!/bin/bash\nfor a; do last=$a; done\n"
        f'if [[ $last == *token.dead* ]]; then echo $(( $(/usr/bin/stat "$@") - {seconds} )); '
        'else exec /usr/bin/stat "$@"; fi\n'
    )
    (spy / "stat").chmod(0o755)
    # Both takers judge the dead lock before either moves it: the race the takeover must survive.
    (spy / "mv").write_text('#!/bin/bash\n[[ "$*" == *token.dead* ]] && sleep 0.3\nexec /usr/bin/mv "$@"\n')
    (spy / "mv").chmod(0o755)


def test_lock_is_held_until_its_own_token_unlocks_it(scratch: Scratch, root: Path) -> None:
    assert run(scratch, root, scripts.lock("aaaa", "alice")).strip() == "LOCKED"
    held = run(scratch, root, scripts.lock("bbbb", "bob")).split()
    assert held[0] == "HELD" and base64.b64decode(held[2]).decode() == "alice"
    assert run(scratch, root, scripts.unlock("bbbb")).strip() == "NOT_HELD"
    assert lock_info(root) == ["token.aaaa"], "another run's unlock never removes the lock"
    assert run(scratch, root, scripts.unlock("aaaa")).strip() == "UNLOCKED"
    assert not (root / LOCK_DIR.lstrip("/")).exists()
    assert run(scratch, root, scripts.lock("bbbb", "bob")).strip() == "LOCKED"


def test_a_stale_lock_is_taken_over_by_exactly_one_of_two_racing_takers(scratch: Scratch, root: Path) -> None:
    for attempt in range(8):
        assert run(scratch, root, scripts.lock(f"dead{attempt}", "a run that died")).strip() == "LOCKED"
        aged(root, scripts.LOCK_STALE_SECONDS + 60)
        answers: list[str] = []

        def take(token: str, answers: list[str] = answers) -> None:
            answers.append(run(scratch, root, scripts.lock(token, token), spy=True).split()[0])

        takers = [threading.Thread(target=take, args=(f"t{attempt}{n}",)) for n in range(2)]
        for t in takers:
            t.start()
        for t in takers:
            t.join()
        assert sorted(answers) == ["HELD", "TOOK_OVER"], answers
        (owner,) = lock_info(root)
        assert owner.startswith(f"token.t{attempt}"), "one token file: the winner's"
        token = owner.removeprefix("token.")
        assert run(scratch, root, scripts.unlock(f"dead{attempt}")).strip() == "NOT_HELD"
        assert run(scratch, root, scripts.unlock(token)).strip() == "UNLOCKED"


def test_force_takes_over_a_live_lock_and_an_old_format_lock_is_understood(scratch: Scratch, root: Path) -> None:
    lock = root / LOCK_DIR.lstrip("/")
    lock.mkdir(parents=True)
    (lock / "info").write_text("1700000000\nalice <a@example.com> pid 4242\n")  # what umhctl before 0.2 wrote
    held = run(scratch, root, scripts.lock("bbbb", "bob")).split()
    assert held[0] == "HELD" and base64.b64decode(held[2]).decode().strip() == "alice <a@example.com> pid 4242"
    took = run(scratch, root, scripts.lock("bbbb", "bob", force=True)).split()
    assert took[0] == "TOOK_OVER"
    assert lock_info(root) == ["token.bbbb"] and (lock / "token.bbbb").read_text() == "bob"


# -- artifacts ----------------------------------------------------------------------------------------------------


IMAGE = "/opt/extensions/k3s/k3s-v1.32.2+k3s1-x86-64.raw"


def upload(scratch: Scratch, root: Path, data: bytes, sha256: str) -> subprocess.CompletedProcess[str]:
    """The upload script as the gate runs it: from argv, the image on stdin."""
    argv = in_private_mounts(BOOT_ARGV_SCRIPT, str(root), str(scratch.layer))
    argv.append(scripts.upload(IMAGE, sha256, TOKEN, 0))
    return subprocess.run(argv, input=data, capture_output=True, timeout=60)  # type: ignore[return-value]


def test_upload_checks_the_hash_on_the_device_before_the_image_is_in_place(scratch: Scratch, root: Path) -> None:
    data = b"stand-in image\n" * 1000
    bad = upload(scratch, root, data, hashlib.sha256(b"another image").hexdigest())
    assert bad.returncode == 3 and bad.stdout.decode().startswith("MISMATCH " + hashlib.sha256(data).hexdigest())
    assert not (root / IMAGE.lstrip("/")).exists() and list(root.rglob(".umhctl-*")) == []
    good = upload(scratch, root, data, hashlib.sha256(data).hexdigest())
    assert good.returncode == 0 and b"UPLOADED" in good.stdout, good.stderr
    placed = root / IMAGE.lstrip("/")
    assert placed.read_bytes() == data and placed.stat().st_mode & 0o777 == 0o644
    assert (root / "opt/extensions").stat().st_mode & 0o777 == 0o755
    # The probe sees everything in the images' directory; prune removes what is no longer needed.
    (root / "opt/extensions/k3s/k3s-v1.32.1+k3s1-x86-64.raw").write_bytes(b"old")
    facts = parse_facts(run(scratch, root, scripts.probe([IMAGE], [], ["/opt/extensions/k3s"])), "edge-01")
    assert facts.path("/opt/extensions/k3s/k3s-v1.32.1+k3s1-x86-64.raw").kind == "file"
    assert facts.path(IMAGE).sha256 == hashlib.sha256(data).hexdigest()
    assert run(scratch, root, scripts.prune(["/opt/extensions/k3s/k3s-v1.32.1+k3s1-x86-64.raw"])).strip() == "PRUNED"
    assert sorted(p.name for p in (root / "opt/extensions/k3s").iterdir()) == [IMAGE.rsplit("/", 1)[1]]


# -- restart, reset, backup ---------------------------------------------------------------------------------------


def test_a_changed_key_set_takes_effect_through_update_ssh_keys(scratch: Scratch, root: Path) -> None:
    keys = root / "home/core/.ssh/authorized_keys.d"
    keys.mkdir(parents=True)
    (keys / "ignition").write_text("ssh-ed25519 AAAAnew new@example\n")
    (root / "home/core/.ssh/authorized_keys").write_text("ssh-ed25519 AAAAold old@example\n")
    assert (
        run(scratch, root, scripts.restart(["update-ssh-keys:core"], False)).strip() == "RESTARTED update-ssh-keys:core"
    )
    merged = root / "home/core/.ssh/authorized_keys"
    assert merged.read_text() == "# auto-generated by update-ssh-keys\nssh-ed25519 AAAAnew new@example\n"
    assert merged.stat().st_uid == 500 and merged.stat().st_mode & 0o777 == 0o600


def test_restart_runs_in_order_and_reports_each_failure(scratch: Scratch, root: Path) -> None:
    broken = root / "etc/umhctl-sim/broken-units/b.service"
    broken.parent.mkdir(parents=True)
    broken.touch()
    done = scratch.run(root, scripts.restart(["a.service", "b.service", "c.service"], True))
    assert done.returncode == 1
    assert done.stdout.split("\n")[:3] == ["RESTARTED a.service", "FAILED b.service", "RESTARTED c.service"]
    log = (root / "var/log/umhctl-sim/systemctl.log").read_text()
    assert log.index("daemon-reload") < log.index("restart -- a.service") < log.index("restart -- c.service")


def test_stage_reset_stages_flatcar_reset_and_the_pending_marker(scratch: Scratch, root: Path) -> None:
    (root / "etc/machine-id").write_text("0" * 32 + "\n")
    out = run(scratch, root, scripts.stage_reset(IGNITION, [scripts.HOST_KEYS_KEEP, "/var/lib/rancher"]))
    assert out.strip().endswith("STAGED")
    assert json.loads((root / "oem/config.ign").read_text()) == json.loads(IGNITION)
    assert (root / "boot/flatcar/first_boot").exists()
    keep = (root / "selective-os-reset").read_text()
    assert "/etc/ssh/ssh_host_.*" in keep and "/var/lib/rancher" in keep
    assert run(scratch, root, scripts.reset_state()).strip() == "PENDING"
    assert list((root / "var/tmp").iterdir()) == [], "the staged config's temp file is removed"


def test_reset_state_after_the_reset_and_reboot_request(scratch: Scratch, root: Path) -> None:
    assert run(scratch, root, scripts.reset_state()).split()[0] == "DONE"
    out = run(scratch, root, scripts.reboot() + "cat /run/umhctl-sim/reboot-request\n")
    assert out.strip() == "reboot"


def test_backup_streams_the_existing_data_paths(scratch: Scratch, root: Path) -> None:
    data = root / "var/lib/rancher/k3s/storage/pvc-1/data.txt"
    data.parent.mkdir(parents=True)
    data.write_text("production data\n")
    done = scratch.run_binary(root, scripts.backup(["/var/lib/rancher/k3s/storage", "/opt/missing"]))
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(done.stdout))) as tar:
        member = tar.extractfile("var/lib/rancher/k3s/storage/pvc-1/data.txt")
        assert member is not None and member.read() == b"production data\n"


# -- one round trip per step of apply -----------------------------------------------------------------------------


def test_lock_and_probe_reads_facts_only_under_a_lock_it_took(scratch: Scratch, root: Path) -> None:
    from umhctl.remote.gate import _lock_answer

    (root / "etc/hostname").write_text("edge-01\n")
    out = run(scratch, root, scripts.lock_and_probe("aaaa", "alice", ["/etc/hostname"], [], []))
    first, _, rest = out.partition("\n")
    assert _lock_answer(first).state == "locked"
    facts = parse_facts(rest, "edge-01")
    assert facts.path("/etc/hostname").kind == "file" and facts.lock is not None and facts.lock.token == "aaaa"
    held = run(scratch, root, scripts.lock_and_probe("bbbb", "bob", ["/etc/hostname"], [], []))
    assert held.split()[0] == "HELD" and len(held.splitlines()) == 1, "no facts for a run that holds no lock"


def test_the_probe_locks_a_device_whose_record_names_another_state_and_reads_facts_either_way(
    scratch: Scratch, root: Path
) -> None:
    from umhctl.remote.gate import _lock_answer

    desired_at = "sha256:" + "ab" * 32
    (root / "etc/hostname").write_text("edge-01\n")
    lock = root / LOCK_DIR.lstrip("/")

    def probe(token: str) -> tuple[str, str]:
        out = run(scratch, root, scripts.probe_locking_if_behind(token, "alice", desired_at, ["/etc/hostname"], [], []))
        first, _, rest = out.partition("\n")
        assert parse_facts(rest, "edge-01").path("/etc/hostname").kind == "file"
        return first, rest

    assert _lock_answer(probe("aaaa")[0]).state == "locked", "no record yet: behind"
    first, rest = probe("bbbb")
    assert _lock_answer(first).state == "held", "another run's lock: not taken, but the facts still come"
    assert parse_facts(rest, "edge-01").lock is not None
    run(scratch, root, scripts.unlock("aaaa"))
    record_file = root / RECORD.lstrip("/")
    record_file.write_text(json.dumps({"desired_fingerprint": "sha256:" + "cd" * 32}, indent=2, sort_keys=True))
    assert _lock_answer(probe("cccc")[0]).state == "locked", "the record names another state"
    run(scratch, root, scripts.unlock("cccc"))
    record_file.write_text(json.dumps({"device": "edge-01", "desired_fingerprint": desired_at}, indent=2))
    assert probe("dddd")[0] == scripts.AT_DESIRED and not lock.exists(), "at its desired state: no lock asked for"


def test_converge_writes_restarts_verifies_and_unlocks_in_one_script(scratch: Scratch, root: Path) -> None:
    from umhctl.remote.gate import parse_converged

    assert run(scratch, root, scripts.lock("aaaa", "alice")).strip() == "LOCKED"
    state = desired()
    probe = ([f.path for f in state.files] + [link.path for link in state.links], ["app.service"], [])
    script = scripts.converge(
        "aaaa", probe, (changes()[:4], state, record(state), {"changes": 4}), (["app.service"], False)
    )
    done = scratch.run(root, script)
    answer = parse_converged(done.stdout, done.stderr, "edge-01")
    assert (answer.write_status, answer.applied, answer.restart_status, answer.unlocked) == (0, True, 0, True)
    assert answer.facts is not None and answer.facts.path("/etc/umhctl-demo/app.conf").sha256 == state.files[0].sha256
    assert not (root / LOCK_DIR.lstrip("/")).exists()
    assert (root / "etc/umhctl-demo/current").readlink() == Path("app.conf")


def test_a_failed_write_in_converge_restarts_nothing_and_still_unlocks(scratch: Scratch, root: Path) -> None:
    from umhctl.remote.gate import parse_converged

    assert run(scratch, root, scripts.lock("aaaa", "alice")).strip() == "LOCKED"
    (root / "etc/umhctl-demo").write_text("a file where the directory belongs\n")
    state = desired()
    script = scripts.converge(
        "aaaa", (["/etc/hostname"], [], []), (changes()[:4], state, record(state), {}), (["app.service"], False)
    )
    done = scratch.run(root, script)
    answer = parse_converged(done.stdout, done.stderr, "edge-01")
    assert answer.write_status not in (0, None) and not answer.applied and not answer.renaming
    assert answer.restart_status is None and answer.facts is None, "nothing after a failed write"
    assert answer.unlocked is True and not (root / LOCK_DIR.lstrip("/")).exists()
    assert not list((root / "home/core/.ssh/authorized_keys.d").glob(".umhctl-*")), "its temp files are gone"
    assert (root / "etc/umhctl-demo").read_text() == "a file where the directory belongs\n"


def test_converge_answers_what_it_did_when_a_restart_fails(scratch: Scratch, root: Path) -> None:
    from umhctl.remote.gate import parse_converged

    spy = root / "opt/spy"
    spy.mkdir(parents=True)
    (spy / "systemctl").write_text('#!/bin/bash\n[ "$1" = restart ] && [ "$3" = bad.service ] && exit 1\nexit 0\n')
    (spy / "systemctl").chmod(0o755)
    script = scripts.converge("aaaa", (["/etc/hostname"], [], []), None, (["good.service", "bad.service"], False))
    done = scratch.run(root, "export PATH=/opt/spy:$PATH\n" + script)
    answer = parse_converged(done.stdout, done.stderr, "edge-01")
    assert answer.write_status is None and answer.restart_status == 1 and answer.restart_failed == ["bad.service"]
    assert answer.facts is not None and answer.unlocked is False, "NOT_HELD: this run held no lock"
