"""Benchmark: how long rendering the 30-device retrofit example takes (in-process and as a CLI run).

Run from the repository root: `python3 bench/render_site.py [--runs N]`. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from umhctl.blueprint.loader import load_blueprint  # noqa: E402
from umhctl.render import render_site  # noqa: E402
from umhctl.render.output import write_render  # noqa: E402
from umhctl.secrets import SecretStore  # noqa: E402

BLUEPRINT = ROOT / "blueprints" / "retrofit-site.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        secrets = Path(tmp) / "secrets"
        loaded = load_blueprint(BLUEPRINT)
        store = SecretStore.for_blueprint(loaded.blueprint, BLUEPRINT.parent, secrets)
        render_site(loaded, store)  # first run generates host keys and tokens; not what is measured
        load_times, render_times, write_times = [], [], []
        for i in range(args.runs):
            t0 = time.perf_counter()
            loaded = load_blueprint(BLUEPRINT)
            t1 = time.perf_counter()
            renders = render_site(loaded, store)
            t2 = time.perf_counter()
            for r in renders:
                write_render(r, Path(tmp) / f"out{i}")
            t3 = time.perf_counter()
            load_times.append(t1 - t0)
            render_times.append(t2 - t1)
            write_times.append(t3 - t2)
        cli = []
        env = {**os.environ, "UMHCTL_SECRETS_DIR": str(secrets.parent), "PYTHONPATH": str(ROOT)}
        (secrets.parent / loaded.blueprint.metadata.name).mkdir(exist_ok=True)
        for src in secrets.iterdir():
            (secrets.parent / loaded.blueprint.metadata.name / src.name).write_bytes(src.read_bytes())
        for i in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "umhctl", "render", "-f", str(BLUEPRINT), "--out", f"{tmp}/cli{i}"],
                check=True,
                capture_output=True,
                env=env,
            )
            cli.append(time.perf_counter() - t0)
    devices = len(loaded.blueprint.devices)
    files = sum(len(r.state.files) for r in renders)
    print(f"retrofit-site: {devices} devices, {files} files; {args.runs} runs, median (min-max) in ms")
    for name, values in (
        ("load + validate", load_times),
        ("render (in process)", render_times),
        ("write render tree", write_times),
        ("umhctl render (whole CLI run)", cli),
    ):
        ms = [v * 1000 for v in values]
        print(f"  {name:32s} {statistics.median(ms):7.1f} ({min(ms):.1f}-{max(ms):.1f})")


if __name__ == "__main__":
    main()
