"""Run a console script (umhctl, pyinfra) in this process and count what it does over SSH, per endpoint.

    python3 bench/peers/count_remote.py COUNTS.json SCRIPT [ARGS...]

Both tools reach devices through paramiko, so counting there measures them alike: SSH connections
(`Transport.start_client`), remote commands (`Channel.exec_command`) and file-transfer sessions
(`Channel.invoke_subsystem`, i.e. SFTP). Written to COUNTS.json at exit as {"address:port": {"connections": n,
"commands": n, "sftp": n}}; the script's exit status is passed on. Used by compare.py in an unmeasured run (the
patching itself costs time).
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
from collections import defaultdict
from importlib.metadata import entry_points
from typing import Any


def main() -> int:
    out, script, *argv = sys.argv[1:]
    import paramiko

    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"connections": 0, "commands": 0, "sftp": 0})
    lock = threading.Lock()

    def peer(transport: Any) -> str:
        address, port = transport.getpeername()[:2]
        return f"{address}:{port}"

    def counting(cls: Any, method: str, what: str, of: Any) -> None:
        original = getattr(cls, method)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                counts[peer(of(self))][what] += 1
            return original(self, *args, **kwargs)

        setattr(cls, method, wrapper)

    counting(paramiko.Transport, "start_client", "connections", lambda t: t)
    counting(paramiko.Channel, "exec_command", "commands", lambda c: c.get_transport())
    counting(paramiko.Channel, "invoke_subsystem", "sftp", lambda c: c.get_transport())

    def write() -> None:
        with open(out, "w") as handle:
            json.dump(dict(counts), handle, indent=2, sort_keys=True)

    atexit.register(write)
    (entry,) = entry_points(group="console_scripts", name=script)
    sys.argv = [script, *argv]
    try:
        result = entry.load()()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
