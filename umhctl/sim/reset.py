"""What a simulated device's "initrd" does on boot after `flatcar-reset` staged a reset.

Flatcar's initrd (bootengine `initrd-setup-root`) deletes everything on the root filesystem that the egrep
regex in /selective-os-reset does not match (found with `find / -xdev -regextype egrep -not -regex ...`, run
chrooted into the root), removes the flag file and /etc/machine-id, and Ignition runs again because
/boot/flatcar/first_boot exists. The same `find` (the host's GNU findutils) selects what to delete here, so
the regex means exactly what it means on a device.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

from umhctl.errors import UmhctlError
from umhctl.sim.process import in_private_mounts

RESET_FLAG = "selective-os-reset"
FIRST_BOOT = "boot/flatcar/first_boot"
OEM_CONFIG = "oem/config.ign"
OEM_GRUB = "oem/grub.cfg"
# Separate partitions (/oem, /boot) or mounts on a real device; the empty /usr mount point stays as well.
_PRUNED = ("/usr", "/oem", "/boot")


def staged_first_boot(root: Path) -> bool:
    return (root / FIRST_BOOT).exists()


def selective_reset(root: Path) -> list[str]:
    """Delete what the staged keep regex does not match; returns the deleted paths (device paths)."""
    flag = root / RESET_FLAG
    if not flag.is_file() or flag.stat().st_size == 0:
        return []
    regex = flag.read_text().strip()
    prune: list[str] = []
    for path in _PRUNED:
        prune += ["-path", path, "-o"]
    argv = in_private_mounts(
        'mount --bind /usr "$1/usr" && root=$1 && shift && exec chroot "$root" "$@"',
        str(root),
        "/usr/bin/find",
        "/",
        "-regextype",
        "egrep",
        "-xdev",
        "(",
        *prune[:-1],
        ")",
        "-prune",
        "-o",
        "-not",
        "-regex",
        regex,
        "-print0",
    )
    proc = subprocess.run(argv, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise UmhctlError(f"selective reset: find failed: {proc.stderr.decode(errors='replace').strip()}")
    doomed = [p.decode() for p in proc.stdout.split(b"\0") if p and p != b"/"]
    deleted: list[str] = []
    # find printed parents before children: delete in reverse so directories are empty when their turn comes.
    for device_path in reversed(doomed):
        host_path = root / device_path.lstrip("/")
        try:
            if host_path.is_dir() and not host_path.is_symlink():
                host_path.rmdir()  # fails (and the directory stays) when something in it is kept
            else:
                host_path.unlink()
            deleted.append(device_path)
        except OSError:
            pass
    flag.unlink(missing_ok=True)
    (root / "etc" / "machine-id").unlink(missing_ok=True)
    return deleted


def kernel_args(root: Path) -> dict[str, str]:
    """The `key=value` kernel arguments flatcar-reset wrote into /oem/grub.cfg (machine id, Ignition URL)."""
    result: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for match in re.finditer(r"([a-z_.]+)=([^\s\"']+)", (root / OEM_GRUB).read_text()):
            result[match.group(1)] = match.group(2)
    return result


def clear_first_boot(root: Path) -> None:
    # Flatcar's ignition-quench removes the flag once Ignition succeeded.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(root / FIRST_BOOT)
