"""`charforge data build | import | inspect`."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Build, import and inspect packed datasets.", no_args_is_help=True)


@data_app.command("build")
def build(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder for the packed dataset."),
    creator: str = typer.Option("builtin", help="Creator name, module:function, or entry-point name."),
    n: int = typer.Option(50_000, help="Number of characters to render."),
    size: int = typer.Option(64, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Seed for the sampled parameters."),
    workers: int = typer.Option(1, help="Render processes (each uses one thread)."),
    chunk: int = typer.Option(512, min=1, help="Images per resumable chunk."),
) -> None:
    """Render a tagged dataset from a creator (stores the parameters too). Rerun to resume."""
    from charforge.data.build import build_from_creator
    from charforge.data.inspect import summarise

    ds = build_from_creator(out, creator=creator, n=n, size=size, seed=seed, chunk=chunk, workers=workers)
    typer.echo(summarise(ds))


@data_app.command("import")
def import_(
    src: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder for the packed dataset."),
    size: int = typer.Option(64, help="Output side in pixels."),
    tags: Path | None = typer.Option(
        None, "--tags", help="CSV (file,tags[,license]) or JSONL of tags per file."
    ),
    faces: str = typer.Option("none", help="Face detector: anime, human, human-dlib or none (centre crop)."),
    crop_scale: float = typer.Option(
        1.5, help="Zoom the detected face box out by this factor to keep the hair."
    ),
    license: str | None = typer.Option(
        None, "--license", help="Licence for images the tags file gives none."
    ),
    min_size: int = typer.Option(32, help="Skip images whose shorter side is below this, in pixels."),
    estimate_tags: Path | None = typer.Option(None, help="A tagger to fill tags of untagged images."),
    dedupe_threshold: int = typer.Option(
        6, help="Max perceptual-hash Hamming distance counted as a duplicate (0-64)."
    ),
    max_pixels: int = typer.Option(
        40_000_000, help="Refuse images with more pixels than this (decompression bombs)."
    ),
    workers: int = typer.Option(1, help="Decoding processes."),
) -> None:
    """Import a folder of art: detect faces, crop 1.5x, resize, dedupe, tag. Writes an import report."""
    from charforge.data.importer import import_folder

    if not src.is_dir():
        from charforge.errors import UserError

        raise UserError(f"{src}: not a folder. Give the folder that holds your images")
    report = import_folder(
        src,
        out,
        size=size,
        tags_file=tags,
        faces=faces,
        crop_scale=crop_scale,
        license=license,
        min_size=min_size,
        estimate_tags=estimate_tags,
        dedupe_threshold=dedupe_threshold,
        max_pixels=max_pixels,
        workers=workers,
    )
    typer.echo(report.summary())


@data_app.command("inspect")
def inspect(
    root: Path = typer.Argument(..., help="A packed dataset folder."),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Where to write the PNGs (default: DIR/inspect)."
    ),
    n: int = typer.Option(64, help="Images on the contact sheet."),
    verify: bool = typer.Option(True, help="Check the sha256 checksums of the arrays."),
) -> None:
    """Print a summary and write a contact sheet and a tag-frequency chart."""
    from charforge.data.inspect import inspect_dataset, summarise
    from charforge.data.packed import load_packed

    ds = load_packed(root, verify=verify)
    paths = inspect_dataset(ds, out or root / "inspect", n=n)
    typer.echo(summarise(ds))
    if verify:
        typer.echo("checksums    ok")
    for name, p in paths.items():
        typer.echo(f"{name:12} {p}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
