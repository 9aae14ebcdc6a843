"""Command-line options every command shares, the exit codes, and the boundary that turns errors into clean exits.

Kept apart from the main app so that sub-apps (umhctl sim) use the very same flags.

Exit codes (the same on every command, documented in `umhctl --help` and the README):
  0  success (plan: no changes)
  1  error: an invalid blueprint, an unreachable device, a failed apply, and a mistyped command line too
  2  changes pending (only `plan --detailed-exitcode`): never anything else, so CI can trust it
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer._click import exceptions as click_exceptions  # typer 0.29 vendors click (pinned in pyproject)
from typer._click.core import Command
from typer._click.globals import get_current_context
from typer.core import TyperCommand, TyperGroup

from umhctl.errors import BlueprintInvalid, BlueprintMissing, UmhctlError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = (
    "Exit codes: 0 success (plan: no changes); 1 error, a mistyped command line included; 2 changes pending "
    "(plan --detailed-exitcode only); 130 interrupted."
)


class Output(StrEnum):
    text = "text"
    json = "json"


def default_blueprint() -> Path:
    return Path(os.environ.get("UMHCTL_BLUEPRINT", "blueprint.yaml"))


def _complete_devices(ctx: typer.Context, incomplete: str) -> list[str]:
    """Device names from the blueprint the command line names (shell completion): never an error."""
    try:
        from umhctl.blueprint.loader import load_blueprint

        file = ctx.params.get("file") or default_blueprint()
        names = [d.name for d in load_blueprint(Path(file)).blueprint.devices]
    except Exception:  # completion must stay quiet whatever the blueprint holds
        return []
    return [name for name in names if name.startswith(incomplete)]


BlueprintOpt = Annotated[
    Path,
    typer.Option(
        "-f",
        "--file",
        metavar="FILE",
        help="Site blueprint. Default: $UMHCTL_BLUEPRINT, else ./blueprint.yaml.",
        default_factory=default_blueprint,
        show_default=False,
    ),
]
OutputOpt = Annotated[Output, typer.Option("-o", "--output", metavar="FORMAT", help="text or json.")]
DeviceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--device",
        metavar="NAME",
        help="Limit to this device (repeatable).",
        show_default=False,
        autocompletion=_complete_devices,
    ),
]
DeviceArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The device.", autocompletion=_complete_devices, show_default=False)
]


class Via(StrEnum):
    management = "management"
    tailscale = "tailscale"


ViaOpt = Annotated[
    Via | None,
    typer.Option(
        "--via",
        metavar="ROUTE",
        help="Reach the devices through their management address or their tailnet name (management or "
        "tailscale), for this run. Default: the blueprint's access.via.",
        show_default=False,
    ),
]


def between(low: float, high: float | None = None) -> Callable[[float], float]:
    """An option callback that refuses a number out of range in words (typer's own says `1<=x<=64`)."""

    def check(value: float) -> float:
        if value < low or (high is not None and value > high):
            limit = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise typer.BadParameter(f"{value:g} is out of range: it must be {limit}")
        return value

    return check


debug = {"on": False}  # set by --debug, accepted anywhere on the command line
invocation: dict[str, list[str]] = {"argv": []}  # the command line as given, for hints that repeat it
F = TypeVar("F", bound=Callable[..., Any])


def _json_wanted(argv: Sequence[str]) -> bool:
    for index, token in enumerate(argv):
        if token in ("-o", "--output") and index + 1 < len(argv) and argv[index + 1] == "json":
            return True
        if token in ("-ojson", "--output=json"):
            return True
    return False


def _command_name(group: TyperGroup, argv: Sequence[str]) -> str:
    words: list[str] = []
    command: Command = group
    for token in argv:
        if not isinstance(command, TyperGroup) or token not in command.commands:
            break
        words.append(token)
        command = command.commands[token]
    return " ".join(words)


def show_failure(command: str, json_output: bool, message: str, hint: str | None, location: str | None) -> None:
    """An error as the command's output: a JSON document on stdout with -o json, else a message on stderr."""
    from umhctl.cli import views

    if json_output:
        views.print_json({"command": command, "error": {"message": message, "hint": hint, "location": location}})
    else:
        views.show_error(message, hint)


_TYPE_DISPLAY = re.compile(r" <(?:str|path|file|int|float|bool|text|list\[str\]|[a-z]+ range)>")


class CliCommand(TyperCommand):
    """Help without Python's types: `NAME`, not `{name} <str>` (typer shows both for arguments)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        formatter.buffer[:] = [
            _TYPE_DISPLAY.sub("", re.sub(r"\{([A-Z_]+)\}", r"\1", text)).replace("[[", "[").replace("]]", "]")
            for text in formatter.buffer
        ]


class CliGroup(TyperGroup):
    """The top-level group: every exit code is one of the table above, whatever click would have used.

    click exits 2 on a usage error, which `plan --detailed-exitcode` uses for "changes pending": a mistyped option
    in CI must not read as pending changes, so usage errors exit 1 (with a JSON document under -o json)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        invocation["argv"] = argv
        if "--debug" in argv[: argv.index("--") if "--" in argv else len(argv)]:
            argv.remove("--debug")
            debug["on"] = True
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.UsageError as exc:
            hint = f"see: umhctl {_command_name(self, argv)} --help".replace("  ", " ")
            if _json_wanted(argv):
                show_failure(_command_name(self, argv), True, exc.format_message(), hint, None)
            else:
                exc.show()
            sys.exit(EXIT_ERROR)
        except typer.Abort:
            show_failure(_command_name(self, argv), _json_wanted(argv), "interrupted", None, None)
            sys.exit(EXIT_INTERRUPTED)
        except click_exceptions.ClickException as exc:
            show_failure(_command_name(self, argv), _json_wanted(argv), exc.format_message(), None, None)
            sys.exit(EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def with_file(argv: Sequence[str], file: str) -> list[str]:
    """The same command line with another -f FILE."""
    out = list(argv)
    for index, token in enumerate(out):
        if token in ("-f", "--file") and index + 1 < len(out):
            out[index + 1] = file
            return out
        if token.startswith("--file="):
            out[index] = f"--file={file}"
            return out
    return [*out, "-f", file]


def _missing_hint(exc: BlueprintMissing) -> str:
    import shlex

    if not exc.candidates:
        return "no site blueprint here (a YAML file with 'kind: SiteBlueprint'): pass one with -f FILE"
    commands = [shlex.join(["umhctl", *with_file(invocation["argv"], c)]) for c in exc.candidates[:2]]
    return "blueprints here: " + ", ".join(exc.candidates) + "; for example: " + " or ".join(commands)


def boundary(fn: F) -> F:
    """Turn the project's errors into a clean message (or JSON document) and exit code 1; no traceback unless
    --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_output = kwargs.get("output") == Output.json  # also `diff`'s own format choice (a StrEnum)
        context = get_current_context(silent=True)
        command = context.command_path.partition(" ")[2] if context else fn.__name__
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except BlueprintInvalid as exc:
            if debug["on"]:
                raise
            from umhctl.cli import views

            if json_output:
                views.print_json(
                    {
                        "command": command,
                        "error": {"message": str(exc), "hint": exc.hint, "location": exc.location},
                        "diagnostics": [d.to_dict() for d in exc.diagnostics],
                    }
                )
            else:
                views.show_diagnostics(exc.diagnostics, stderr=True)
                views.show_error(str(exc))
            raise typer.Exit(EXIT_ERROR) from None
        except BlueprintMissing as exc:
            if debug["on"]:
                raise
            show_failure(command, json_output, str(exc), _missing_hint(exc), exc.location)
            raise typer.Exit(EXIT_ERROR) from None
        except UmhctlError as exc:
            if debug["on"]:
                raise
            show_failure(command, json_output, str(exc), exc.hint, exc.location)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            show_failure(command, json_output, "interrupted", None, None)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if debug["on"]:
                raise
            show_failure(
                command, json_output, f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug", None
            )
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]
