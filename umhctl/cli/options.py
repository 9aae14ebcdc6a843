"""Command-line options every command shares, and the boundary that turns umhctl's errors into clean exits.

Kept apart from the main app so that sub-apps (umhctl sim) use the very same flags.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from umhctl.errors import BlueprintInvalid, UmhctlError


class Output(StrEnum):
    text = "text"
    json = "json"


def default_blueprint() -> Path:
    return Path(os.environ.get("UMHCTL_BLUEPRINT", "blueprint.yaml"))


BlueprintOpt = Annotated[
    Path,
    typer.Option(
        "-f",
        "--file",
        help="Site blueprint. Default: $UMHCTL_BLUEPRINT, else ./blueprint.yaml.",
        default_factory=default_blueprint,
        show_default=False,
    ),
]
OutputOpt = Annotated[Output, typer.Option("-o", "--output", help="text or json.")]
DeviceOpt = Annotated[
    list[str] | None, typer.Option("--device", help="Limit to this device (repeatable).", show_default=False)
]


debug = {"on": False}  # set by the --debug flag of the main command
F = TypeVar("F", bound=Callable[..., Any])


def boundary(fn: F) -> F:
    """Turn the project's errors into a clean message and exit code 1; no traceback unless --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from umhctl.cli import views

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except BlueprintInvalid as exc:
            if debug["on"]:
                raise
            views.show_diagnostics(exc.diagnostics, stderr=True)
            views.show_error(str(exc))
            raise typer.Exit(1) from None
        except UmhctlError as exc:
            if debug["on"]:
                raise
            views.show_error(str(exc), exc.hint)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            views.show_error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug["on"]:
                raise
            views.show_error(f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug for a traceback")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
