"""`charforge gradio`: the optional Gradio demo (pip install 'charforge[gradio]'), or an app.py for Spaces."""

from __future__ import annotations

from pathlib import Path

import typer


def gradio_command(
    model: list[str] = typer.Option(
        None,
        "--model",
        "-m",
        help="Generator to load: 'default', a .safetensors, a run folder, or NAME=PATH; repeat for several.",
    ),
    f2p: str | None = typer.Option(
        None,
        "--f2p",
        help="Face-to-parameter model folder (default: the shipped one; the photo tab needs it).",
    ),
    creator: str = typer.Option(
        "builtin", help="Creator the photo fit draws with, when the f2p model names none."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind. Not loopback needs --allow-remote."),
    port: int = typer.Option(7860, min=1, max=65535, help="TCP port."),
    share_off: bool = typer.Option(
        True,
        "--share-off",
        help="Gradio's public share tunnel stays off (always: charforge never opens it; there is no --share).",
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host: anyone who can reach the port can then use the demo (no login).",
    ),
    write_app: Path | None = typer.Option(
        None,
        "--write-app",
        help="Write app.py and requirements.txt for a Hugging Face Space into this folder, and exit.",
    ),
) -> None:
    """Serve the Gradio demo (generate from tags and a seed, NPC batches, upscaling, photo fit) on this machine.

    A thin page over the studio's library calls. No analytics, no update check, no share link: nothing leaves
    the machine. Needs the optional extra: pip install 'charforge[gradio]'."""
    from charforge.errors import UserError

    if write_app is not None:
        from charforge.gradio_app import write_app as write

        for p in write(write_app):
            typer.echo(f"wrote {p}")
        typer.echo("upload the folder to a Space (SDK: gradio); docs/ecosystem.md explains the rest")
        return
    from charforge.serve.server import is_loopback

    if not share_off:  # pragma: no cover - the option has no off switch; kept explicit for readers
        raise UserError("--share-off: the share tunnel cannot be turned on")
    if not is_loopback(host) and not allow_remote:
        raise UserError(
            f"--host {host}: not a loopback address, so anyone on the network could use the demo (it has no "
            "login). Add --allow-remote if that is what you want, or bind to 127.0.0.1",
            field="host",
        )
    from charforge.gradio_app import build_demo, launch, load_studio, require_gradio

    require_gradio()  # a clear error before any model loads
    studio = load_studio(model or None, f2p, creator, warn=lambda msg: typer.echo(msg, err=True))
    blocks, theme = build_demo(studio)
    typer.echo(f"charforge gradio demo on http://{host}:{port}/  (Ctrl-C stops it)", err=True)
    launch(blocks, theme, host=host, port=port, block=True)


def register(app: typer.Typer) -> None:
    app.command("gradio")(gradio_command)
