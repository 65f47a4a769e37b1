"""The one `charforge` CLI. Each module in this package defines `register(app)`; discovery is automatic.

Commands are thin wrappers over library functions. A `UserError` anywhere becomes one clear line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

# OpenMP workers that spin while waiting collapse throughput (10x measured) when the cores are shared with
# other jobs; passive waiting costs little on an idle machine. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer

from charforge.errors import UserError

app = typer.Typer(
    name="charforge",
    help="charforge: an AI character-art studio on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """charforge: create, train, generate, evaluate, fit and serve anime characters."""


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        # Usage errors (missing option, bad value) from click or from typer's bundled copy of it:
        # recognised by shape, since the two packages' exception classes differ.
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":
            sys.exit(1)
        raise
