"""The project's own error type: the CLI turns these into a clean message and exit code 1."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umhctl.diagnostics import Diagnostic


class UmhctlError(Exception):
    """A user-facing error. Its message is shown as is, without a traceback."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class BlueprintInvalid(UmhctlError):
    """The blueprint has problems; every one of them is in `diagnostics`."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        errors = sum(1 for d in diagnostics if d.severity == "error")
        super().__init__(f"blueprint is invalid ({errors} error{'s' if errors != 1 else ''})")
        self.diagnostics = diagnostics
