"""What renderers take their secrets from: a resolver handed in by the caller.

The secret store (umhctl.secrets) is one; `RedactedSecrets` is the other: it never reads a secret, so a render
for review (`render --redact`, CI without secrets) needs no environment variable, secret file or store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from umhctl.errors import UmhctlError

if TYPE_CHECKING:
    from umhctl.blueprint.model import SiteBlueprint
    from umhctl.secrets import HostKey


class SecretResolver(Protocol):
    def value(self, name: str) -> str: ...

    def k3s_token(self, device: str) -> str: ...

    def host_key(self, device: str) -> HostKey: ...

    def sealer(self) -> Callable[[str], str]: ...


class RedactedSecrets:
    """Placeholders instead of secrets: the render shows where a secret goes, never what it is."""

    def value(self, name: str) -> str:
        return f"(redacted: secret {name})"

    def k3s_token(self, device: str) -> str:
        return f"(redacted: k3s token of {device})"

    def host_key(self, device: str) -> HostKey:
        from umhctl.secrets import HostKey

        return HostKey(f"(redacted: SSH host key of {device})\n", f"(redacted: SSH host key of {device})")

    def sealer(self) -> Callable[[str], str]:
        return lambda text: "sealed:redacted"


def require_env(bp: SiteBlueprint) -> None:
    """Every `env:` secret the blueprint uses must be set: all missing ones reported at once, not one per run."""
    from umhctl.blueprint.checks import secret_uses

    used = {name for name, _ in secret_uses(bp)}
    missing = [
        (name, ref.env)
        for name, ref in sorted(bp.secrets.items())
        if name in used and ref.env and ref.env not in os.environ
    ]
    if missing:
        listing = ", ".join(f"{env} (secret '{name}')" for name, env in missing)
        plural = "s are" if len(missing) > 1 else " is"
        raise UmhctlError(
            f"environment variable{plural} not set: {listing}",
            hint="export " + " ".join(f"{env}=..." for _, env in missing) + " before running umhctl",
        )
