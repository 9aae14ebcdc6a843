"""The project's own error type: the CLI turns these into a clean message and exit code 1."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umhctl.diagnostics import Diagnostic


class UmhctlError(Exception):
    """A user-facing error. Its message is shown as is, without a traceback."""

    def __init__(self, message: str, *, hint: str | None = None, location: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.location = location  # FILE, or FILE:LINE:COL, when the problem is in a file


class BlueprintInvalid(UmhctlError):
    """The blueprint has problems; every one of them is in `diagnostics`."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        errors = sum(1 for d in diagnostics if d.severity == "error")
        location = diagnostics[0].file if diagnostics else None
        super().__init__(f"blueprint is invalid ({errors} error{'s' if errors != 1 else ''})", location=location)
        self.diagnostics = diagnostics


class BlueprintMissing(UmhctlError):
    """The blueprint file does not exist; `candidates` are blueprints found nearby (for a hint that works pasted)."""

    def __init__(self, path: str, candidates: list[str]) -> None:
        super().__init__(f"{path}: no such file", location=path)
        self.candidates = candidates
