"""Who holds a device lock, and whether that run is gone: the holder names its pid and the host it ran on.

A holder on this host whose pid no longer exists died without unlocking (killed, machine slept through a
dropped session...): its lock is stale however young it is. A holder on another host cannot be checked from
here: it may still be running.
"""

from __future__ import annotations

import os
import re
import socket

_HOLDER = re.compile(r", pid (\d+) on (\S+) \(umhctl [a-z-]+\)$")


def describe(who: str, command: str) -> str:
    """What a run writes into the lock: `who, pid N on HOST (umhctl COMMAND)`."""
    return f"{who}, pid {os.getpid()} on {socket.gethostname()} (umhctl {command})"


def where(holder: str) -> tuple[int, str] | None:
    """(pid, host) of a holder text, when it has them."""
    match = _HOLDER.search(holder)
    return (int(match.group(1)), match.group(2)) if match else None


def gone(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    found = where(holder)
    if found is None or found[1] != socket.gethostname():
        return False
    pid = found[0]
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # someone else's live process
    return False
