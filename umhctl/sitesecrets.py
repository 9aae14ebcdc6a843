"""`umhctl secrets ...`: move a site's generated secrets into its repository (age-encrypted), manage who can read
them, rotate one, list them. Library functions returning results; the CLI (umhctl.cli.secrets) only shows them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umhctl.blueprint.loader import load_blueprint
from umhctl.errors import UmhctlError
from umhctl.hints import Hints
from umhctl.secrets import LocalBackend, SecretStore, default_store_dir

if TYPE_CHECKING:
    from umhctl.agestore import AgeVault, Recipient


@dataclass(frozen=True)
class SecretsInitResult:
    directory: Path
    recipients: list[Recipient]
    imported: list[str]  # values taken over from the local store (the site keeps its host keys)
    generated: list[str]
    local_store: Path

    command = "secrets init"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "recipients": [{"key": r.key, "comment": r.comment} for r in self.recipients],
            "imported": self.imported,
            "generated": self.generated,
            "local_store": str(self.local_store),
        }


@dataclass
class RecipientsResult:
    command: str
    directory: Path
    recipients: list[Recipient]
    changed: Recipient
    reencrypted: list[str]
    exposed: list[str] = field(default_factory=list)  # remove-recipient: what the removed key could read

    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "recipients": [{"key": r.key, "comment": r.comment} for r in self.recipients],
            ("added" if self.command.endswith("add-recipient") else "removed"): {
                "key": self.changed.key,
                "comment": self.changed.comment,
            },
            "reencrypted": self.reencrypted,
            "rotate": self.exposed,
        }


@dataclass(frozen=True)
class SecretEntry:
    name: str  # as `rotate` takes it
    source: str  # "generate", "env", "file"
    store: str  # "encrypted", "local", "environment", "file"
    present: bool  # generated: already generated; env: set; file: readable
    detail: str = ""  # the variable or file

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "store": self.store,
            "present": self.present,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SecretsListResult:
    directory: Path
    encrypted: bool
    entries: list[SecretEntry]
    recipients: list[Recipient]

    command = "secrets list"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "encrypted": self.encrypted,
            "recipients": [{"key": r.key, "comment": r.comment} for r in self.recipients],
            "secrets": [e.to_dict() for e in self.entries],
        }


@dataclass(frozen=True)
class RotateResult:
    name: str
    directory: Path
    encrypted: bool

    command = "secrets rotate"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "directory": str(self.directory), "encrypted": self.encrypted}


def _store(file: Path, identity: Path | None) -> SecretStore:
    loaded = load_blueprint(file)
    return SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent, identity=identity)


def _vault(store: SecretStore, hints: Hints) -> AgeVault:
    from umhctl.agestore import AgeVault

    if not isinstance(store.backend, AgeVault):
        raise UmhctlError(
            f"site '{store.blueprint.metadata.name}' keeps its secrets in the local store {store.directory}, "
            "not in the repository",
            hint=f"move them into git, encrypted: {hints.command('secrets', 'init')}",
        )
    return store.backend


def _key_argument(key: str) -> Recipient:
    """KEY as given: the key itself, or a file holding it (id_ed25519.pub, an age identity's public line)."""
    from umhctl.agestore import parse_key

    path = Path(key).expanduser()
    if len(key) < 4096 and "\n" not in key and path.is_file():
        return parse_key(path.read_text())
    return parse_key(key)


def init(
    file: Path, *, recipients: list[str] | None = None, identity: Path | None = None, hints: Hints | None = None
) -> SecretsInitResult:
    """Set up `secrets/<site>/` for the operator's key (or `recipients`), taking over what the local store holds
    and generating every other value the blueprint needs."""
    from umhctl.agestore import AgeVault, identity_candidates, public_of, recipients_text, site_secrets_dir

    hints = hints or Hints()
    loaded = load_blueprint(file)
    site = loaded.blueprint.metadata.name
    directory = site_secrets_dir(loaded.path.parent, site)
    vault = AgeVault(directory, identity)
    if vault.recipients_file.exists():
        raise UmhctlError(
            f"{vault.recipients_file} exists: the site's secrets are already in the repository",
            hint=f"add a colleague with {hints.command('secrets', 'add-recipient', 'KEY')}",
        )
    if recipients:
        chosen = [_key_argument(r) for r in recipients]
    else:
        keys = [p for p in identity_candidates(identity) if p.exists()]
        if not keys:
            raise UmhctlError(
                "no key of yours found to encrypt the site's secrets to (tried "
                + ", ".join(str(p) for p in identity_candidates(identity))
                + ")",
                hint="pass --recipient 'ssh-ed25519 AAAA... you@host' (or age1...), or -i KEY, or create a key: "
                "age-keygen -o ~/.config/umhctl/age.txt and export UMHCTL_AGE_IDENTITY=~/.config/umhctl/age.txt",
            )
        chosen = [public_of(keys[0].read_bytes(), keys[0])]
    directory.mkdir(parents=True, exist_ok=True)
    store = SecretStore(directory, loaded.blueprint, loaded.path.parent, vault, encrypted=True)
    local_dir = default_store_dir(site)
    local = LocalBackend(local_dir)
    imported = []
    with vault.locked():
        vault.recipients_file.write_text(recipients_text(chosen))
        for name in store.generated_names():
            value = local.read(name)
            if value is None:
                continue
            vault.write(name, value, chosen)
            public = local.read_public(name)
            if public is not None:
                vault.write_public(name, public)
            imported.append(name)
    store.ensure_all()
    return SecretsInitResult(directory, chosen, imported, sorted(store.created), local_dir)


def add_recipient(
    file: Path, key: str, *, comment: str | None = None, identity: Path | None = None, hints: Hints | None = None
) -> RecipientsResult:
    from dataclasses import replace

    from umhctl.agestore import recipients_text

    store = _store(file, identity)
    vault = _vault(store, hints or Hints())
    new = _key_argument(key)
    if comment:
        new = replace(new, comment=comment)
    current = vault.recipients()
    if any(r.key == new.key for r in current):
        raise UmhctlError(f"{new.key[:40]}... is already a recipient of {vault.recipients_file}")
    updated = [*current, new]
    with vault.locked():
        names = vault.reencrypt(updated)
        vault.recipients_file.write_text(recipients_text(updated))
    return RecipientsResult("secrets add-recipient", vault.directory, updated, new, names)


def remove_recipient(
    file: Path, key: str, *, identity: Path | None = None, hints: Hints | None = None
) -> RecipientsResult:
    from umhctl.agestore import recipients_text

    store = _store(file, identity)
    vault = _vault(store, hints or Hints())
    current = vault.recipients()
    try:
        wanted = _key_argument(key).key
    except UmhctlError:
        wanted = key.strip()
    matches = [r for r in current if wanted in (r.key, r.comment)]
    if len(matches) != 1:
        listing = "; ".join(f"{r.comment or '-'}: {r.key[:30]}..." for r in current)
        found = "no recipient" if not matches else f"{len(matches)} recipients"
        raise UmhctlError(f"{found} match '{key}'", hint=f"name one by its key or comment: {listing}")
    removed = matches[0]
    remaining = [r for r in current if r is not removed]
    if not remaining:
        raise UmhctlError("refusing to remove the last recipient: nobody could decrypt the site's secrets")
    with vault.locked():
        names = vault.reencrypt(remaining)
        vault.recipients_file.write_text(recipients_text(remaining))
    exposed = [shown_name(n) for n in names if not n.endswith(".old")]
    return RecipientsResult("secrets remove-recipient", vault.directory, remaining, removed, names, exposed=exposed)


def shown_name(key: str) -> str:
    """A store name as `secrets list` shows it and `secrets rotate` takes it."""
    return key.removeprefix("secret.")


def rotate(file: Path, name: str, *, identity: Path | None = None, hints: Hints | None = None) -> RotateResult:
    """A new value for one generated secret (names as `secrets list` shows them)."""
    hints = hints or Hints()
    store = _store(file, identity)
    ref = store.blueprint.secrets.get(name)
    if ref is not None and ref.generate is None:
        source = f"environment variable {ref.env}" if ref.env else f"the file {ref.file}"
        raise UmhctlError(f"secret '{name}' comes from {source}: umhctl does not generate it", hint="change it there")
    key = f"secret.{name}" if ref is not None else name
    specs = store.generated_names()
    if key not in specs:
        raise UmhctlError(f"no generated secret '{name}'", hint=f"the names: {hints.command('secrets', 'list')}")
    spec = specs[key]
    if spec is None:
        device = key.removeprefix("ssh-host-key.")
        raise UmhctlError(
            f"{key} is a device's SSH host key: a new one must reach the device and known_hosts together",
            hint=f"rebuild with a new key: {hints.command('reset', 'device', device, '--rotate-host-key')}",
        )
    store.regenerate(key, spec)
    return RotateResult(shown_name(key), store.directory, store.encrypted)


def list_secrets(file: Path, *, hints: Hints | None = None) -> SecretsListResult:
    """Every secret the site has and where it comes from. Reads no value (no key needed)."""
    from umhctl.agestore import AgeVault

    loaded = load_blueprint(file)
    store = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    vault = store.backend if isinstance(store.backend, AgeVault) else None
    where = "encrypted" if vault is not None else "local"
    entries = []
    for name, ref in sorted(loaded.blueprint.secrets.items()):
        if ref.env is not None:
            import os

            entries.append(SecretEntry(name, "env", "environment", ref.env in os.environ, ref.env))
        elif ref.file is not None:
            entries.append(SecretEntry(name, "file", "file", (loaded.path.parent / ref.file).is_file(), ref.file))
    for key in store.generated_names():
        present = vault.path(key).exists() if vault is not None else (store.directory / key).exists()
        entries.append(SecretEntry(shown_name(key), "generate", where, present))
    entries.sort(key=lambda e: e.name)
    return SecretsListResult(store.directory, vault is not None, entries, vault.recipients() if vault else [])
