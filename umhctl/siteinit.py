"""`umhctl init`: a new site repository a team can share, valid and committed from the first minute.

What it holds: blueprint.yaml (small, commented, with the editor's `$schema` line), the blueprint JSON Schema it
points at, dashboards/, known_hosts filled from the site's host keys, the site's secrets encrypted to the
operator's key (umhctl.sitesecrets), a .gitignore for render output and caches, a pre-commit configuration that
runs `umhctl validate`, optionally a plain git pre-commit hook, and a first commit.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umhctl.errors import UmhctlError
from umhctl.fsutil import write_atomic
from umhctl.templating import templates_dir

BLUEPRINT = "blueprint.yaml"  # the name `umhctl` looks for without -f
SCHEMA = "schema/site-blueprint.schema.json"
_SITE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # the blueprint's DnsLabel (metadata.name)

GITIGNORE = """\
# Written by umhctl init. Render output and saved plans are derived from the blueprint (and may hold secrets in
# plaintext: `umhctl render` without --redact); caches are per machine.
/out/
/render/
*.plan.json
plan.json
.umhctl/
__pycache__/
"""
# age files are binary: no textual diffs of ciphertext in `git log -p` or pull requests.
GITATTRIBUTES = "secrets/**/*.age binary\n"


@dataclass(frozen=True)
class InitResult:
    directory: Path
    site: str
    blueprint: Path
    commit: str
    files: list[str]
    recipients: list[str]
    authorized_key: str | None  # the operator's SSH key put into access.authorizedKeys (None: the example key)
    hook: Path | None = None
    notes: list[str] = field(default_factory=list)

    command = "init"
    ok = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "site": self.site,
            "blueprint": str(self.blueprint),
            "commit": self.commit,
            "files": self.files,
            "recipients": self.recipients,
            "authorized_key": self.authorized_key,
            "hook": str(self.hook) if self.hook else None,
            "notes": self.notes,
        }


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise UmhctlError(f"git {args[0]} failed: {done.stderr.strip()}", hint=_git_hint(done.stderr))
    return done.stdout


def _git_hint(stderr: str) -> str | None:
    if "user.email" in stderr or "user.name" in stderr or "identity" in stderr:
        return (
            'tell git who you are: git config --global user.name "Your Name" && '
            "git config --global user.email you@example.com"
        )
    return None


def pre_commit_config() -> str:
    """The pre-commit framework's configuration (https://pre-commit.com/#repository-local-hooks): a local hook,
    `language: system` (umhctl must be on PATH), run when a file the render reads is committed."""
    from ruamel.yaml import YAML

    config = {
        "repos": [
            {
                "repo": "local",
                "hooks": [
                    {
                        "id": "umhctl-validate",
                        "name": "umhctl validate",
                        "entry": f"umhctl validate -f {BLUEPRINT}",
                        "language": "system",
                        "pass_filenames": False,
                        # what validate reads: the blueprint, its lock file (artifacts.lock_path), dashboards, templates
                        "files": r"^(blueprint\.yaml|blueprint\.lock\.json|dashboards/|files/)",
                    }
                ],
            }
        ]
    }
    out = io.StringIO()
    out.write("# Written by umhctl init: `pre-commit install` runs `umhctl validate` before every commit.\n")
    YAML().dump(config, out)
    return out.getvalue()


def git_hook(python: str) -> str:
    """A plain .git/hooks/pre-commit: validates what is staged (the index, checked out into a temp dir), not the
    working tree, so an unstaged fix cannot let a broken blueprint into the commit."""
    return f"""#!/bin/sh
# Installed by `umhctl init --git-hook`: refuse a commit whose staged blueprint does not validate.
set -eu
staged=$(mktemp -d)
trap 'rm -rf "$staged"' EXIT
git checkout-index -a --prefix="$staged/"
if ! report=$({shlex.quote(python)} -m umhctl validate -f "$staged/{BLUEPRINT}" 2>&1); then
  printf '%s\n' "$report" | sed "s|$staged/||g" >&2
  echo "umhctl: the staged blueprint is invalid: commit refused" >&2
  exit 1
fi
"""


def _blueprint_text(site: str, authorized_key: str | None) -> str:
    """The init template with the site's name and the operator's key, edited as YAML data (comments kept)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 4096  # keep the template's flow mappings on their lines
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # the template's own layout
    data = yaml.load((templates_dir() / "init" / BLUEPRINT).read_text())
    data["metadata"]["name"] = site
    if authorized_key is not None:
        data["access"]["authorizedKeys"][0] = authorized_key
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _operator_ssh_key(identity: Path | None) -> str | None:
    from umhctl.agestore import identity_candidates

    for key in [*identity_candidates(identity), Path.home() / ".ssh" / "id_ed25519", Path.home() / ".ssh" / "id_rsa"]:
        pub = key.with_name(key.name + ".pub")
        if pub.is_file():
            words = pub.read_text().split()
            if len(words) >= 2 and words[0].startswith("ssh-"):
                return " ".join(words[:3])
    return None


def init_site(
    directory: Path,
    *,
    site: str | None = None,
    recipients: list[str] | None = None,
    identity: Path | None = None,
    git_hook_install: bool = False,
) -> InitResult:
    from umhctl import sitesecrets
    from umhctl.agestore import identity_candidates, public_of
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.blueprint.model import json_schema
    from umhctl.knownhosts import record_site_host_keys
    from umhctl.secrets import SecretStore

    directory = directory.resolve()
    name = site or directory.name
    if not _SITE_NAME.fullmatch(name):
        raise UmhctlError(
            f"'{name}' is not a valid site name (lower-case letters, digits and '-', at most 63)",
            hint="pass --site NAME",
        )
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UmhctlError(
            f"{directory} is not empty: umhctl init never overwrites anything", hint="name a new or empty directory"
        )
    # The operator's key first: without one nothing is written.
    keys = recipients or []
    if not keys:
        found = [p for p in identity_candidates(identity) if p.is_file()]
        if not found:
            raise UmhctlError(
                "no key of yours found to encrypt the site's secrets to (tried "
                + ", ".join(str(p) for p in identity_candidates(identity))
                + "); nothing was written",
                hint="pass --recipient 'ssh-ed25519 AAAA... you@host' (or age1...), or -i KEY",
            )
        keys = [public_of(found[0].read_bytes(), found[0]).key]
    authorized = _operator_ssh_key(identity)

    directory.mkdir(parents=True, exist_ok=True)
    blueprint = directory / BLUEPRINT
    blueprint.write_text(_blueprint_text(name, authorized))
    (directory / "schema").mkdir()
    (directory / SCHEMA).write_text(json.dumps(json_schema(), indent=2) + "\n")
    shutil.copytree(templates_dir() / "init" / "dashboards", directory / "dashboards")
    (directory / "known_hosts").write_text("")
    (directory / ".gitignore").write_text(GITIGNORE)
    (directory / ".gitattributes").write_text(GITATTRIBUTES)
    (directory / ".pre-commit-config.yaml").write_text(pre_commit_config())
    _git(directory, "init", "-q")
    secrets = sitesecrets.init(blueprint, recipients=keys, identity=identity)
    loaded = load_blueprint(blueprint)
    store = SecretStore.for_blueprint(loaded.blueprint, directory, identity=identity)
    record_site_host_keys(loaded, store, [d.name for d in loaded.blueprint.devices])
    hook = None
    if git_hook_install:
        hook = Path(_git(directory, "rev-parse", "--git-path", "hooks/pre-commit").strip())
        hook = hook if hook.is_absolute() else directory / hook
        write_atomic(hook, git_hook(sys.executable), 0o755)
    _git(directory, "add", "-A")
    _git(directory, "commit", "-q", "-m", f"umhctl init: site {name}")
    commit = _git(directory, "rev-parse", "HEAD").strip()
    files = sorted(_git(directory, "ls-files").split())
    notes = [] if authorized else ["access.authorizedKeys holds an example key: put your team's SSH keys there"]
    return InitResult(
        directory, name, blueprint, commit, files, [r.key for r in secrets.recipients], authorized, hook, notes
    )
