"""The simulated site's stand-in for the sysext bakery (or a plant's mirror of it): a static HTTP server on the
site's loopback address, serving stand-in images and their SHA256SUMS in the bakery's layout.

SIMULATION PART. There is no internet here and k3s cannot run, so the images are small stand-ins that say
what they stand for; their hashes are pinned in the simulated site's own lock (STATE_DIR/artifacts.lock.json),
never in the site's lock file. Only what was published is served (as a mirror has only what was mirrored): a
version that was never published is a 404, as on a real mirror.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from umhctl.artifacts import Artifact
from umhctl.fsutil import write_atomic

if TYPE_CHECKING:
    import http.server

STANDIN_SIZE = 256 * 1024
URL_FILE = "publisher.url"
DIRECTORY = "publisher"
LOCK_FILE = "artifacts.lock.json"


def standin(filename: str) -> bytes:
    """A deterministic stand-in image for `filename`: a header that says what it is, then filler bytes."""
    header = f"umhctl simulated site: stand-in for {filename}; not a system extension image\n".encode()
    filler = bytearray()
    block = hashlib.sha256(filename.encode()).digest()
    while len(header) + len(filler) < STANDIN_SIZE:
        block = hashlib.sha256(block).digest()
        filler += block
    return header + bytes(filler[: STANDIN_SIZE - len(header)])


def publish(state_dir: Path, artifact: Artifact) -> None:
    """Put the stand-in image and its release's SHA256SUMS (GNU sha256sum format, as the bakery's) in place."""
    root = state_dir / DIRECTORY
    image = root / artifact.filename
    if not image.exists():
        write_atomic(image, standin(artifact.filename), 0o644)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    write_atomic(root / f"{artifact.name}-{artifact.version}" / "SHA256SUMS", f"{digest}  {artifact.filename}\n", 0o644)


def url(state_dir: Path) -> str | None:
    try:
        return (state_dir / URL_FILE).read_text().strip() or None
    except OSError:
        return None


def serve(state_dir: Path, address: str) -> http.server.ThreadingHTTPServer:
    """Start serving STATE_DIR/publisher on ADDRESS (any free port) in a thread; the URL goes to publisher.url."""
    # Imported here: plan and apply of a simulated site read url() and LOCK_FILE, and http.server (with email,
    # ssl, html) would add ~7 ms to each of them.
    import http.server

    class _Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    root = state_dir / DIRECTORY
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer((address, 0), handler)
    threading.Thread(target=server.serve_forever, name="publisher", daemon=True).start()
    write_atomic(state_dir / URL_FILE, f"http://{address}:{server.server_address[1]}\n", 0o644)
    return server
