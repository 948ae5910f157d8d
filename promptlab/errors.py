"""User-facing errors: one message saying what went wrong, where, and how to fix it.

The CLI prints a `UserError` as a single message and exits with status 2; anything
else is a programming error and keeps its traceback.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable


class UserError(Exception):
    """A mistake the user can fix: bad file, unknown name, wrong flag value."""

    def __init__(self, what: str, *, where: str | Path | None = None, line: int | None = None,
                 fix: str | None = None):
        self.what, self.where, self.line, self.fix = what, where, line, fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        location = ""
        if self.where is not None:
            location = f"{self.where}:{self.line}: " if self.line else f"{self.where}: "
        text = f"{location}{self.what}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text

    @property
    def inline(self) -> str:
        """What went wrong and its fix on one line, for a message that names its own place (a lint problem, an
        HTTP answer)."""
        return self.what + (f" ({self.fix})" if self.fix else "")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A 'did you mean' hint naming the closest choice, or listing all of them."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    if not choices:
        return "none are defined"
    return "choose one of: " + ", ".join(choices)


def unknown(kind: str, name: str, choices: Iterable[str], *, where: str | Path | None = None) -> UserError:
    """The error for a name that is not defined, with the closest known names."""
    return UserError(f"unknown {kind} '{name}'", where=where, fix=did_you_mean(name, choices))
