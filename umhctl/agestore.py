"""Secrets kept in the site repository, encrypted with age (the pyrage bindings) to the site's recipients.

Layout, beside the blueprint (committed to git, so every operator and CI job renders the same values):

    secrets/<site>/recipients.txt      who can decrypt: one age recipient per line
    secrets/<site>/<name>.age          one secret, encrypted to every recipient (age binary format)
    secrets/<site>/<name>.pub          a public half (SSH host keys), plain: known_hosts is built from it

recipients.txt follows age's recipients-file format (`age -R`: one recipient per line, `#` comments, blank lines
ignored; str4d/rage age/src/cli_common/recipients.rs, FiloSottile/age cmd/age/parse.go), so `age -R
secrets/<site>/recipients.txt` reads it too. A recipient is an age X25519 key (age1...) or an SSH ed25519/RSA
public key, both of which age encrypts to natively.

Decryption needs a private key on disk: an age identity file (AGE-SECRET-KEY-1... lines) or an unencrypted SSH
private key. ssh-agent cannot help: age has no agent protocol, it must read the key itself.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umhctl.errors import UmhctlError
from umhctl.fsutil import write_atomic

if TYPE_CHECKING:
    from collections.abc import Sequence

RECIPIENTS = "recipients.txt"
IDENTITY_ENV = "UMHCTL_AGE_IDENTITY"
_SSH_TYPES = ("ssh-ed25519", "ssh-rsa")
IDENTITY_HINT = (
    f"point ${IDENTITY_ENV} at an age identity file (AGE-SECRET-KEY-1...) or an unencrypted SSH private key whose "
    "public key is in the site's recipients, or pass -i KEY; ssh-agent cannot decrypt age files (age must read the "
    "key itself)"
)


def site_secrets_dir(blueprint_dir: Path, site: str) -> Path:
    return blueprint_dir / "secrets" / site


@dataclass(frozen=True)
class Recipient:
    key: str  # "age1..." or "ssh-ed25519 AAAA..." (type and data, no comment)
    comment: str = ""  # who it is: the `#` line above it (age keys) or the SSH key's own comment


def parse_key(text: str) -> Recipient:
    """A public key as an operator pastes it (age1..., or an SSH public key line with its comment), checked by age."""
    words = text.strip().split()
    if not words:
        raise UmhctlError("an empty public key", hint="pass an age1... key or an SSH public key (ssh-ed25519 ...)")
    if words[0] in _SSH_TYPES and len(words) >= 2:
        recipient = Recipient(f"{words[0]} {words[1]}", " ".join(words[2:]))
    elif words[0].startswith("age1") and len(words) == 1:
        recipient = Recipient(words[0])
    else:
        raise UmhctlError(
            f"not an age recipient: {text.strip()[:60]}",
            hint="an age X25519 key (age1...) or an SSH ed25519/RSA public key (ssh-ed25519 AAAA... you@host)",
        )
    _encrypter(recipient)  # age's own parser decides: a typo fails here, not at the next encryption
    return recipient


def _encrypter(recipient: Recipient) -> Any:
    import pyrage

    try:
        if recipient.key.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(recipient.key)
        return pyrage.ssh.Recipient.from_str(recipient.key)
    except pyrage.RecipientError as exc:
        raise UmhctlError(f"age does not accept the recipient {recipient.key[:40]}...: {exc}") from None


def read_recipients(path: Path) -> list[Recipient]:
    recipients: list[Recipient] = []
    comment = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            comment = ""
        elif line.startswith("#"):
            comment = line.lstrip("#").strip()
        else:
            parsed = parse_key(line)
            recipients.append(Recipient(parsed.key, comment or parsed.comment))
            comment = ""
    return recipients


def recipients_text(recipients: Sequence[Recipient]) -> str:
    lines = [
        "# Who can decrypt this site's secrets (age recipients file: `age -R` reads it too).",
        "# Change it with `umhctl secrets add-recipient` / `remove-recipient`: they re-encrypt every secret.",
    ]
    for r in recipients:
        lines += ["", f"# {r.comment}" if r.comment else "#", r.key]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Identities:
    keys: list[Any]  # pyrage identities
    tried: list[str]  # where umhctl looked, for the error message
    problems: list[str] = field(default_factory=list)  # keys found but unusable (passphrase, format)


def load_identities(explicit: Path | None = None, login_key: Path | None = None) -> Identities:
    """The operator's private keys: `secrets -i KEY` and $UMHCTL_AGE_IDENTITY when given, else ~/.ssh/id_ed25519
    and ~/.ssh/id_rsa; the SSH login key of plan/apply/reset/status (-i there) is tried besides. age tries each
    against each file's recipients, so one matching key is enough."""
    candidates = identity_candidates(explicit)
    if login_key is not None and login_key not in candidates:
        candidates.insert(0, login_key)
    keys: list[Any] = []
    problems: list[str] = []
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        try:
            keys += identities_from(data)
        except UmhctlError as exc:
            problems.append(f"{path}: {exc}")
    return Identities(keys, [str(p) for p in candidates], problems)


def identity_candidates(explicit: Path | None = None) -> list[Path]:
    given = [p for p in (explicit, Path(os.environ[IDENTITY_ENV]) if os.environ.get(IDENTITY_ENV) else None) if p]
    return given or [Path.home() / ".ssh" / "id_ed25519", Path.home() / ".ssh" / "id_rsa"]


def identities_from(data: bytes) -> list[Any]:
    """The identities in an age identity file (AGE-SECRET-KEY-1... lines) or an SSH private key file."""
    import pyrage

    text = data.decode("utf-8", errors="replace")
    try:
        if "AGE-SECRET-KEY-" in text:
            # age identity files: one key per line, `#` comments (age's parse.go / rage's identity file reader).
            return [
                pyrage.x25519.Identity.from_str(line.strip())
                for line in text.splitlines()
                if line.strip().startswith("AGE-SECRET-KEY-")
            ]
        if "PRIVATE KEY-----" in text:
            return [pyrage.ssh.Identity.from_buffer(data)]
    except pyrage.IdentityError as exc:
        reason = "it is passphrase-protected, and age cannot ask ssh-agent" if "decrypted" in str(exc) else str(exc)
        raise UmhctlError(f"unusable key: {reason}") from None
    raise UmhctlError("neither an age identity nor an SSH private key")


def public_of(data: bytes, path: Path) -> Recipient:
    """The recipient that belongs to a private key file: the age public key, or the SSH key's .pub beside it."""
    import pyrage

    text = data.decode("utf-8", errors="replace")
    if "AGE-SECRET-KEY-" in text:
        line = next(x.strip() for x in text.splitlines() if x.strip().startswith("AGE-SECRET-KEY-"))
        return Recipient(str(pyrage.x25519.Identity.from_str(line).to_public()), path.name)
    pub = path.with_name(path.name + ".pub")
    if pub.exists():
        return parse_key(pub.read_text())
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if derived.returncode != 0:
        raise UmhctlError(f"cannot read the public half of {path}: {derived.stderr.strip()}")
    return parse_key(derived.stdout)


@dataclass
class AgeVault:
    """One site's encrypted secrets directory. Decrypted values stay in memory, never on disk."""

    directory: Path
    identity: Path | None = None
    login_key: Path | None = None  # the SSH key plan/apply log in with: tried as well
    _plain: dict[str, str] = field(default_factory=dict)
    _identities: Identities | None = None

    @property
    def recipients_file(self) -> Path:
        return self.directory / RECIPIENTS

    def recipients(self) -> list[Recipient]:
        return read_recipients(self.recipients_file)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.age"

    def names(self) -> list[str]:
        return sorted(p.name.removesuffix(".age") for p in self.directory.glob("*.age"))

    def read(self, name: str) -> str | None:
        if name in self._plain:
            return self._plain[name]
        path = self.path(name)
        if not path.exists():
            return None
        value = self._decrypt(path)
        self._plain[name] = value
        return value

    def write(self, name: str, value: str, recipients: Sequence[Recipient] | None = None) -> None:
        import pyrage

        targets = [_encrypter(r) for r in (recipients if recipients is not None else self.recipients())]
        if not targets:
            raise UmhctlError(f"{self.recipients_file} names no recipient: nobody could decrypt a secret")
        write_atomic(self.path(name), pyrage.encrypt(value.encode(), targets), 0o644)
        self._plain[name] = value

    def read_public(self, name: str) -> str | None:
        path = self.directory / f"{name}.pub"
        return path.read_text() if path.exists() else None

    def write_public(self, name: str, value: str) -> None:
        write_atomic(self.directory / f"{name}.pub", value, 0o644)

    def move(self, name: str, new: str) -> None:
        for old, target in ((self.path(name), self.path(new)), (self.directory / f"{name}.pub", None)):
            if old.exists():
                os.replace(old, target or self.directory / f"{new}.pub")
        if name in self._plain:
            self._plain[new] = self._plain.pop(name)

    def reencrypt(self, recipients: Sequence[Recipient]) -> list[str]:
        """Every secret encrypted anew to exactly `recipients` (all decrypted first: nothing half-done)."""
        values = {name: self.read(name) for name in self.names()}
        for name, value in values.items():
            assert value is not None
            self.write(name, value, recipients)
        return sorted(values)

    @contextmanager
    def locked(self) -> Iterator[None]:
        # A lock on the directory itself (flock works on a directory's descriptor): no lock file in the repository.
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _decrypt(self, path: Path) -> str:
        import pyrage

        if self._identities is None:
            self._identities = load_identities(self.identity, self.login_key)
        ids = self._identities
        if not ids.keys:
            found = "; ".join(ids.problems) or "none of " + ", ".join(ids.tried) + " exists"
            raise UmhctlError(f"no key to decrypt {path} with: {found}", hint=IDENTITY_HINT)
        try:
            return bytes(pyrage.decrypt(path.read_bytes(), ids.keys)).decode()
        except pyrage.DecryptError as exc:
            raise UmhctlError(
                f"cannot decrypt {path} with {', '.join(ids.tried)}: {exc} (your key is not one of the site's "
                "recipients, or was removed)",
                hint="a colleague who can decrypt runs `umhctl secrets add-recipient 'YOUR PUBLIC KEY'` and commits; "
                + IDENTITY_HINT,
            ) from None
