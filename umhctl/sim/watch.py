"""The reboot watcher of a simulated site: `python -m umhctl.sim.watch STATE_DIR`.

`sim up` starts one per site (its pid is in site.json; `sim down` stops it). It polls the devices' reboot
requests (written by the systemctl/reboot stand-in) and lets `process_reboots` handle them, so a device that
runs `sudo systemctl reboot` goes down and comes back by itself, like real hardware. It also serves the site's
stand-in artifact publisher (umhctl.sim.publisher) on the site's base address. It ends when the site is taken
down (site.json disappears) or on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

INTERVAL = 0.1


def watch(state_dir: Path, interval: float = INTERVAL) -> None:
    import json

    from umhctl.sim import publisher
    from umhctl.sim.site import process_reboots

    address = json.loads((state_dir / "site.json").read_text())["base_address"]
    server = publisher.serve(state_dir, address)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and (state_dir / "site.json").exists():
        # Cheap check first: the lock and site.json are only touched when a request is pending.
        if any((state_dir / "devices").glob("*/control/reboot-request")):
            try:
                for name in process_reboots(state_dir):
                    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} rebooted {name}", flush=True)
            except Exception:  # a broken reboot must not end the watcher for the other devices
                traceback.print_exc()
                sys.stderr.flush()
        time.sleep(interval)
    server.shutdown()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m umhctl.sim.watch STATE_DIR", file=sys.stderr)
        return 2
    watch(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
