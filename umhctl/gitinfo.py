"""Which commit of the blueprint repository is being applied, whether it has uncommitted changes, and by whom.

Plain `git` commands: quick, and all that apply needs (gitpython arrives with the git-workflow commands).
"""

from __future__ import annotations

import getpass
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BlueprintVersion:
    commit: str | None  # None: the blueprint is not in a git repository (or it has no commit yet)
    dirty: bool  # uncommitted changes in the blueprint's directory (new files included)
    path: str  # the blueprint's path inside the repository

    def describe(self) -> str:
        if self.commit is None:
            return "not in git"
        return self.commit[:12] + (" + uncommitted changes" if self.dirty else "")


def _git(directory: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def blueprint_version(blueprint: Path) -> BlueprintVersion:
    directory = blueprint.resolve().parent
    top = _git(directory, "rev-parse", "--show-toplevel")
    if top is None:
        return BlueprintVersion(None, True, blueprint.name)
    root = Path(top.strip())
    commit = _git(directory, "rev-parse", "--verify", "-q", "HEAD")
    status = _git(root, "status", "--porcelain", "--", str(directory.relative_to(root) or "."))
    return BlueprintVersion(
        commit.strip() if commit else None,
        bool(status and status.strip()) or commit is None,
        str(blueprint.resolve().relative_to(root)),
    )


def operator() -> str:
    """Who is applying: the git identity if there is one, else user@host."""
    name = (_git(Path.cwd(), "config", "user.name") or "").strip()
    email = (_git(Path.cwd(), "config", "user.email") or "").strip()
    if name:
        return f"{name} <{email}>" if email else name
    return f"{getpass.getuser()}@{socket.gethostname()}"


def commit_file(path: Path, message: str) -> str | None:
    """Commit one file (e.g. known_hosts after a host-key rotation); the new commit, or None outside git."""
    directory = path.resolve().parent
    if _git(directory, "rev-parse", "--show-toplevel") is None:
        return None
    if (
        _git(directory, "add", "--", path.name) is None
        or _git(directory, "commit", "-q", "-m", message, "--", path.name) is None
    ):
        return None
    commit = _git(directory, "rev-parse", "HEAD")
    return commit.strip() if commit else None
