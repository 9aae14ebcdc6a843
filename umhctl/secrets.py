"""Secret values: resolved from the environment, from files outside git, or generated once into a local store.

The store lives outside the blueprint repository (default `$XDG_DATA_HOME/umhctl/secrets/<site>/`, override with
`UMHCTL_SECRETS_DIR`). A generated value is created on first use and reused afterwards, so renders are repeatable
and a rebuilt device gets the same host key and tokens. Besides the blueprint's named secrets, every device has
an SSH host key and a k3s token generated here.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets as pysecrets
import string
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from umhctl.blueprint.model import GenerateSpec, SiteBlueprint
from umhctl.blueprint.repofiles import MAX_SECRET_FILE, RepoFiles
from umhctl.errors import UmhctlError
from umhctl.fsutil import write_atomic, xdg_dir

_ALPHABET = string.ascii_letters + string.digits


def default_store_dir(site: str) -> Path:
    override = os.environ.get("UMHCTL_SECRETS_DIR")
    if override:
        return Path(override) / site
    return xdg_dir("data") / "umhctl" / "secrets" / site


@dataclass(frozen=True)
class HostKey:
    private: str  # OpenSSH private key file content
    public: str  # "ssh-ed25519 AAAA… comment"


@dataclass
class SecretStore:
    """Resolves the secrets a render needs."""

    directory: Path
    blueprint: SiteBlueprint
    base_dir: Path

    @classmethod
    def for_blueprint(cls, blueprint: SiteBlueprint, base_dir: Path, directory: Path | None = None) -> SecretStore:
        return cls(directory or default_store_dir(blueprint.metadata.name), blueprint, base_dir)

    def value(self, name: str) -> str:
        """The value of the blueprint secret `name`."""
        ref = self.blueprint.secrets.get(name)
        if ref is None:
            raise UmhctlError(f"secret '{name}' is not defined in the blueprint")
        if ref.env is not None:
            if ref.env not in os.environ:
                raise UmhctlError(
                    f"secret '{name}' comes from environment variable {ref.env}, which is not set",
                    hint=f"export {ref.env}=... before running umhctl",
                )
            result = os.environ[ref.env]
        elif ref.file is not None:
            raw = RepoFiles(self.base_dir).read(ref.file, f"secret '{name}': file", MAX_SECRET_FILE)
            try:
                result = raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError:
                raise UmhctlError(f"secret '{name}': file '{ref.file}' is not UTF-8 text") from None
        else:
            assert ref.generate is not None
            result = self._generated(f"secret.{name}", ref.generate)
        return result

    def k3s_token(self, device: str) -> str:
        return self._generated(f"k3s-token.{device}", GenerateSpec(type="token", length=48))

    def host_key(self, device: str) -> HostKey:
        """The device's SSH host key, generated once: the device presents it from its first boot on."""
        private = self.directory / f"ssh-host-key.{device}"
        with self._locked():
            if not private.exists():
                self._keygen(private, device)
        return HostKey(private.read_text(), (private.with_suffix(private.suffix + ".pub")).read_text().strip())

    def sealer(self) -> Callable[[str], str]:
        """Turns anything derived from a secret (the sha256 of a secret-bearing file, a password that must name a
        Job) into a keyed digest (HMAC with a key from this store).

        Plans, saved plans and renders show these instead of plain hashes, so a weak password from {env: ...}
        cannot be guessed offline from a plan file; the same key gives the same digest, so plans still compare.
        """
        key = self._generated("plan-seal-key", GenerateSpec(type="token", length=64)).encode()

        def seal(sha256: str) -> str:
            return "hmac-sha256:" + hmac.new(key, sha256.encode(), hashlib.sha256).hexdigest()[:32]

        return seal

    def rotate_host_key(self, device: str) -> HostKey:
        """Replace the device's host key with a new one (the old one is kept as .old until the next rotation)."""
        private = self.directory / f"ssh-host-key.{device}"
        with self._locked():
            for path in (private, private.with_suffix(private.suffix + ".pub")):
                if path.exists():
                    os.replace(path, path.with_name(path.name + ".old"))
        return self.host_key(device)

    def restore_host_key(self, device: str) -> None:
        """Undo rotate_host_key: the previous key (kept as .old) becomes the device's key again."""
        private = self.directory / f"ssh-host-key.{device}"
        with self._locked():
            for path in (private, private.with_suffix(private.suffix + ".pub")):
                old = path.with_name(path.name + ".old")
                if old.exists():
                    os.replace(old, path)

    def _generated(self, filename: str, spec: GenerateSpec) -> str:
        path = self.directory / filename
        with self._locked():
            if not path.exists():
                if spec.type == "token":
                    value = pysecrets.token_hex((spec.length + 1) // 2)[: spec.length]
                else:
                    value = "".join(pysecrets.choice(_ALPHABET) for _ in range(spec.length))
                write_atomic(path, value + "\n", 0o600)
        return path.read_text().rstrip("\n")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Parallel renders of one site must not generate two different values for the same secret.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _keygen(self, private: Path, device: str) -> None:
        generate_ed25519(private, f"{device}@{self.blueprint.metadata.name}")


def generate_ed25519(private: Path, comment: str) -> None:
    """A new ed25519 key pair at `private` (+ .pub), written atomically (ssh-keygen, from openssh-client)."""
    with tempfile.TemporaryDirectory(dir=private.parent) as tmp:
        out = Path(tmp) / "key"
        try:
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(out)],
                check=True,
                capture_output=True,
                timeout=30,
            )
        except FileNotFoundError:
            raise UmhctlError(
                "ssh-keygen is missing: umhctl generates SSH keys with it", hint="apt-get install openssh-client"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise UmhctlError(f"ssh-keygen failed: {exc.stderr.decode(errors='replace').strip()}") from None
        os.replace(out.with_suffix(".pub"), private.with_suffix(private.suffix + ".pub"))
        os.replace(out, private)
