"""Local files umhctl keeps on the operator's machine: where they live (XDG) and how they are written (atomically)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def xdg_dir(kind: str) -> Path:
    """$XDG_DATA_HOME, $XDG_STATE_HOME or $XDG_CACHE_HOME (kind "data", "state", "cache"), with their defaults."""
    default = {"data": ".local/share", "state": ".local/state", "cache": ".cache"}[kind]
    return Path(os.environ.get(f"XDG_{kind.upper()}_HOME") or Path.home() / default)


def write_atomic(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write via a uniquely named temp file in the same directory, fsync, rename: readers see old or new, whole.

    Without `mode`, an existing file keeps its mode (a known_hosts someone made 0600 stays 0600); a new one
    gets 0644. The temp file is private until then (mkstemp creates it 0600)."""
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
