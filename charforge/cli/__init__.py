"""The one `charforge` CLI. Each module in this package defines `register(app)`; discovery is automatic.

Commands are thin wrappers over library functions. A `UserError` anywhere becomes one clear line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import threading

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
    epilog="Exit status: 0 done; 2 a mistake in the input or usage (the message on stderr names it); "
    "130 / 143 stopped by Ctrl-C / SIGTERM; 1 an unexpected failure (a bug: please report it). "
    "--json on generate, npc, interpolate, fit, eval, verify and the data commands prints one JSON document "
    "on stdout. docs/cli.md has the details.",
)


def _print_version(value: bool) -> None:
    if value:
        from charforge import __version__

        typer.echo(f"charforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version (charforge X.Y.Z) and exit.",
    ),
) -> None:
    """charforge: create, train, generate, evaluate, fit and serve anime characters."""


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


class Interrupted(Exception):
    """A command stopped early by a signal, after saving what it could: main() prints `message`, exits `code`."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


# What an interrupted command kept and how to go on, by command path; the rest get RESUME_DEFAULT.
RESUME_HINTS = {
    "data build": "finished chunks are kept: rerun the same command to resume",
    "data import": "finished chunks are kept: rerun the same command to resume",
    "train": "the last periodic checkpoint is kept: rerun the same command with --resume to continue",
    "sr train": "the last checkpoint is kept: rerun the same command with --resume to continue",
    "serve": "the studio server is not running",
}
RESUME_DEFAULT = "its work is not finished: rerun the same command to start it again"
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + signal number, as shells report a process killed by it
_received: list[int] = []  # signals seen by _on_sigterm / SIGINT, newest last


def _on_sigterm(signum, _frame) -> None:
    """SIGTERM unwinds like Ctrl-C (finally blocks run, files get closed), then main() exits 143."""
    _received.append(signum)
    raise KeyboardInterrupt


def _command_path(argv: list[str]) -> str:
    """The subcommand words of argv, e.g. 'data build' (options and their values are not included)."""
    import typer.main

    try:
        cmd = typer.main.get_command(app)
    except Exception:  # never let the exit message fail: fall back to the leading plain words
        cmd = None
    words = []
    for a in argv:
        if cmd is None:
            if a.startswith("-") or len(words) == 2:
                break
            words.append(a)
            continue
        if a.startswith("-") or not hasattr(cmd, "commands") or a not in cmd.commands:
            break
        words.append(a)
        cmd = cmd.commands[a]
    return " ".join(words)


def _interrupted_exit(argv: list[str]) -> None:
    import signal

    term = bool(_received) and _received[-1] == signal.SIGTERM
    name, code = ("SIGTERM", EXIT_SIGTERM) if term else ("Ctrl-C (SIGINT)", EXIT_SIGINT)
    path = _command_path(argv)
    hint = RESUME_HINTS.get(path, RESUME_DEFAULT)
    print(f"interrupted by {name}: `charforge {path}` stopped early; {hint}", file=sys.stderr, flush=True)
    sys.exit(code)


_register_all()


def main(argv: list[str] | None = None) -> None:
    import signal

    argv = list(sys.argv[1:] if argv is None else argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _run(argv)
    finally:
        if previous is not None:  # in-process callers (tests, notebooks) get their own handler back
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str]) -> None:
    try:
        rv = app(args=argv, standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:
        if e.message:
            print(e.message, file=sys.stderr, flush=True)
        sys.exit(e.code)
    except KeyboardInterrupt:  # raised outside the command itself (typer turns the rest into exit code 130)
        _interrupted_exit(argv)
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
    # With standalone_mode=False typer returns an exit code instead of exiting: 130 after Ctrl-C (or our
    # SIGTERM handler), or the code of an explicit typer.Exit.
    if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
        if rv == EXIT_SIGINT:
            _interrupted_exit(argv)
        sys.exit(rv)
