"""`umhctl secrets init / add-recipient / remove-recipient / rotate / list`: the typer sub-app; the work is done
by umhctl.sitesecrets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from umhctl.cli.options import EXIT_CODES_HELP, BlueprintOpt, CliCommand, Output, OutputOpt, boundary

if TYPE_CHECKING:
    from umhctl.hints import Hints
    from umhctl.sitesecrets import RecipientsResult

secrets_app = typer.Typer(
    name="secrets",
    help="The site's secrets in git, encrypted with age to its recipients (age keys or SSH public keys).",
    epilog="Decryption reads $UMHCTL_AGE_IDENTITY (an age identity file or an unencrypted SSH private key), -i KEY, "
    "else ~/.ssh/id_ed25519 and ~/.ssh/id_rsa; ssh-agent cannot decrypt age. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
)

AgeIdentityOpt = Annotated[
    Path | None,
    typer.Option(
        "-i",
        "--identity",
        metavar="KEY",
        help="Your age identity file or SSH private key (default: $UMHCTL_AGE_IDENTITY, else ~/.ssh/id_ed25519, "
        "~/.ssh/id_rsa).",
        show_default=False,
        exists=True,
        dir_okay=False,
    ),
]
KeyArg = Annotated[
    str,
    typer.Argument(metavar="KEY", help="An age1... key, an SSH public key line, or a .pub file.", show_default=False),
]


def _hints(file: Path, identity: Path | None) -> Hints:
    from umhctl.hints import Hints

    return Hints(("-f", str(file), *(["-i", str(identity)] if identity is not None else [])))


@secrets_app.command("init", cls=CliCommand)
@boundary
def init(
    file: BlueprintOpt,
    recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--recipient",
            metavar="KEY",
            help="Encrypt to this key (repeatable). Default: the public half of your key (see -i).",
            show_default=False,
        ),
    ] = None,
    identity: AgeIdentityOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Move the site's generated secrets into secrets/<site>/ beside the blueprint, encrypted to your key.

    Values the local store already holds are taken over (devices keep their host keys); the rest is generated.
    Commit the directory afterwards.

    \b
    Examples:
      umhctl secrets init -f site.yaml
      umhctl secrets init -f site.yaml --recipient ~/.ssh/id_ed25519.pub
    """
    from umhctl import sitesecrets
    from umhctl.cli import views

    result = sitesecrets.init(file, recipients=recipient, identity=identity, hints=_hints(file, identity))
    if output is Output.json:
        views.show_json(result)
        return
    out = views.console()
    out.print(f"Secrets of the site are now in {result.directory}, encrypted to:")
    for r in result.recipients:
        out.print(f"  {r.comment or '-'}: {r.key[:60]}")
    if result.imported:
        out.print(f"Taken over from {result.local_store}: {', '.join(result.imported)}")
    if result.generated:
        out.print(f"Generated: {', '.join(result.generated)}")
    out.print(f"Commit them: git add {result.directory} && git commit -m 'Encrypted site secrets'")
    if result.imported:
        out.print(f"The local store {result.local_store} is no longer read for this site.")


def _show_recipients(result: RecipientsResult, output: Output, file: Path, identity: Path | None) -> None:
    from umhctl.cli import views

    if output is Output.json:
        views.show_json(result)
        return
    out = views.console()
    verb = "Added" if result.command.endswith("add-recipient") else "Removed"
    out.print(f"{verb} {result.changed.comment or result.changed.key[:40]}.")
    out.print(f"Re-encrypted {views.count(len(result.reencrypted), 'secret')} to {len(result.recipients)} recipients.")
    if result.exposed:
        out.print(
            "The removed key could read these secrets (git history keeps the old files, so re-encrypting is not "
            "enough); rotate them:"
        )
        hints = _hints(file, identity)
        for name in result.exposed:
            device = name.removeprefix("ssh-host-key.")
            how = ("reset", "device", device, "--rotate-host-key") if device != name else ("secrets", "rotate", name)
            out.print(f"  {name}: {hints.command(*how)}")
    out.print(f"Commit: git add {result.directory} && git commit")


@secrets_app.command("add-recipient", cls=CliCommand)
@boundary
def add_recipient(
    key: KeyArg,
    file: BlueprintOpt,
    comment: Annotated[
        str | None,
        typer.Option(
            "--comment", metavar="TEXT", help="Who it is (default: the SSH key's comment).", show_default=False
        ),
    ] = None,
    identity: AgeIdentityOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Let one more key decrypt the site's secrets (re-encrypts every secret; needs your key).

    \b
    Examples:
      umhctl secrets add-recipient -f site.yaml ~/colleague_ed25519.pub
      umhctl secrets add-recipient -f site.yaml age1ql3z7h... --comment "CI"
    """
    from umhctl import sitesecrets

    result = sitesecrets.add_recipient(file, key, comment=comment, identity=identity, hints=_hints(file, identity))
    _show_recipients(result, output, file, identity)


@secrets_app.command("remove-recipient", cls=CliCommand)
@boundary
def remove_recipient(
    key: Annotated[
        str, typer.Argument(metavar="KEY", help="The key, its .pub file, or its comment.", show_default=False)
    ],
    file: BlueprintOpt,
    identity: AgeIdentityOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Stop a key from decrypting the site's secrets: re-encrypts every secret to the others and lists the ones
    the removed key could read (rotate them).

    \b
    Example:
      umhctl secrets remove-recipient -f site.yaml "alice@laptop"
    """
    from umhctl import sitesecrets

    result = sitesecrets.remove_recipient(file, key, identity=identity, hints=_hints(file, identity))
    _show_recipients(result, output, file, identity)


@secrets_app.command("rotate", cls=CliCommand)
@boundary
def rotate(
    name: Annotated[str, typer.Argument(metavar="NAME", help="As `secrets list` shows it.", show_default=False)],
    file: BlueprintOpt,
    identity: AgeIdentityOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Generate a new value for one generated secret (the next apply rolls it out).

    \b
    Examples:
      umhctl secrets rotate -f site.yaml grafana-admin
      umhctl secrets rotate -f site.yaml k3s-token.edge-01
    """
    from umhctl import sitesecrets
    from umhctl.cli import views

    result = sitesecrets.rotate(file, name, identity=identity, hints=_hints(file, identity))
    if output is Output.json:
        views.show_json(result)
        return
    out = views.console()
    out.print(f"New value for {result.name}.")
    if result.encrypted:
        out.print(f"Commit it (git add {result.directory} && git commit), then plan and apply.")
    else:
        out.print("Plan and apply to roll it out.")


@secrets_app.command("list", cls=CliCommand)
@boundary
def list_(file: BlueprintOpt, output: OutputOpt = Output.text) -> None:
    """Every secret of the site and where it comes from; never a value, and no key needed.

    \b
    Example:
      umhctl secrets list -f site.yaml -o json
    """
    from rich.table import Table

    from umhctl import sitesecrets
    from umhctl.cli import views

    result = sitesecrets.list_secrets(file)
    if output is Output.json:
        views.show_json(result)
        return
    out = views.console()
    where = "encrypted in the repository" if result.encrypted else "in the local store (not shared)"
    out.print(f"Generated secrets are {where}: {result.directory}")
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "SOURCE", "STORE", "PRESENT"):
        table.add_column(column)
    for e in result.entries:
        table.add_row(e.name, e.source + (f" {e.detail}" if e.detail else ""), e.store, "yes" if e.present else "no")
    out.print(table)
    if result.recipients:
        out.print("Recipients: " + ", ".join(r.comment or r.key[:30] for r in result.recipients))
