"""`umhctl diff`: what a change to the site repository changes on each device, without SSH and without secrets.

Both sides are rendered from git objects (`git archive REV` into a private temp dir; the working tree is never
touched) with RedactedSecrets: secret values are placeholders on both sides, so a secret-bearing file still shows
as changed when its other content changes, and never shows a value. Compared per device: files (content, mode,
owner; the units each restarts), links and pinned artifacts.

Revisions, as `git diff` takes them: none = HEAD → working tree; one = REV → working tree; two = REV1 → REV2.
"""

from __future__ import annotations

import difflib
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umhctl.errors import BlueprintInvalid, BlueprintMissing, UmhctlError

if TYPE_CHECKING:
    from umhctl.render.desired import DesiredState

WORKTREE = "working tree"
_MAX_DIFF_LINES = 400  # per file: a PR comment stays readable; the rest is summarised


@dataclass(frozen=True)
class Change:
    kind: str  # "file", "link" or "artifact"
    path: str
    change: str  # "added", "removed" or "changed"
    secret: bool = False  # holds a secret: content never shown
    details: list[str] = field(default_factory=list)  # "mode 0644 → 0600", "target a → b", ...
    diff: str | None = None  # unified diff of a text file's content (never for a secret-bearing file)
    restarts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "change": self.change,
            "secret": self.secret,
            "details": self.details,
            "diff": self.diff,
            "restarts": self.restarts,
        }


@dataclass(frozen=True)
class DeviceDiff:
    device: str
    status: str  # "added", "removed", "changed" or "unchanged"
    changes: list[Change]

    def count(self, change: str) -> int:
        return sum(1 for c in self.changes if c.change == change)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "status": self.status, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class DiffResult:
    old: str  # as given: a revision or "working tree"
    new: str
    old_commit: str | None
    new_commit: str | None
    blueprint: str  # path inside the repository
    devices: list[DeviceDiff]

    command = "diff"
    ok = True

    @property
    def changed(self) -> list[DeviceDiff]:
        return [d for d in self.devices if d.status != "unchanged"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": {"rev": self.old, "commit": self.old_commit},
            "new": {"rev": self.new, "commit": self.new_commit},
            "blueprint": self.blueprint,
            "devices": [d.to_dict() for d in self.devices],
        }


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=60)


def _commit(repo: Path, rev: str) -> str:
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if done.returncode != 0:
        raise UmhctlError(f"unknown revision '{rev}' in {repo}", hint="name a commit, branch or tag: git log --oneline")
    return done.stdout.decode().strip()


def _extract(repo: Path, commit: str, subdir: str, into: Path) -> None:
    """The commit's files under `subdir`, read from git objects into `into` (git archive | tar)."""
    done = _git(repo, "archive", "--format=tar", commit, "--", subdir or ".")
    if done.returncode != 0:
        if b"did not match any files" in done.stderr:
            return  # the directory did not exist yet at that commit: an empty site
        raise UmhctlError(f"git archive {commit[:12]} failed: {done.stderr.decode(errors='replace').strip()}")
    tar = into / "archive.tar"
    tar.write_bytes(done.stdout)
    with tarfile.open(tar) as archive:
        archive.extractall(into / "tree", filter="data")
    tar.unlink()


def _states(blueprint: Path, label: str) -> dict[str, DesiredState]:
    """Every device's desired state, rendered with placeholders for secrets; {} when there is no blueprint."""
    from umhctl.artifacts import site_source
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.render import render_device
    from umhctl.resolver import RedactedSecrets

    if not blueprint.exists():
        return {}
    try:
        loaded = load_blueprint(blueprint)
    except BlueprintInvalid as exc:
        first = exc.diagnostics[0].message if exc.diagnostics else ""
        raise UmhctlError(
            f"the blueprint in {label} is invalid ({first})", hint="diff compares valid blueprints: fix it first"
        ) from None
    except BlueprintMissing:
        return {}
    source = site_source(loaded.blueprint, loaded.path)
    secrets = RedactedSecrets()
    # redact=False: secret files keep their non-secret content (placeholders stand in for the values), so a
    # change around a secret still shows as a change; their content is never printed (Change.secret).
    return {d.name: render_device(loaded, d, secrets, source).state for d in loaded.blueprint.devices}


def _text(data: bytes) -> list[str] | None:
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def _file_changes(old: DesiredState | None, new: DesiredState | None, labels: tuple[str, str]) -> list[Change]:
    before = {f.path: f for f in (old.files if old else [])}
    after = {f.path: f for f in (new.files if new else [])}
    changes = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        secret = bool((a and a.secret) or (b and b.secret))
        if a is None or b is None:
            f = b or a
            assert f is not None
            kind = "added" if a is None else "removed"
            text = None if secret else _text(f.content)
            diff = None
            if text is not None:
                diff = _unified([] if a is None else text, text if a is None else [], path, labels)
            changes.append(
                Change("file", path, kind, secret, [f"mode {f.mode:04o} {f.owner}:{f.group}"], diff, list(f.restarts))
            )
            continue
        details = []
        if a.mode != b.mode:
            details.append(f"mode {a.mode:04o} → {b.mode:04o}")
        if (a.owner, a.group) != (b.owner, b.group):
            details.append(f"owner {a.owner}:{a.group} → {b.owner}:{b.group}")
        diff = None
        if a.content != b.content:
            old_text, new_text = _text(a.content), _text(b.content)
            if secret:
                details.append("content changed (holds a secret: not shown)")
            elif old_text is None or new_text is None:
                details.append(f"binary content sha256 {a.sha256[:12]} → {b.sha256[:12]}")
            else:
                diff = _unified(old_text, new_text, path, labels)
        if details or diff:
            changes.append(
                Change("file", path, "changed", secret, details, diff, sorted(set(a.restarts) | set(b.restarts)))
            )
    return changes


def _unified(old: list[str], new: list[str], path: str, labels: tuple[str, str]) -> str:
    lines = list(difflib.unified_diff(old, new, f"{labels[0]}:{path}", f"{labels[1]}:{path}", n=3))
    if len(lines) > _MAX_DIFF_LINES:
        lines = [*lines[:_MAX_DIFF_LINES], f"... {len(lines) - _MAX_DIFF_LINES} more diff lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _other_changes(old: DesiredState | None, new: DesiredState | None) -> list[Change]:
    changes = []
    links = ({x.path: x for x in (old.links if old else [])}, {x.path: x for x in (new.links if new else [])})
    for path in sorted(set(links[0]) | set(links[1])):
        a, b = links[0].get(path), links[1].get(path)
        if a is None or b is None:
            link = b or a
            assert link is not None
            changes.append(Change("link", path, "added" if a is None else "removed", details=[f"→ {link.target}"]))
        elif a.target != b.target:
            changes.append(
                Change("link", path, "changed", details=[f"target {a.target} → {b.target}"], restarts=list(b.restarts))
            )
    arts = ({x.path: x for x in (old.artifacts if old else [])}, {x.path: x for x in (new.artifacts if new else [])})
    for path in sorted(set(arts[0]) | set(arts[1])):
        a2, b2 = arts[0].get(path), arts[1].get(path)
        if a2 is None or b2 is None:
            art = b2 or a2
            assert art is not None
            changes.append(Change("artifact", path, "added" if a2 is None else "removed", details=[art.name]))
        elif (a2.name, a2.sha256) != (b2.name, b2.sha256):
            changes.append(Change("artifact", path, "changed", details=[f"{a2.name} → {b2.name}"]))
    return changes


def compare(old: dict[str, DesiredState], new: dict[str, DesiredState], labels: tuple[str, str]) -> list[DeviceDiff]:
    devices = []
    for name in [*new, *(n for n in old if n not in new)]:
        a, b = old.get(name), new.get(name)
        changes = _file_changes(a, b, labels) + _other_changes(a, b)
        changes.sort(key=lambda c: c.path)
        status = "added" if a is None else "removed" if b is None else "changed" if changes else "unchanged"
        devices.append(DeviceDiff(name, status, changes))
    return devices


def site_diff(blueprint: Path, old_rev: str | None = None, new_rev: str | None = None) -> DiffResult:
    """The desired-state difference per device between two revisions of the blueprint's repository."""
    if not blueprint.exists() and old_rev is None:
        raise BlueprintMissing(str(blueprint), [])
    directory = blueprint.resolve().parent if blueprint.exists() else blueprint.absolute().parent
    top = _git(directory, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise UmhctlError(
            f"{blueprint} is not in a git repository: diff compares commits",
            hint="git init && git add -A && git commit",
        )
    repo = Path(top.stdout.decode().strip())
    relative = (directory / blueprint.name).relative_to(repo)
    old_label = old_rev or "HEAD"
    old_commit = _commit(repo, old_label)
    new_commit = _commit(repo, new_rev) if new_rev is not None else None
    with tempfile.TemporaryDirectory(prefix="umhctl-diff-") as tmp:
        sides = []
        for label, commit in ((old_label, old_commit), (new_rev or WORKTREE, new_commit)):
            if commit is None:
                sides.append(_states(blueprint, WORKTREE))
                continue
            into = Path(tmp) / commit
            into.mkdir(exist_ok=True)
            _extract(repo, commit, str(relative.parent) if str(relative.parent) != "." else "", into)
            sides.append(_states(into / "tree" / relative, label))
    labels = (old_label, new_rev or WORKTREE)
    return DiffResult(labels[0], labels[1], old_commit, new_commit, str(relative), compare(sides[0], sides[1], labels))
