"""Provision a device root with the real Ignition binary (Debian package `ignition`), as first boot would.

The root starts Flatcar-shaped: the `core` user (uid 500) exists, as in Flatcar's base image, so Ignition
runs usermod rather than useradd; every group the config names exists. Debian's Ignition always relabels for
SELinux, so a no-op `setfiles` goes first on PATH while it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from umhctl.errors import UmhctlError
from umhctl.render.ignition import offline_variant

IGNITION = Path("/usr/lib/dracut/modules.d/30ignition/ignition")

_PASSWD = """root:x:0:0:root:/root:/bin/bash
sshd:x:101:65534::/run/sshd:/usr/sbin/nologin
core:x:500:500:Flatcar Admin:/home/core:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
_GROUPS = [
    ("root", 0),
    ("tty", 5),
    ("wheel", 10),
    ("sudo", 27),
    ("users", 100),
    ("docker", 233),
    ("core", 500),
    ("nogroup", 65534),
]


def make_base_root(root: Path) -> None:
    """The minimal Flatcar-shaped /etc and /home that Ignition's files stage needs."""
    etc = root / "etc"
    (etc / "selinux").mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(_PASSWD)
    (etc / "group").write_text(
        "".join(f"{name}:x:{gid}:{'core' if name in ('wheel', 'sudo', 'docker') else ''}\n" for name, gid in _GROUPS)
    )
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\ncore:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("".join(f"{name}:*::\n" for name, _ in _GROUPS))
    os.chmod(etc / "shadow", 0o640)
    os.chmod(etc / "gshadow", 0o640)
    # Debian's Ignition reads this to decide how to relabel; SELINUX=disabled alone does not stop it.
    (etc / "selinux" / "config").write_text("SELINUX=disabled\nSELINUXTYPE=targeted\n")
    home = root / "home" / "core"
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, 500, 500)


def run_ignition(config: dict[str, Any], root: Path, *, offline: bool = True) -> str:
    """Run Ignition's fetch-offline and files stages for `config` into `root`; returns Ignition's log."""
    if not IGNITION.exists():
        raise UmhctlError(f"{IGNITION} is missing", hint="apt-get install ignition")
    _check_reachable_by_core(root)
    if offline:
        config = offline_variant(config)
    with tempfile.TemporaryDirectory(prefix="umhctl-ignition-") as tmp:
        work = Path(tmp)
        (work / "config.ign").write_text(json.dumps(config))
        stub = work / "bin"
        stub.mkdir()
        (stub / "setfiles").write_text("#!/bin/sh\nexit 0\n")
        os.chmod(stub / "setfiles", 0o755)
        env = {**os.environ, "IGNITION_CONFIG_FILE": str(work / "config.ign"), "PATH": f"{stub}:{os.environ['PATH']}"}
        common = [
            "-platform",
            "file",
            "-log-to-stdout",
            "-config-cache",
            str(work / "cache.json"),
            "-state-file",
            str(work / "state"),
        ]
        log = ""
        for stage in (
            ["-stage", "fetch-offline", "-neednet", str(work / "neednet")],
            ["-stage", "files", "-root", str(root)],
        ):
            proc = subprocess.run(
                [str(IGNITION), *stage, *common], env=env, capture_output=True, text=True, timeout=120
            )
            log += proc.stdout + proc.stderr
            if proc.returncode != 0:
                tail = "\n".join(log.strip().splitlines()[-15:])
                raise UmhctlError(f"Ignition stage {stage[1]} failed (exit {proc.returncode}):\n{tail}")
    return log


def _check_reachable_by_core(root: Path) -> None:
    # Ignition writes ~core/.ssh as uid 500 (it drops privileges for the user's home), so every directory
    # above the root must let others pass through.
    for directory in [root.resolve(), *root.resolve().parents]:
        if directory.exists() and not directory.stat().st_mode & 0o001:
            raise UmhctlError(
                f"{directory} is not searchable by other users; Ignition needs uid 500 to reach {root}",
                hint=f"chmod o+x {directory}, or keep device roots under a world-searchable directory",
            )


def fresh_root(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    make_base_root(root)
