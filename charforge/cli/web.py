"""`charforge export web`: a static character generator folder for any static file host (docs/web.md).

Attached to the `export` group of charforge/cli/export.py (registered before this module: names sort)."""

from __future__ import annotations

from pathlib import Path

import typer

from charforge.cli._json import JSON_HELP, emit, json_mode


def export_web(
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="Generator: a shipped name, a .safetensors file or a run folder (default: shipped).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write the site into (empty, or an earlier export)."
    ),
    title: str = typer.Option(None, "--title", help="Page title (default: charforge: MODEL_ID)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """A self-contained static site (page, ONNX model, onnxruntime-web, tag schema, seed rules): characters are
    made in the visitor's browser (portable-v1 seeds), with PNG metadata and the invisible watermark."""
    from charforge.export.web import export_site
    from charforge.sampling import load_generator

    with json_mode(as_json):
        bundle = load_generator(model, device="cpu")
        manifest = export_site(bundle, out, title=title)
    mb = manifest["first_load_bytes"] / 1e6
    if as_json:
        emit(
            "export web",
            {"out": out, "first_load_bytes": manifest["first_load_bytes"], "files": manifest["files"]},
        )
    else:
        typer.echo(
            f"wrote {out}/ ({len(manifest['files'])} files; first load {mb:.1f} MB). Try it: "
            f"python -m http.server -d {out} 8000, then open http://127.0.0.1:8000/ (docs/web.md: static hosts)"
        )


def register(app: typer.Typer) -> None:
    for group in app.registered_groups:
        if group.name == "export" and group.typer_instance is not None:
            group.typer_instance.command("web")(export_web)
            return
    app.command("export-web")(export_web)  # no export group in this install: a top-level command instead
