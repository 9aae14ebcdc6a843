"""What a secret leak looks like, for the leak tests: each secret value of a store, and every unkeyed digest of it.

A needle is a secret value (each long line of a multi-line one too, so a partial leak is caught) or the first 10
hex characters of its sha256, sha1 or md5 (every longer prefix contains those). Digests are taken of the value
and of the value with a newline, which is how secret files hold it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

PREFIX = 10


def secret_values(store: Path) -> set[str]:
    values: set[str] = set()
    for path in store.iterdir():
        if path.is_file() and not path.name.endswith(".pub") and not path.name.startswith("."):
            text = path.read_text()
            values.add(text.strip())
            values |= {line for line in text.splitlines() if len(line) > 20 and "PRIVATE KEY" not in line}
    return values


def digests(data: bytes) -> set[str]:
    return {h(data).hexdigest()[:PREFIX] for h in (hashlib.sha256, hashlib.sha1, hashlib.md5)}


def needles(values: Iterable[str], secret_files: Iterable[bytes] = ()) -> set[str]:
    """Values and digest prefixes; `secret_files`: whole contents of secret-bearing files, whose plain hashes
    would allow guessing the secrets inside them just as well."""
    found: set[str] = set()
    for value in values:
        found.add(value)
        for form in (value, value + "\n"):
            found |= digests(form.encode())
    for content in secret_files:
        found |= digests(content)
    return found


def leaks(text: str, needles: set[str]) -> list[str]:
    return sorted(n for n in needles if n in text)


def scan(root: Path, needles: set[str], *, skip_private: bool = True) -> dict[str, list[str]]:
    """Files under `root` (0600 ones skipped when `skip_private`) that contain a needle."""
    found = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if skip_private and path.stat().st_mode & 0o777 == 0o600:
            continue
        hits = leaks(path.read_bytes().decode(errors="replace"), needles)
        if hits:
            found[str(path.relative_to(root))] = hits
    return found
