"""Ignition spec 3.3.0 (and its Butane flatcar 1.0.0 twin) from a device's desired state.

3.3.0 is what every Flatcar channel and Debian's ignition-validate accept. Built as data and serialized with
json; what only first boot does (the core user's keys, remote downloads) is added here.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from umhctl.blueprint.model import SiteBlueprint
from umhctl.errors import UmhctlError
from umhctl.render.desired import ArtifactFile, DesiredState, File, Link
from umhctl.render.yamltext import Octal, to_yaml

IGNITION_VERSION = "3.3.0"
HTTP_TOTAL_SECONDS = 900  # a 70 MB image over a slow plant link


@functools.lru_cache(maxsize=4096)
def _data_url(content: bytes) -> str:
    # Memoized: most files are the same on every device of a site (units, k3s config), and a 500-device render
    # would encode each of them 500 times.
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return "data:;base64," + base64.b64encode(content).decode("ascii")
    # Percent-encoded text keeps small config files readable in the JSON; binary goes base64.
    return "data:," + percent_encode(text)


# RFC 3986 unreserved characters stay, every other byte of the UTF-8 is %XX.
_PERCENT = [chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_.~-") else f"%{b:02X}" for b in range(256)]


def percent_encode(text: str) -> str:
    """What `urllib.parse.quote(text, safe="")` returns, by table lookup in C instead of a Python step per byte."""
    return "".join(map(_PERCENT.__getitem__, text.encode()))


def _owner(f: File) -> dict[str, Any]:
    return {"user": {"name": f.owner}, "group": {"name": f.group}} if (f.owner, f.group) != ("root", "root") else {}


def ignition_config(bp: SiteBlueprint, state: DesiredState) -> dict[str, Any]:
    files: list[dict[str, Any]] = [
        {"path": f.path, "mode": f.mode, "overwrite": True, "contents": {"source": _data_url(f.content)}, **_owner(f)}
        for f in state.files
    ]
    files += [_remote(a) for a in state.artifacts if a.url]
    files.sort(key=lambda entry: entry["path"])
    ignition: dict[str, Any] = {"version": IGNITION_VERSION}
    if any(a.url for a in state.artifacts):
        # Without a total timeout Ignition retries a fetch that cannot connect forever (coreos/ignition
        # internal/resource/url.go): with one, a device without its mirror stops in the emergency shell instead.
        ignition["timeouts"] = {"httpTotal": HTTP_TOTAL_SECONDS}
    config: dict[str, Any] = {
        "ignition": ignition,
        "passwd": {"users": [{"name": bp.access.user, "sshAuthorizedKeys": list(bp.access.authorized_keys)}]},
        "storage": {
            "files": files,
            "links": [
                {"path": link.path, "target": link.target, "hard": False, "overwrite": True}
                for link in _first_boot_links(state)
            ],
        },
    }
    return config


def _first_boot_links(state: DesiredState) -> list[Link]:
    """Links first boot creates: not those to images it does not bring (apply uploads the image and links it,
    so systemd-sysext never meets a dangling /etc/extensions/<name>.raw)."""
    undelivered = {a.path for a in state.artifacts if not a.url and not a.boot_link}
    return [link for link in state.links if link.target not in undelivered]


def _remote(artifact: ArtifactFile) -> dict[str, Any]:
    """A file first boot downloads: always with the lock file's hash, which Ignition checks before writing
    (a mismatch fails the boot; Ignition spec 3.3.0 `verification.hash`, `sha256-<hex>`)."""
    if artifact.sha256 is None:
        raise UmhctlError(
            f"{artifact.name} is not pinned in the lock file: first boot would download it unverified",
            hint="record its hash with `umhctl lock`",
        )
    return {
        "path": artifact.path,
        "mode": 0o644,
        "overwrite": True,
        "contents": {"source": artifact.url, "verification": {"hash": f"sha256-{artifact.sha256}"}},
    }


def ignition_json(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=False) + "\n"


def butane_yaml(bp: SiteBlueprint, state: DesiredState) -> str:
    """The same first-boot config as Butane (variant flatcar 1.0.0 = Ignition 3.3.0), for humans to review."""
    files: list[dict[str, Any]] = []
    for f in state.files:
        entry: dict[str, Any] = {"path": f.path, "mode": Octal(f.mode), "overwrite": True}
        try:
            entry["contents"] = {"inline": f.content.decode("utf-8")}
        except UnicodeDecodeError:
            entry["contents"] = {"source": _data_url(f.content)}
        if (f.owner, f.group) != ("root", "root"):
            entry["user"] = {"name": f.owner}
            entry["group"] = {"name": f.group}
        files.append(entry)
    for a in state.artifacts:
        if a.url:
            remote = _remote(a)
            files.append({**remote, "mode": Octal(0o644)})
    files.sort(key=lambda entry: entry["path"])
    document: dict[str, Any] = {
        "variant": "flatcar",
        "version": "1.0.0",
        "passwd": {"users": [{"name": bp.access.user, "ssh_authorized_keys": list(bp.access.authorized_keys)}]},
        "storage": {
            "files": files,
            "links": [
                {"path": link.path, "target": link.target, "hard": False, "overwrite": True}
                for link in _first_boot_links(state)
            ],
        },
    }
    return to_yaml(document)
