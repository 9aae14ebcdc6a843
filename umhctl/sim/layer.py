"""The sim's /usr layer: what a simulated device's read-only /usr has on top of the host's /usr.

A device's /usr is a read-only overlay, this layer over the host /usr. The layer holds
- whiteouts that hide the host's Python: real Flatcar has none, so nothing in umhctl may come to need it;
- the stand-ins (simulation parts, see standins/): `systemctl` (also as `reboot`, `poweroff`, `halt`,
  `shutdown`) and `flatcar-reset`;
- `/usr/share/oem -> ../../oem`, the compatibility link Flatcar's baselayout has;
- Debian's `/usr/bin/{awk,which,...} -> /etc/alternatives/...` links, resolved: a device's /etc is Flatcar's
  and has no /etc/alternatives (and copying it into every root costs hundreds of symlinks per device).
Nothing of it exists outside the overlay: neither on the host nor, ever, on a real device.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

STANDINS = Path(__file__).parent / "standins"
HOST_USR = Path("/usr")
_PYTHON_GLOBS = (
    "bin/python*",
    "bin/pydoc*",
    "bin/pygettext*",
    "lib/python2*",
    "lib/python3*",
    "local/bin/python*",
    "local/lib/python*",
)
_LINKS = {
    "sbin/reboot": "../bin/systemctl",
    "sbin/poweroff": "../bin/systemctl",
    "sbin/halt": "../bin/systemctl",
    "sbin/shutdown": "../bin/systemctl",
    "share/oem": "../../oem",
}


def python_paths(usr: Path = HOST_USR) -> list[str]:
    """The host /usr entries (relative) that make up a usable Python."""
    found: set[str] = set()
    for pattern in _PYTHON_GLOBS:
        for path in usr.glob(pattern):
            found.add(str(path.relative_to(usr)))
    return sorted(found)


def alternatives(usr: Path = HOST_USR) -> dict[str, str]:
    """Host /usr links into /etc/alternatives (in the directories commands and libraries live in), resolved."""
    found: dict[str, str] = {}
    for directory in ("bin", "sbin", "lib", "lib/x86_64-linux-gnu", "local/bin"):
        try:
            entries = list(os.scandir(usr / directory))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_symlink():
                continue
            target = os.readlink(entry.path)
            if target.startswith("/etc/alternatives/"):
                with contextlib.suppress(OSError):
                    found[f"{directory}/{entry.name}"] = os.readlink(target)
    return dict(sorted(found.items()))


def layer_id(usr: Path = HOST_USR) -> str:
    """Changes when the stand-ins or the host's Python change: a new layer is built, running devices keep theirs."""
    digest = hashlib.sha256()
    for script in sorted(STANDINS.iterdir()):
        digest.update(script.name.encode() + b"\0" + script.read_bytes())
    digest.update("\0".join(python_paths(usr)).encode())
    digest.update(repr(sorted(_LINKS.items())).encode())
    digest.update(repr(alternatives(usr)).encode())
    return digest.hexdigest()[:16]


def build_layer(layers_dir: Path, usr: Path = HOST_USR) -> Path:
    """The layer directory for the current stand-ins and host (built once, then reused)."""
    target = layers_dir / layer_id(usr)
    if target.is_dir():
        return target
    tmp = layers_dir / f".{target.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "bin").mkdir(parents=True)
    (tmp / "sbin").mkdir()
    (tmp / "share").mkdir()
    for script in STANDINS.iterdir():
        shutil.copyfile(script, tmp / "bin" / script.name)
        os.chmod(tmp / "bin" / script.name, 0o755)
    hidden = set(python_paths(usr))
    resolved = {link: target for link, target in alternatives(usr).items() if link not in hidden}
    for link, destination in [*_LINKS.items(), *resolved.items()]:
        (tmp / link).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(destination, tmp / link)
    for relative in python_paths(usr):
        whiteout = tmp / relative
        whiteout.parent.mkdir(parents=True, exist_ok=True)
        # An overlayfs whiteout is a 0/0 character device: it hides the entry of the layers below.
        os.mknod(whiteout, 0o600 | 0o020000, os.makedev(0, 0))
    os.replace(tmp, target)
    return target
