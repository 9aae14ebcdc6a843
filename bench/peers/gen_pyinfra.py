"""Generate a pyinfra inventory and deploy from umhctl's own render of a blueprint.

    python3 bench/peers/gen_pyinfra.py RENDER_DIR ENDPOINTS.json --out DIR [--artifacts LOCK STORE]

RENDER_DIR is what `umhctl render --out RENDER_DIR` wrote (DIR/<device>/plan-input.json and rootfs/).
ENDPOINTS.json is the file bench/ssh_floor.py reads: {"known_hosts", "identity", "user", "endpoints": {device:
[address, port]}}. Writes DIR/inventory.py and DIR/deploy.py for `pyinfra -y DIR/inventory.py DIR/deploy.py`:

- inventory.py: one host per device, at its address and port, as its user with its key, host keys checked
  strictly against its known_hosts (pyinfra 3: `ssh_known_hosts_file`, `ssh_strict_host_key_checking` "yes" is
  paramiko's RejectPolicy; pyinfra/connectors/ssh.py, connectors/sshuserclient/client.py
  get_missing_host_key_policy);
- deploy.py: per device, one `files.put` per rendered file (source: the file in the render's rootfs, which keeps
  secret-bearing files 0600; its mode, owner and group from plan-input.json), one `files.link` per link, one
  `files.put` per system extension image when `--artifacts` names the lock and the verified store it is in, then
  what umhctl restarts when a file changes (`systemctl restart UNIT`, `update-ssh-keys -u USER`), run only when
  one of the files that restart it changed. Everything as root (`_sudo=True`), as umhctl's apply does.

The generator itself needs no pyinfra: both files are Python source holding plain data (`repr` of dicts and
lists), so they can be checked by compiling them. Running them needs pyinfra 3 (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MARKER = "plan-input.json"  # umhctl/render/output.py
SSH_KEYS_REFRESH = "update-ssh-keys:"  # umhctl/remote/scripts.py REFRESH_SSH_KEYS: not a unit, a command

# The fixed part of deploy.py: it reads DEVICES (generated above it) for the host pyinfra runs it for. host.loop
# keeps operations in loops in one order on every host (pyinfra 3 api/host.py Host.loop).
_DEPLOY_BODY = """
from pyinfra import host
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

desired = DEVICES[host.name]
changes = {}
for f in host.loop(desired["files"]):
    op = files.put(
        name=f"file {f['path']}",
        src=f["src"],
        dest=f["path"],
        mode=f["mode"],
        user=f["owner"],
        group=f["group"],
        add_deploy_dir=False,
        _sudo=True,
    )
    for unit in f["restarts"]:
        changes.setdefault(unit, []).append(op)
for link in host.loop(desired["links"]):
    files.link(name=f"link {link['path']}", path=link["path"], target=link["target"], _sudo=True)
for a in host.loop(desired["artifacts"]):
    files.put(name=f"image {a['path']}", src=a["src"], dest=a["path"], mode="0644", add_deploy_dir=False, _sudo=True)
for unit in host.loop(sorted(changes)):
    if unit.startswith(SSH_KEYS_REFRESH):
        command = "update-ssh-keys -u " + unit[len(SSH_KEYS_REFRESH):]
    else:
        command = "systemctl restart -- " + unit
    server.shell(name=f"restart {unit}", commands=[command], _sudo=True, _if=any_changed(*changes[unit]))
"""


def load_render(render_dir: Path, artifacts: dict[str, Path] | None = None) -> dict[str, dict[str, Any]]:
    """Per device: files (src, path, mode, owner, group, restarts), links (path, target), artifacts (src, path).

    `artifacts` maps an artifact's file name to the verified local copy; without it images are left out (and
    said so by `skipped_artifacts`)."""
    devices: dict[str, dict[str, Any]] = {}
    for marker in sorted(render_dir.glob(f"*/{MARKER}")):
        data = json.loads(marker.read_text())
        rootfs = marker.parent / "rootfs"
        files = []
        for f in data["files"]:
            src = rootfs / f["path"].lstrip("/")
            if not src.is_file():
                raise ValueError(f"{marker}: {f['path']} is not in {rootfs}")
            files.append(
                {
                    "src": str(src),
                    "path": f["path"],
                    "mode": f["mode"],
                    "owner": f["owner"],
                    "group": f["group"],
                    "restarts": list(f["restarts"]),
                }
            )
        images = []
        for a in data["artifacts"]:
            if artifacts is not None:
                if a["name"] not in artifacts:
                    raise ValueError(f"{marker}: no verified copy of {a['name']}")
                images.append({"src": str(artifacts[a["name"]]), "path": a["path"]})
        devices[data["device"]] = {
            "files": files,
            "links": [{"path": link["path"], "target": link["target"]} for link in data["links"]],
            "artifacts": images,
        }
    if not devices:
        raise ValueError(f"{render_dir} holds no umhctl render (no */{MARKER})")
    return devices


def artifact_store(lock: Path, store: Path) -> dict[str, Path]:
    """Artifact name -> its file in a store named by sha256 (umhctl's cache: artifacts/sha256/<digest>)."""
    pinned = json.loads(lock.read_text())["artifacts"]
    found = {}
    for name, entry in pinned.items():
        path = store / entry["sha256"]
        if not path.is_file():
            raise ValueError(f"{name}: {path} does not exist (run `umhctl fetch` first)")
        found[name] = path
    return found


def inventory_source(endpoints: dict[str, Any], devices: list[str]) -> str:
    hosts = []
    for device in devices:
        address, port = endpoints["endpoints"][device]
        data = {
            "ssh_hostname": address,
            "ssh_port": int(port),
            "ssh_user": endpoints["user"],
            "ssh_key": endpoints["identity"],
            "ssh_known_hosts_file": endpoints["known_hosts"],
            "ssh_strict_host_key_checking": "yes",
            # Only the given key: no agent, no ~/.ssh keys, no ~/.ssh/config (as umhctl --sim and the SSH floor).
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            "ssh_config_file": "/dev/null",
        }
        hosts.append((device, data))
    return (
        '"""pyinfra inventory generated by bench/peers/gen_pyinfra.py from a umhctl render."""\n\n'
        f"devices = {hosts!r}\n"
    )


def deploy_source(devices: dict[str, dict[str, Any]]) -> str:
    return (
        '"""pyinfra deploy generated by bench/peers/gen_pyinfra.py from a umhctl render."""\n\n'
        f"SSH_KEYS_REFRESH = {SSH_KEYS_REFRESH!r}\n"
        f"DEVICES = {devices!r}\n" + _DEPLOY_BODY
    )


def generate(
    render_dir: Path, endpoints: dict[str, Any], out: Path, artifacts: dict[str, Path] | None = None
) -> tuple[Path, Path]:
    """Write out/inventory.py and out/deploy.py; devices without an endpoint are an error."""
    devices = load_render(render_dir, artifacts)
    missing = sorted(set(devices) - set(endpoints["endpoints"]))
    if missing:
        raise ValueError(f"no endpoint for {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    inventory = out / "inventory.py"
    deploy = out / "deploy.py"
    inventory.write_text(inventory_source(endpoints, sorted(devices)))
    deploy.write_text(deploy_source(devices))
    return inventory, deploy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("render", type=Path, help="directory `umhctl render --out` wrote")
    parser.add_argument("endpoints", type=Path, help="ENDPOINTS.json (see bench/ssh_floor.py)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--artifacts", nargs=2, type=Path, metavar=("LOCK", "STORE"), help="lock file, sha256 store")
    args = parser.parse_args()
    try:
        store = artifact_store(*args.artifacts) if args.artifacts else None
        inventory, deploy = generate(args.render, json.loads(args.endpoints.read_text()), args.out, store)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"pyinfra -y {inventory} {deploy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
