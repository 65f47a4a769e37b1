"""`charforge data build | import | inspect`."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperCommand

from charforge.cli._json import JSON_HELP, emit, json_mode

data_app = typer.Typer(
    help="Build, import, inspect and export packed datasets (and exchange them with StyleGAN).",
    no_args_is_help=True,
)
IMPORT_FORMATS = ("folder", "stylegan")


@data_app.command("build")
def build(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder for the packed dataset."),
    creator: str = typer.Option("builtin", help="Creator name, module:function, or entry-point name."),
    n: int = typer.Option(50_000, help="Number of characters to render."),
    size: int = typer.Option(64, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Seed for the sampled parameters."),
    workers: int = typer.Option(1, help="Render processes (each uses one thread)."),
    chunk: int = typer.Option(512, min=1, help="Images per resumable chunk."),
    styles: str = typer.Option(
        None,
        "--styles",
        help="Render styles of the built-in creator, comma-separated, or 'all' (cel, flat, painterly, manga, "
        "pixel, chibi). Each image draws one style uniformly; the schema gains the 'style' tag group. "
        "Same as --creator builtin-styles=LIST.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Render a tagged dataset from a creator (stores the parameters too). Rerun to resume."""
    from charforge.data.build import build_from_creator
    from charforge.data.inspect import summarise
    from charforge.errors import UserError

    if styles is not None:
        if creator != "builtin":
            raise UserError(
                "--styles belongs to the built-in creator; leave --creator out or set it to builtin"
            )
        from charforge.creators.builtin.styles import check_style

        chosen = [check_style(s) for s in styles.split(",") if s.strip() and s.strip() != "all"]
        creator = "builtin-styles" if not chosen else "builtin-styles=" + ",".join(chosen)
    with json_mode(as_json):
        ds = build_from_creator(out, creator=creator, n=n, size=size, seed=seed, chunk=chunk, workers=workers)
    if as_json:
        emit("data build", {"dataset": dataset_doc(ds)})
    else:
        typer.echo(summarise(ds))


def dataset_doc(ds) -> dict:
    """A packed dataset in --json documents: where, how many, what size, its tags and their frequencies."""
    import numpy as np

    freqs = ds.tag_frequencies
    return {
        "path": ds.root,
        "images": len(ds),
        "size": ds.size,
        "tags": list(ds.schema.tags),
        "tag_frequencies": {t: round(float(f), 6) for t, f in zip(ds.schema.tags, freqs)},
        "untagged": int((np.asarray(ds.tags).sum(axis=1) == 0).sum()),
        "parameters": ds.params is not None,
        "licences": ds.licence_counts(),
    }


class _ImportCommand(TyperCommand):
    """`--estimate-tags` may be given without a value: then it means the shipped tagger ("default")."""

    def parse_args(self, ctx, args):
        args = list(args)
        for i, a in enumerate(args):
            if a == "--":
                break
            if a == "--estimate-tags" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, "default")
                break
        return super().parse_args(ctx, args)


def _dedupe_threshold(value: str) -> int:
    v = value.strip().lower()
    if v in ("off", "none", "-1"):
        return -1
    try:
        n = int(v)
    except ValueError:
        n = None
    if n is None or not 0 <= n <= 64:
        from charforge.errors import UserError

        raise UserError(
            f"--dedupe-threshold {value}: must be a whole number of bits 0-64 (lower keeps more, 6 the "
            "default) or 'off' to keep every image",
            field="dedupe_threshold",
        )
    return n


@data_app.command("import", cls=_ImportCommand)
def import_(
    src: Path = typer.Argument(
        ...,
        help="Folder of images (searched recursively); with --format stylegan a StyleGAN dataset (.zip or folder "
        "with dataset.json).",
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Output folder for the packed dataset (not inside SRC)."
    ),
    size: int = typer.Option(64, help="Output side in pixels."),
    tags: Path | None = typer.Option(
        None, "--tags", help="CSV (file,tags[,license]) or JSONL of tags per file."
    ),
    faces: str = typer.Option(
        "none",
        help="Face detector: anime, human, human-dlib or none (centre crop; the head of tall sprites).",
    ),
    crop_scale: float = typer.Option(
        1.5, help="Zoom the detected face box out by this factor to keep the hair."
    ),
    license: str | None = typer.Option(
        None, "--license", help="Licence for images the tags file gives none."
    ),
    min_size: int = typer.Option(32, help="Skip images whose shorter side is below this, in pixels."),
    estimate_tags: str | None = typer.Option(
        None,
        "--estimate-tags",
        help="Fill the tags of untagged images with a tagger: a tagger file, or 'default' (also "
        "--estimate-tags alone) for the shipped one. Writes a review sheet and an editable tags CSV.",
    ),
    tag_min_confidence: float = typer.Option(
        0.5,
        help="With --estimate-tags: an exclusive group (hair colour...) whose best probability is below "
        "this is left unknown instead of guessed (0 = always guess).",
    ),
    dedupe_threshold: str = typer.Option(
        "6",
        help="Near-duplicate removal: max perceptual-hash distance in bits, 0-64 (lower keeps more; a "
        "match must also look the same patch by patch, so expression variants stay), or 'off' (-1) to "
        "keep every image. Dropped pairs are drawn on import_duplicates.png.",
    ),
    closeups: bool = typer.Option(
        True,
        "--closeups/--no-closeups",
        help="With a detector: keep images with no detected face that look like a face filling the frame.",
    ),
    max_faces: int = typer.Option(8, help="With a detector: most faces (samples) taken from one image."),
    pixel_art: bool = typer.Option(
        True,
        "--pixel-art/--no-pixel-art",
        help="Pixel art on an exact grid is resized cell by cell (crisp cells, the same palette) instead of "
        "with a smoothing filter.",
    ),
    keep_unfamiliar: bool = typer.Option(
        False,
        "--keep-unfamiliar",
        help="With --estimate-tags: estimate tags even for art unlike anything the estimator learned from "
        "(by default a folder that is mostly such art gets no estimated tags rather than guesses).",
    ),
    learn_tags: bool = typer.Option(
        True,
        "--learn-tags/--no-learn-tags",
        help="With --tags labelling some images and --estimate-tags filling the rest: learn each independent "
        "tag's look in your art from the labelled images and use it where it reads them better than the "
        "estimator (docs/own_art.md, 'Teach it your hats').",
    ),
    suggest_labels: int = typer.Option(
        0,
        "--suggest-labels",
        min=0,
        max=10_000,
        help="Also write label_these.csv: this many images worth labelling first (one per kind of picture in the "
        "folder), with their current tags; correct them and import again with --tags label_these.csv.",
    ),
    max_pixels: int = typer.Option(
        40_000_000, help="Refuse images with more pixels than this (decompression bombs)."
    ),
    workers: int = typer.Option(1, help="Decoding processes."),
    extra_tags: str = typer.Option(
        "",
        help="Your own tags beyond the 34 built-in ones, comma-separated (e.g. 'earrings, freckles'); they join "
        "the dataset's schema, so the tags file may use them and models trained on it generate them. The tags "
        "file can declare them too: a first line `# extra tags: earrings, freckles` (CSV) or "
        '{"extra_tags": [...]} (JSONL).',
    ),
    fmt: str = typer.Option(
        "folder",
        "--format",
        help="folder: a folder of art (everything above applies). stylegan: a StyleGAN dataset, a .zip or folder "
        "with dataset.json (images kept as they are, labels -> tags; only --license and --max-pixels apply). "
        "docs/ecosystem.md.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Import a folder of art: detect faces, crop 1.5x, resize, dedupe, tag. Writes an import report.

    With --format stylegan: a StyleGAN dataset (zip or folder with dataset.json) into the packed format.
    """
    from charforge.data.importer import import_folder
    from charforge.errors import UserError

    if fmt not in IMPORT_FORMATS:
        raise UserError(f"--format {fmt}: must be one of {', '.join(IMPORT_FORMATS)}", field="format")
    if fmt == "stylegan":
        from charforge.data.exchange import import_stylegan

        given = {
            "--size": size != 64,
            "--tags": tags is not None,
            "--faces": faces != "none",
            "--estimate-tags": estimate_tags is not None,
            "--extra-tags": bool(extra_tags.strip()),
            "--keep-unfamiliar": keep_unfamiliar,
            "--suggest-labels": suggest_labels > 0,
            "--no-learn-tags": not learn_tags,
        }
        if any(given.values()):
            raise UserError(
                f"{', '.join(k for k, v in given.items() if v)}: not used with --format stylegan, which keeps the "
                "archive's images and labels as they are; leave them out (only --license and --max-pixels apply)",
                field="format",
            )

        with json_mode(as_json):
            ds = import_stylegan(src, out, license=license, max_pixels=max_pixels)
        if as_json:
            emit("data import", {"format": "stylegan", "source": src, "dataset": dataset_doc(ds)})
        else:
            typer.echo(summarise_dataset(ds))
        return
    if not src.is_dir():
        hint = (
            "; for a StyleGAN dataset archive add --format stylegan" if src.suffix.lower() == ".zip" else ""
        )
        raise UserError(f"{src}: not a folder. Give the folder that holds your images{hint}")
    if (src / "dataset.json").is_file():
        typer.echo(
            f"note: {src} has a dataset.json; if it is a StyleGAN dataset, --format stylegan keeps its labels",
            err=True,
        )
    with json_mode(as_json):
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
            dedupe_threshold=_dedupe_threshold(dedupe_threshold),
            max_pixels=max_pixels,
            workers=workers,
            closeups=closeups,
            max_faces=max_faces,
            pixel_art=pixel_art,
            tag_min_confidence=tag_min_confidence,
            extra_tags=[t for t in extra_tags.split(",") if t.strip()],
            keep_unfamiliar=keep_unfamiliar,
            learn_tags=learn_tags,
            suggest_labels=suggest_labels,
        )
    if as_json:
        emit(
            "data import",
            {
                "dataset": dataset_doc(report.dataset),
                "files": report.total_files,
                "kept": report.kept,
                "skipped": report.skipped,
                "duplicates": report.duplicates,
                "faces_found": report.faces_found,
                "tags_from": report.tags_from,
                "found_by": report.found_by,
                "folders_not_read": report.folders,
                "warnings": report.warnings,
                "sheets": report.sheets,
                "learned_tags": report.learned_tags,
                "suggested": report.suggested,
                "report": report.report_path,
            },
        )
    else:
        typer.echo(report.summary())


def summarise_dataset(ds) -> str:
    from charforge.data.inspect import summarise

    return summarise(ds)


EXPORT_FORMATS = ("stylegan",)


@data_app.command("export")
def export(
    root: Path = typer.Argument(..., help="A packed dataset folder."),
    dest: Path = typer.Argument(..., help="Output: a .zip archive, or a new folder."),
    fmt: str = typer.Option(
        "stylegan",
        "--format",
        help="stylegan: PNGs + dataset.json with multi-hot tag labels, as StyleGAN2-ADA / StyleGAN3 read them "
        "(docs/ecosystem.md).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing .zip."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export a packed dataset for other tools: StyleGAN's zip (or folder) of PNGs with dataset.json labels."""
    from charforge.data.exchange import export_stylegan
    from charforge.errors import UserError

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format {fmt}: must be one of {', '.join(EXPORT_FORMATS)}", field="format")
    with json_mode(as_json):
        rec = export_stylegan(root, dest, overwrite=overwrite)
    if as_json:
        emit("data export", rec)
    else:
        typer.echo(
            f"wrote {rec['archive']}: {rec['images']} PNGs ({rec['size']}x{rec['size']}) and dataset.json with "
            f"{rec['labels']}-tag multi-hot labels"
        )


@data_app.command("inspect")
def inspect(
    root: Path = typer.Argument(..., help="A packed dataset folder."),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Where to write the PNGs (default: DIR/inspect)."
    ),
    n: int = typer.Option(64, help="Images on the contact sheet."),
    verify: bool = typer.Option(True, help="Check the sha256 checksums of the arrays."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print a summary and write a contact sheet and a tag-frequency chart."""
    from charforge.data.inspect import inspect_dataset, summarise
    from charforge.data.packed import load_packed

    with json_mode(as_json):
        ds = load_packed(root, verify=verify)
        paths = inspect_dataset(ds, out or root / "inspect", n=n)
    if as_json:
        emit(
            "data inspect",
            {"dataset": dataset_doc(ds), "checksums": "ok" if verify else "not checked"} | paths,
        )
        return
    typer.echo(summarise(ds))
    if verify:
        typer.echo("checksums    ok")
    for name, p in paths.items():
        typer.echo(f"{name:12} {p}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
