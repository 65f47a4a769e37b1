"""Helpers of the CLI tests (a module of its own: every test folder has a conftest.py)."""

from __future__ import annotations


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run `charforge ARGS` in this process: (exit code, stdout, stderr)."""
    from charforge.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err
