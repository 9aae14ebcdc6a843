"""The files a blueprint pulls in (dashboards, templates and what they include, secret files, known_hosts): resolved
and confined to the blueprint's repository, and read with bounds.

One resolver for all of them: a path is resolved first (symlinks included) and then checked against the repository
root, so neither '..' nor a symlink leads out. The repository is the git work tree the blueprint is in, or the
blueprint's directory when it is not in git. Reads refuse what is not a regular file (a FIFO would block forever,
a device file never ends) and what is larger than its limit.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from umhctl.errors import UmhctlError

MiB = 1024 * 1024
# A blueprint is text a person writes; the largest example (retrofit-site.yaml, 30 devices) is 43 KB.
MAX_BLUEPRINT = 1 * MiB
# A dashboard travels in a ConfigMap, and Kubernetes refuses a ConfigMap over 1 MiB ("The data stored in a ConfigMap
# cannot exceed 1 MiB", kubernetes.io/docs/concepts/configuration/configmap).
MAX_DASHBOARD = 1 * MiB
MAX_TEMPLATE = 1 * MiB
MAX_SECRET_FILE = 64 * 1024
MAX_KNOWN_HOSTS = 1 * MiB


class RepoFileProblem(UmhctlError):
    """A file the blueprint points at cannot be used: outside the repository, not a regular file, too large."""


class OutsideRepository(RepoFileProblem):
    pass


class TooLarge(RepoFileProblem):
    def __init__(self, what: str, size: int, limit: int) -> None:
        self.sizes = sizes(size, limit)
        super().__init__(f"{what} is too large: {self.sizes}")


def sizes(size: int, limit: int) -> str:
    return f"{_megabytes(size)}, the limit is {_megabytes(limit)}"


def _megabytes(size: int) -> str:
    return f"{size / MiB:.1f} MB" if size >= MiB // 10 else f"{size / 1024:.0f} KB"


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def read_regular(path: Path, what: str, limit: int) -> bytes:
    """The content of the regular file `path`, at most `limit` bytes, or RepoFileProblem.

    Opened with O_NONBLOCK so that a FIFO does not block the open itself, and checked with fstat on the open file,
    so nothing can swap the file between the check and the read. OSError (missing, unreadable) passes through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise RepoFileProblem(f"{what} is {kind}, not a regular file")
        if info.st_size > limit:
            raise TooLarge(what, info.st_size, limit)
        chunks, total = [], 0
        while chunk := os.read(fd, min(limit + 1 - total, MiB)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise TooLarge(what, total, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def repository_root(base_dir: Path) -> Path:
    """The git work tree holding `base_dir` (a '.git' directory, or file for a worktree), else `base_dir`."""
    base_dir = base_dir.resolve()
    return next((p for p in (base_dir, *base_dir.parents) if (p / ".git").exists()), base_dir)


class RepoFiles:
    """Files the blueprint points at, relative to its directory and confined to its repository."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir.resolve()
        self.root = repository_root(self.base_dir)

    def resolve(self, relative: str) -> Path | None:
        """The absolute path with every symlink resolved, or None when it leads out of the repository."""
        if relative.startswith("/"):
            return None
        return self.confined(self.base_dir / relative)

    def confined(self, path: Path) -> Path | None:
        """`path` resolved (symlinks included), or None when the result is outside the repository."""
        resolved = path.resolve()
        return resolved if resolved.is_relative_to(self.root) else None

    def path(self, relative: str, what: str) -> Path:
        """Like `resolve`, but a path outside the repository is an OutsideRepository error."""
        resolved = self.resolve(relative)
        if resolved is None:
            raise OutsideRepository(
                f"{what} '{relative}' is outside the blueprint's repository"
                + ("" if relative.startswith(("/", "..")) else " (through a symlink)"),
                hint=f"keep it inside {self.root}",
            )
        return resolved

    def read(self, relative: str, what: str, limit: int) -> bytes:
        """The content of a repository file: confined, a regular file, at most `limit` bytes."""
        path = self.path(relative, what)
        try:
            return read_regular(path, f"{what} '{relative}'", limit)
        except FileNotFoundError:
            raise RepoFileProblem(f"{what} '{relative}' does not exist") from None
        except OSError as exc:
            raise RepoFileProblem(f"cannot read {what} '{relative}': {exc.strerror}") from None

    def git(self, *args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
