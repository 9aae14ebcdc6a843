"""Write renders to disk: DIR/<device>/{ignition.json, butane.yaml, plan-input.json, rootfs/<abs path>}."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from umhctl.errors import UmhctlError
from umhctl.render import DeviceRender
from umhctl.render.ignition import ignition_json

MARKER = "plan-input.json"


def write_render(render: DeviceRender, out: Path, seal: Callable[[str], str] | None = None) -> Path:
    """Replace DIR/<device> with this render. Files that carry secrets get mode 0600."""
    target = out / render.device
    if target.exists():
        if not (target / MARKER).exists():
            raise UmhctlError(
                f"{target} exists and was not written by umhctl render; refusing to replace it",
                hint="choose an empty --out directory",
            )
        shutil.rmtree(target)
    target.mkdir(parents=True)
    # Ignition and Butane carry every file inline, secrets included.
    mode = 0o600 if render.carries_secrets else 0o644
    _write(target / "ignition.json", ignition_json(render.ignition).encode(), mode)
    _write(target / "butane.yaml", render.butane.encode(), mode)
    rootfs = (target / "rootfs").resolve()
    # Files first, into the directory just made: nothing in it is a symlink yet, so a lexical check keeps every
    # file inside. Links come after, each checked against the real filesystem (a link's parent could be a link).
    made: set[Path] = set()
    for f in render.state.files:
        path = _lexically_inside(rootfs, f.path)
        if path.parent not in made:  # one mkdir per directory, not one per file
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        _write(path, f.content, 0o600 if f.secret else f.mode, mkdir=False)
    for link in render.state.links:
        path = _inside(rootfs, link.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link.target, path)
    data = render.state.to_data(seal)
    _write(target / MARKER, (json.dumps(data, indent=2) + "\n").encode(), 0o644)
    return target


def _inside(rootfs: Path, device_path: str) -> Path:
    # validate refuses ".." in paths; this keeps a render from ever writing outside --out all the same.
    path = (rootfs / device_path.lstrip("/")).resolve()
    if not path.is_relative_to(rootfs.resolve()):
        raise UmhctlError(f"refusing to write {device_path}: it leads outside {rootfs}")
    return path


def _lexically_inside(rootfs: Path, device_path: str) -> Path:
    relative = os.path.normpath(device_path.lstrip("/"))
    if relative == ".." or relative.startswith(("../", "/")):
        raise UmhctlError(f"refusing to write {device_path}: it leads outside {rootfs}")
    return rootfs / relative


def _write(path: Path, content: bytes, mode: int, *, mkdir: bool = True) -> None:
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)  # the umask must not loosen or tighten what the device will have
