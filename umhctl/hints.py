"""Hints that are commands: they carry the options that chose the site (-f FILE, --sim...), so they work pasted."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Hints:
    selection: tuple[str, ...] = ()  # the options naming the same site and transport, e.g. ("-f", "x.yaml", "--sim")

    def command(self, *words: str) -> str:
        return shlex.join(["umhctl", *words, *self.selection])

    def with_file(self, file: str) -> Hints:
        """These hints, naming the blueprint `file` when the command line did not (apply of a saved plan)."""
        return self if "-f" in self.selection else Hints(("-f", file, *self.selection))

    def via_management(self, *words: str) -> str:
        """The same command reaching the devices through their management addresses (not the tailnet)."""
        selection = list(self.selection)
        if "--via" in selection:
            del selection[selection.index("--via") : selection.index("--via") + 2]
        return shlex.join(["umhctl", *words, *selection, "--via", "management"])
