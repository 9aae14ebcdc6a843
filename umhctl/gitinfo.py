"""Which commit of the blueprint repository is being applied, whether it has uncommitted changes, and by whom.

Plain `git` commands, as in all repository work (appliedrefs, sitediff): measured against GitPython, `import git`
alone costs ~150 ms, rev-parse is 2.6 ms via git vs 3.4 ms, update-ref the same (GitPython runs git for it);
only single-blob reads are faster there, and diff reads a revision with one `git archive` (README, Working as a
team).
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
    dirty: bool  # uncommitted changes in a file the render reads (new files included)
    path: str  # the blueprint's path inside the repository
    in_git: bool = True
    changed: tuple[str, ...] = ()  # the render inputs with uncommitted changes, relative to the repository

    def describe(self) -> str:
        if not self.in_git:
            return "not in a git repository"
        if self.commit is None:
            return "no commit yet"
        return self.commit[:12] + (" + uncommitted changes" if self.dirty else "")

    def refusal(self, blueprint: Path, verb: str) -> tuple[str, str]:
        """Why a dirty blueprint is refused, naming the files, and the way out."""
        if not self.in_git:
            return (
                f"{blueprint} is not in a git repository: umhctl records the commit of what it does, and there is none",
                "put the site in git (git init && git add -A && git commit -m 'Site'), or pass --allow-dirty",
            )
        if self.commit is None:
            return (f"the repository of {blueprint} has no commit yet", "commit the site first, or pass --allow-dirty")
        files = ", ".join(self.changed) or "files the render reads"
        return (
            f"uncommitted changes in {files}: refusing to {verb} what is not in git",
            f"commit them (git add {' '.join(self.changed)} && git commit), or pass --allow-dirty (recorded as dirty)",
        )


def _git(directory: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def blueprint_version(blueprint: Path, inputs: list[Path] | None = None) -> BlueprintVersion:
    """The commit the blueprint is at, and whether the files the render reads (`inputs`; default: the
    blueprint's whole directory) have uncommitted changes. Other files of the repository do not count."""
    directory = blueprint.resolve().parent
    top = _git(directory, "rev-parse", "--show-toplevel")
    if top is None:
        return BlueprintVersion(None, True, blueprint.name, in_git=False)
    root = Path(top.strip())
    commit = _git(directory, "rev-parse", "--verify", "-q", "HEAD")
    paths = [str(p.resolve().relative_to(root)) for p in inputs if p.resolve().is_relative_to(root)] if inputs else []
    status = _git(
        root,
        "status",
        "--porcelain",
        "--untracked-files=all",
        "--",
        *(paths or [str(directory.relative_to(root) or ".")]),
    )
    changed = tuple(sorted({line[3:].strip() for line in (status or "").splitlines() if line.strip()}))
    return BlueprintVersion(
        commit.strip() if commit else None,
        bool(changed) or commit is None,
        str(blueprint.resolve().relative_to(root)),
        changed=changed,
    )


def operator() -> str:
    """Who is applying: the git identity if there is one, else user@host."""
    name = (_git(Path.cwd(), "config", "user.name") or "").strip()
    email = (_git(Path.cwd(), "config", "user.email") or "").strip()
    if name:
        return f"{name} <{email}>" if email else name
    return f"{getpass.getuser()}@{socket.gethostname()}"


def commit_file(path: Path, message: str, also: tuple[Path, ...] = ()) -> str | None:
    """Commit one file (e.g. known_hosts after a host-key rotation) and the files in `also` that exist or are
    tracked (the rotated key in the encrypted store); the new commit, or None outside git."""
    directory = path.resolve().parent
    if _git(directory, "rev-parse", "--show-toplevel") is None:
        return None
    extra = [str(p.resolve()) for p in also if p.exists() or _git(directory, "ls-files", "--error-unmatch", str(p))]
    if (
        _git(directory, "add", "--", path.name, *extra) is None
        or _git(directory, "commit", "-q", "-m", message, "--", path.name, *extra) is None
    ):
        return None
    commit = _git(directory, "rev-parse", "HEAD")
    return commit.strip() if commit else None
