"""A scratch device root for running umhctl's device scripts for real: bash chrooted into a Flatcar-shaped root.

The root is the simulated device's base tree (umhctl.sim.provision) with the simulated /usr (the host's,
read-only, Python hidden, the systemctl and flatcar-reset stand-ins) mounted in a private mount namespace, so a
script sees exactly what it would see on a simulated device, without sshd. Needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from umhctl.remote.ssh import RUN_SCRIPT
from umhctl.sim.layer import build_layer
from umhctl.sim.process import in_private_mounts
from umhctl.sim.provision import make_base_root

_MOUNT_AND_CHROOT = (
    'root=$1 layer=$2 && mount -t overlay -o "ro,lowerdir=$layer:/usr" scratch-usr "$root/usr"'
    ' && mount --rbind /dev "$root/dev" && mount -t proc proc "$root/proc"'
    ' && mount -t tmpfs -o mode=755 scratch-run "$root/run" && mkdir -p "$root/run/umhctl-sim/active"'
    ' && exec chroot "$root" '
)
# A script on stdin, run as a device runs it (umhctl.remote.ssh.RUN_SCRIPT).
_BOOT = _MOUNT_AND_CHROOT + f"/bin/{RUN_SCRIPT}"
# A script in argv ($3), its stdin left for data (Connection.upload).
BOOT_ARGV_SCRIPT = _MOUNT_AND_CHROOT + '/bin/bash -c "$3"'

can_run = os.geteuid() == 0 and shutil.which("unshare") is not None


class Scratch:
    """Device roots that share one /usr layer."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="umhctl-scratch-", dir="/tmp"))
        self.base.chmod(0o755)
        self.layer = build_layer(self.base / "layers")
        self.count = 0

    def root(self) -> Path:
        self.count += 1
        root = self.base / f"root-{self.count}"
        make_base_root(root)
        return root

    def run(self, root: Path, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = in_private_mounts(_BOOT, str(root), str(self.layer))
        return subprocess.run(argv, input=script, capture_output=True, text=True, timeout=timeout)

    def run_binary(self, root: Path, script: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """For scripts whose output is data (a backup archive)."""
        argv = in_private_mounts(_BOOT, str(root), str(self.layer))
        return subprocess.run(argv, input=script.encode(), capture_output=True, timeout=timeout)

    def remove(self, root: Path) -> None:
        shutil.rmtree(root, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
