"""Ignition spec 3.3.0 (and its Butane flatcar 1.0.0 twin) from a device's desired state.

3.3.0 is what every Flatcar channel and Debian's ignition-validate accept. Built as data and serialized with
json; what only first boot does (the core user's keys, remote downloads) is added here.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from umhctl.blueprint.model import SiteBlueprint
from umhctl.render.desired import DesiredState, File
from umhctl.render.yamltext import Octal, to_yaml

IGNITION_VERSION = "3.3.0"


def _data_url(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return "data:;base64," + base64.b64encode(content).decode("ascii")
    # Percent-encoded text keeps small config files readable in the JSON; binary goes base64.
    return "data:," + quote(text, safe="")


def _owner(f: File) -> dict[str, Any]:
    return {"user": {"name": f.owner}, "group": {"name": f.group}} if (f.owner, f.group) != ("root", "root") else {}


def ignition_config(bp: SiteBlueprint, state: DesiredState) -> dict[str, Any]:
    files: list[dict[str, Any]] = [
        {"path": f.path, "mode": f.mode, "overwrite": True, "contents": {"source": _data_url(f.content)}, **_owner(f)}
        for f in state.files
    ]
    files += [
        {"path": r.path, "mode": r.mode, "overwrite": True, "contents": {"source": r.source}}
        for r in state.remote_files
    ]
    files.sort(key=lambda entry: entry["path"])
    config: dict[str, Any] = {
        "ignition": {"version": IGNITION_VERSION},
        "passwd": {"users": [{"name": bp.access.user, "sshAuthorizedKeys": list(bp.access.authorized_keys)}]},
        "storage": {
            "files": files,
            "links": [
                {"path": link.path, "target": link.target, "hard": False, "overwrite": True} for link in state.links
            ],
        },
    }
    return config


def ignition_json(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=False) + "\n"


def offline_variant(config: dict[str, Any]) -> dict[str, Any]:
    """The config with internet downloads replaced by empty files.

    Only for running the real Ignition binary where there is no internet (tests, simulated devices): everything
    else stays identical. Never used for a real device.
    """
    result: dict[str, Any] = json.loads(json.dumps(config))
    for entry in result["storage"]["files"]:
        if not entry["contents"]["source"].startswith("data:"):
            entry["contents"] = {"source": "data:,"}
    return result


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
    files += [
        {"path": r.path, "mode": Octal(r.mode), "overwrite": True, "contents": {"source": r.source}}
        for r in state.remote_files
    ]
    files.sort(key=lambda entry: entry["path"])
    document: dict[str, Any] = {
        "variant": "flatcar",
        "version": "1.0.0",
        "passwd": {"users": [{"name": bp.access.user, "ssh_authorized_keys": list(bp.access.authorized_keys)}]},
        "storage": {
            "files": files,
            "links": [
                {"path": link.path, "target": link.target, "hard": False, "overwrite": True} for link in state.links
            ],
        },
    }
    return to_yaml(document)
