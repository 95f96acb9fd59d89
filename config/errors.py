"""Errors meant for a person: each names where the problem is and how to fix it.

The CLI turns any ``UserError`` into one message and exit code 2, never a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user gave us (a file, a flag, an AWS resource name)."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 fix: str | None = None) -> None:
        self.message = message
        self.source = source
        self.field = field
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = ": ".join(p for p in (self.source, self.field) if p)
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(UserError):
    """The pipeline config file is invalid."""
