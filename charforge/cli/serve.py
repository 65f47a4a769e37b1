"""`charforge serve`: the studio web page and HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        model: list[str] = typer.Option(
            None,
            "--model",
            "-m",
            help="Generator to load: 'default', a .safetensors, a run "
            "folder, or NAME=PATH; repeat for several. Requests pick them by NAME only. Without --model: the "
            "shipped GAN ('default'), with the other shipped models ('sharp', '128px', 'styles', 'diffusion') "
            "offered beside it, each loaded on its first request.",
        ),
        f2p: str | None = typer.Option(
            None, "--f2p", help="Face-to-parameter model folder (default: the shipped one)."
        ),
        creator: str = typer.Option(
            "builtin", help="Creator for the parameter editor, when the f2p model names none."
        ),
        host: str = typer.Option(
            "127.0.0.1", help="Address to bind. Anything but loopback needs a token (see below)."
        ),
        port: int = typer.Option(8000, help="TCP port."),
        token: str | None = typer.Option(
            None,
            "--token",
            envvar="CHARFORGE_TOKEN",
            show_envvar=True,
            help="Require 'Authorization: Bearer TOKEN' on every /api call (16+ characters). A value given "
            "here is visible to other users in `ps`: prefer the CHARFORGE_TOKEN environment variable or "
            "--token-file.",
        ),
        token_file: str | None = typer.Option(
            None,
            "--token-file",
            help="Read the token from this file (its first line), e.g. one only you can read (chmod 600).",
        ),
        max_concurrency: int = typer.Option(
            2, min=1, max=64, help="Heavy jobs at once; more wait in a short queue."
        ),
        queue: int = typer.Option(
            32, min=0, max=1024, help="Requests that may wait for a worker; beyond it 503."
        ),
        queue_wait: float = typer.Option(
            10.0, min=0.1, help="Seconds a request may wait for a worker before 503."
        ),
        timeout: float = typer.Option(
            60.0, min=1.0, help="Seconds a job may run before the client gets 504."
        ),
        backend: str = typer.Option(
            "torch",
            help="Generator runtime: torch, or onnx (any model; safetensors are exported once into a cache).",
        ),
        device: str = typer.Option(
            "auto",
            help="Where generators run (torch backend): auto (CUDA, then MPS, else CPU), cpu, cuda or mps.",
        ),
        max_upload_mb: float = typer.Option(10.0, min=0.1, max=100.0, help="Largest /fit upload, in MB."),
        npc_seconds: float = typer.Option(
            20.0,
            min=1.0,
            max=600.0,
            help="Time budget of one /npc batch; past it the client gets 503 with Retry-After.",
        ),
        npc_candidates: int = typer.Option(
            2000,
            min=1,
            max=100_000,
            help="Portraits one /npc batch may draw while looking for distinct characters; past it 422.",
        ),
        upscaler: str | None = typer.Option(
            None,
            "--upscaler",
            help="Upscaler for requests with upscale 2 or 4: a .safetensors file or a `charforge sr train` run "
            "folder (default: the shipped one, loaded on first use).",
        ),
    ) -> None:
        """Serve the studio: generate from tags, fit a character to a photo, batch NPCs. Models load once.

        On the default loopback address the studio answers only requests for localhost / 127.0.0.1 / [::1]
        and refuses cross-origin POSTs (other web pages). Any other --host needs a token: set
        CHARFORGE_TOKEN, or pass --token-file (or --token, which other users can see in `ps`).
        """
        from charforge.errors import UserError
        from charforge.serve.app import ServeSettings
        from charforge.serve.server import check_token, read_token_file
        from charforge.serve.server import serve as run_server

        if token_file is not None:
            if token is not None:
                raise UserError(
                    "give the token one way: --token-file, or --token / CHARFORGE_TOKEN, not both"
                )
            token = read_token_file(token_file)
        else:
            check_token(token, _token_source(ctx))

        settings = ServeSettings(
            host=host,
            port=port,
            token=token,
            max_concurrency=max_concurrency,
            max_queue=queue,
            queue_wait_s=queue_wait,
            timeout_s=timeout,
            max_upload_bytes=int(max_upload_mb * 1e6),
            npc_time_s=npc_seconds,
            npc_max_candidates=npc_candidates,
        )
        run_server(settings, model, f2p, creator, backend, device=device, upscaler=upscaler)


def _token_source(ctx) -> str:
    """Where the token came from, for error messages: '--token' or 'CHARFORGE_TOKEN'."""
    try:
        source = ctx.get_parameter_source("token")
    except Exception:  # an older click without parameter sources: the message is then just less specific
        return "--token"
    return "CHARFORGE_TOKEN" if getattr(source, "name", "") == "ENVIRONMENT" else "--token"
