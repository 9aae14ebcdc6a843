"""Hints that are commands: they carry the options that chose the site (-f FILE, --sim...), so they work pasted."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Hints:
    selection: tuple[str, ...] = ()  # the options naming the same site and transport, e.g. ("-f", "x.yaml", "--sim")

    def command(self, *words: str) -> str:
        selection = self.selection if words[:1] in _VIA_COMMANDS else _without_via(self.selection)
        return shlex.join(["umhctl", *words, *selection])

    def with_file(self, file: str) -> Hints:
        """These hints, naming the blueprint `file` when the command line did not (apply of a saved plan)."""
        return self if "-f" in self.selection else Hints(("-f", file, *self.selection))

    def via_management(self, *words: str) -> str:
        """The same command reaching the devices through their management addresses (not the tailnet)."""
        return shlex.join(["umhctl", *words, *_without_via(self.selection), "--via", "management"])


_VIA_COMMANDS = {("plan",), ("apply",), ("reset",), ("status",), ("history",)}  # those taking --via (not lock, fetch)


def _without_via(selection: tuple[str, ...]) -> tuple[str, ...]:
    if "--via" not in selection:
        return selection
    at = selection.index("--via")
    return selection[:at] + selection[at + 2 :]
