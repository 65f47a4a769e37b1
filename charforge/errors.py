"""User-facing errors: the CLI and the HTTP API turn these into one clear message, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: bad input, unknown name, wrong value.

    The message must name the file, row or field, say what was wrong, and say what to do.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field
