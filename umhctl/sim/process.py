"""Processes of simulated devices: start one in its own namespaces, tell whether it lives, stop it.

A device is one `unshare` process on the host whose child (the namespace's PID 1) becomes the device's sshd.
Stopping the `unshare` ends the device: `--kill-child` kills the namespace's PID 1, the kernel then kills every
other process of the pid namespace, and the mounts go with the mount namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

DEVINIT = Path(__file__).parent / "devinit.sh"
WATCHER_MODULE = "umhctl.sim.watch"
UNSHARE = ["unshare", "--mount", "--propagation", "private", "--uts", "--pid", "--fork", "--kill-child"]


def alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie counts as gone: `kill -0` still succeeds on one until its parent reaps it,
    and a backgrounded `unshare` is reparented to the machine's PID 1, which may reap late or never."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the command name, which is in parentheses and may itself contain ") ".
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_device_process(pid: int, root: Path) -> bool:
    """Whether `pid` is the unshare of the device rooted at `root` (not a recycled pid)."""
    args = cmdline(pid)
    return alive(pid) and bool(args) and args[0].endswith("unshare") and str(root) in args


def children(pid: int) -> list[int]:
    result: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                result += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return result


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        kids = children(current)
        found += kids
        pending += kids
    return found


def spawn_device(root: Path, layer: Path, control: Path, address: str, port: int, hostname: str, log: Path) -> int:
    """Start the device; returns the pid of its `unshare`. It runs on when this process exits."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                *UNSHARE,
                "--",
                "/bin/bash",
                str(DEVINIT),
                str(root),
                str(layer),
                str(control),
                address,
                str(port),
                hostname,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C in the shell leaves devices alone
            close_fds=True,
        )
    return proc.pid


def reap(pid: int) -> None:
    """Collect `pid` if it is a child of this process, so it does not linger as a zombie here."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM the given processes, SIGKILL what is left after `timeout`; returns those that would not die."""
    pending = [p for p in pids if alive(p)]
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    killed = False
    while pending:
        for pid in pending:
            reap(pid)
        pending = [p for p in pending if alive(p)]
        if not pending:
            break
        if time.monotonic() > deadline:
            if killed:
                break
            for pid in pending:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + timeout
        time.sleep(0.01)
    return pending


def processes_under(directory: Path) -> list[int]:
    """The host processes of the simulated site in `directory`: device `unshare`s and the site's watcher (by
    their command line), and anything chrooted into a device root.

    The sweep `sim down` does after stopping the recorded devices, so that nothing of a site survives it, not
    even a device whose start was interrupted before it was recorded. Only those kinds of processes match: a
    shell or sudo that merely has the path in its command line is left alone.
    """
    prefix = str(directory.resolve())
    spared = {os.getpid(), *_ancestors(os.getpid())}
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        pid = int(entry)
        if not alive(pid):
            continue
        try:
            root = os.readlink(f"/proc/{pid}/root")
        except OSError:
            root = ""
        args = cmdline(pid)
        mentions = any(arg == prefix or arg.startswith(prefix + "/") for arg in args)
        ours = bool(args) and (args[0].endswith("unshare") or WATCHER_MODULE in args)
        if root.startswith(prefix + "/") or (mentions and ours):
            found.append(pid)
    return found


def _ancestors(pid: int) -> list[int]:
    result: list[int] = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
        result.append(pid)
    return result


def in_private_mounts(script: str, *args: str) -> list[str]:
    """argv running `sh -c script sh ARGS...` in a private mount namespace: its bind mounts end with it."""
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", *args]
