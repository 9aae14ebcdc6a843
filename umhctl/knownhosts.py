"""The site's known_hosts: one line per device address, written from the host keys umhctl generated."""

from __future__ import annotations

import os
from pathlib import Path


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def set_host_key(path: Path, host: str, public_key: str) -> bool:
    """Make `host`'s entry exactly `public_key` (type and data; no comment); True when the file changed."""
    key = " ".join(public_key.split()[:2])
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split(" ", 1)[0] != host]
    new = [*kept, f"{host} {key}"]
    if new == lines:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in new))
    os.replace(tmp, path)
    return True
