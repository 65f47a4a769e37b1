"""`--json` for scripts: one JSON document with the results on stdout, everything else on stderr.

A command that takes `--json` runs its work inside `json_mode(as_json)`: while it is on, anything written
to stdout (a library's print, a `typer.echo` of a human summary) goes to stderr instead, so stdout holds
nothing but the document that `emit` writes at the end. On an error nothing is written to stdout: the
message goes to stderr and the exit status says what happened (docs/cli.md lists the codes).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

JSON_HELP = (
    "Print one JSON document with the results on stdout; messages and progress go to stderr "
    "(docs/cli.md describes each command's document)."
)


def _plain(value: Any) -> Any:
    """Paths as strings, numpy scalars/arrays as numbers/lists, non-finite floats as null (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@contextlib.contextmanager
def json_mode(enabled: bool) -> Iterator[None]:
    """While enabled, stdout is redirected to stderr (the document is written after, by `emit`)."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def emit(command: str, result: dict[str, Any]) -> None:
    """Write the command's one JSON document to stdout: {"command": ..., "charforge_version": ..., **result}."""
    from charforge import __version__

    doc = {"command": command, "charforge_version": __version__, **_plain(result)}
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()
