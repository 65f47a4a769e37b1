"""Constants and a CLI runner shared by the f2p tests."""

from __future__ import annotations

TOY_SPEC = "tests.f2p.f2p_toy:make"
TINY_TRAIN = [
    "--n",
    "240",
    "--size",
    "16",
    "--emb-dim",
    "16",
    "--emb-width",
    "8",
    "--embedder-steps",
    "150",
    "--imitator-steps",
    "250",
    "--translator-steps",
    "250",
    "--finetune-steps",
    "60",
    "--n-search",
    "32",
    "--search-iters",
    "10",
    "--hidden",
    "64",
    "--threads",
    "1",
    "--workers",
    "2",
]


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run `charforge ARGS` in-process; returns (exit code, stdout + stderr)."""
    import contextlib
    import io

    from charforge.cli import main

    buf = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            main(args)
        except SystemExit as e:
            code = int(e.code or 0)
    return code, buf.getvalue()
