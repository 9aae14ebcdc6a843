"""The SSH floor of a plan: one paramiko connection and one `sudo -n true` per device, in parallel, then exit.

Run by bench/plan_fleet.py as a whole process next to `umhctl plan` (the same endpoints, key, strict host-key
checking against the same known_hosts, the same parallelism), so the ratio between the two is what umhctl adds
on top of reaching every device once.

    python3 bench/ssh_floor.py ENDPOINTS.json [--parallel 16]

ENDPOINTS.json: {"known_hosts": PATH, "identity": PATH, "user": NAME, "endpoints": {device: [address, port]}}.
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def reach(spec: dict[str, Any], address: str, port: int) -> int:
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(spec["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        # TCP_NODELAY as umhctl sets it (remote/ssh.py): a floor must be the fastest a client can do.
        sock = socket.create_connection((address, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.connect(
            address,
            sock=sock,
            port=port,
            username=spec["user"],
            key_filename=spec["identity"],
            look_for_keys=False,
            allow_agent=False,
            timeout=30,
        )
        _, stdout, _ = client.exec_command("sudo -n true")
        return stdout.channel.recv_exit_status()
    finally:
        client.close()


def main() -> int:
    # What umhctl's command line does to start and end quicker (umhctl/cli/__init__.py: main), the floor does too:
    # no invoke (paramiko imports it only for `Match exec` in an OpenSSH config), no last collections at exit.
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
    gc.set_threshold(50_000, 20, 10)
    try:
        return _main()
    finally:
        gc.freeze()


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoints", type=Path)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--device", action="append", help="only these devices (default: all)")
    args = parser.parse_args()
    spec = json.loads(args.endpoints.read_text())
    chosen = {d: e for d, e in spec["endpoints"].items() if not args.device or d in args.device}
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        codes = list(pool.map(lambda e: reach(spec, e[0], int(e[1])), chosen.values()))
    failed = [d for d, code in zip(chosen, codes, strict=True) if code != 0]
    if failed:
        print(f"sudo -n true failed on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
