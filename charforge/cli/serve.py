"""`charforge serve`: the studio web page and HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: list[str] = typer.Option(
            None,
            "--model",
            "-m",
            help="Generator to load: 'default', a .safetensors, a run "
            "folder, or NAME=PATH; repeat for several. Requests pick them by NAME only.",
        ),
        f2p: str | None = typer.Option(
            None, "--f2p", help="Face-to-parameter model folder (default: the shipped one)."
        ),
        creator: str = typer.Option(
            "builtin", help="Creator for the parameter editor, when the f2p model names none."
        ),
        host: str = typer.Option("127.0.0.1", help="Address to bind. Anything but loopback needs --token."),
        port: int = typer.Option(8000, help="TCP port."),
        token: str | None = typer.Option(
            None,
            "--token",
            envvar="CHARFORGE_TOKEN",
            help="Require 'Authorization: Bearer TOKEN' on every /api call.",
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
        max_upload_mb: float = typer.Option(10.0, min=0.1, max=100.0, help="Largest /fit upload, in MB."),
    ) -> None:
        """Serve the studio: generate from tags, fit a character to a photo, batch NPCs. Models load once."""
        from charforge.serve.app import ServeSettings
        from charforge.serve.server import serve as run_server

        settings = ServeSettings(
            host=host,
            port=port,
            token=token,
            max_concurrency=max_concurrency,
            max_queue=queue,
            queue_wait_s=queue_wait,
            timeout_s=timeout,
            max_upload_bytes=int(max_upload_mb * 1e6),
        )
        run_server(settings, model, f2p, creator, backend)
