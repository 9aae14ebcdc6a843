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
    _write(target / "ignition.json", ignition_json(render.ignition).encode(), mode, mkdir=False)
    _write(target / "butane.yaml", render.butane.encode(), mode, mkdir=False)
    rootfs = (target / "rootfs").resolve()
    try:
        # Everything goes into the directory just made, where nothing is a symlink but the links written last,
        # and no managed path is inside another (DesiredState refuses it): a lexical check keeps every path inside.
        files = [(_lexically_inside(rootfs, f.path), f) for f in render.state.files]
        links = [(_lexically_inside(rootfs, link.path), link) for link in render.state.links]
        # Every directory made once, parents first: mkdir is the slowest call of a large render (metadata
        # writes), and mkdir(parents=True, exist_ok=True) per path asks again for every path and every level.
        dirs: set[Path] = set()
        for path in [p for p, _ in files] + [p for p, _ in links]:
            parent = path.parent
            while parent != rootfs.parent and parent not in dirs:  # up to rootfs itself
                dirs.add(parent)
                parent = parent.parent
        for directory in sorted(dirs, key=lambda d: len(d.parts)):
            os.mkdir(directory)
        for path, f in files:
            _write(path, f.content, 0o600 if f.secret else f.mode, mkdir=False)
        for path, link in links:
            os.symlink(link.target, path)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        # DesiredState refuses a path that is another's directory; this keeps any conflict a clean error.
        where = os.path.relpath(exc.filename, rootfs) if exc.filename else "?"
        raise UmhctlError(f"{render.device}: cannot write /{where}: {exc.strerror}") from None
    data = render.state.to_data(seal)
    _write(target / MARKER, (json.dumps(data, indent=2) + "\n").encode(), 0o644, mkdir=False)
    return target


def _lexically_inside(rootfs: Path, device_path: str) -> Path:
    relative = os.path.normpath(device_path.lstrip("/"))
    if relative in (".", "..") or relative.startswith(("../", "/")):
        raise UmhctlError(f"refusing to write {device_path}: it leads outside {rootfs}")
    return rootfs / relative


def _write(path: Path, content: bytes, mode: int, *, mkdir: bool = True) -> None:
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    # A bare descriptor: a file object would ask the terminal (isatty) and seek for each of 20,000 files.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)  # the umask must not loosen or tighten what the device will have
    finally:
        os.close(fd)
