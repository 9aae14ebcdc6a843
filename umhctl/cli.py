"""The umhctl command line: a thin typer layer that maps options onto the library and results onto views."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from umhctl import __version__
from umhctl.errors import BlueprintInvalid, UmhctlError

app = typer.Typer(
    name="umhctl",
    help="Declarative provisioning for United Manufacturing Hub edge sites.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Output(StrEnum):
    text = "text"
    json = "json"


def _default_blueprint() -> Path:
    return Path(os.environ.get("UMHCTL_BLUEPRINT", "blueprint.yaml"))


BlueprintOpt = Annotated[
    Path,
    typer.Option(
        "-f",
        "--file",
        help="Site blueprint. Default: $UMHCTL_BLUEPRINT, else ./blueprint.yaml.",
        default_factory=_default_blueprint,
        show_default=False,
    ),
]
OutputOpt = Annotated[Output, typer.Option("-o", "--output", help="text or json.")]

_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def boundary(fn: F) -> F:
    """Turn the project's errors into a clean message and exit code 1; no traceback unless --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from umhctl import views

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except BlueprintInvalid as exc:
            if _state["debug"]:
                raise
            views.show_diagnostics(exc.diagnostics, stderr=True)
            views.show_error(str(exc))
            raise typer.Exit(1) from None
        except UmhctlError as exc:
            if _state["debug"]:
                raise
            views.show_error(str(exc), exc.hint)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            views.show_error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if _state["debug"]:
                raise
            views.show_error(f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug for a traceback")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"umhctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


@app.command()
@boundary
def validate(file: BlueprintOpt, output: OutputOpt = Output.text) -> None:
    """Check a blueprint: schema and cross-references, every problem at once."""
    from umhctl import views
    from umhctl.blueprint.loader import validate_file

    blueprint, _, diagnostics = validate_file(file)
    if output is Output.json:
        views.print_json(
            {
                "command": "validate",
                "file": str(file),
                "valid": blueprint is not None,
                "diagnostics": [d.to_dict() for d in diagnostics],
            }
        )
    else:
        views.show_diagnostics(diagnostics)
        if blueprint is not None:
            counts = (
                _count(len(blueprint.devices), "device"),
                _count(len(blueprint.io_link_masters), "IO-Link master"),
                _count(len(blueprint.sensors), "sensor"),
                _count(len(blueprint.dashboards), "dashboard"),
            )
            views.show_line(f"{file}: valid ({', '.join(counts)})")
        else:
            views.show_line(f"{file}: {_count(sum(d.severity == 'error' for d in diagnostics), 'error')}")
    raise typer.Exit(0 if blueprint is not None else 1)


@app.command()
@boundary
def schema() -> None:
    """Print the blueprint JSON Schema (Draft 2020-12), for editors and CI."""
    from umhctl.blueprint.model import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


DeviceOpt = Annotated[
    list[str] | None, typer.Option("--device", help="Limit to this device (repeatable).", show_default=False)
]


@app.command()
@boundary
def render(
    file: BlueprintOpt,
    out: Annotated[Path, typer.Option("--out", help="Directory to write DIR/<device>/... into.")],
    device: DeviceOpt = None,
    redact: Annotated[
        bool, typer.Option("--redact", help="Write placeholders instead of secret values (to review renders).")
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Write each device's Ignition config, Butane twin and desired file tree. No network."""
    from umhctl import views
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.render import render_site
    from umhctl.render.output import write_render
    from umhctl.secrets import SecretStore

    loaded = load_blueprint(file)
    secrets = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    renders = render_site(loaded, secrets, devices=device, redact=redact)
    written = [(r, write_render(r, out)) for r in renders]
    if output is Output.json:
        views.print_json(
            {
                "command": "render",
                "out": str(out),
                "redacted": redact,
                "devices": [
                    {"device": r.device, "path": str(path), "files": len(r.state.files), "links": len(r.state.links)}
                    for r, path in written
                ],
            }
        )
    else:
        for r, path in written:
            views.show_line(f"{r.device}: {len(r.state.files)} files, {len(r.state.links)} links -> {path}")
        views.show_line(f"rendered {_count(len(written), 'device')}{' (secrets redacted)' if redact else ''}")


def main() -> None:
    app()
