"""`charforge export onnx | hf`: ONNX files for game engines; a Hub-style model folder for the HF ecosystem."""

from __future__ import annotations

from pathlib import Path

import typer

from charforge.cli._json import JSON_HELP, emit, json_mode
from charforge.errors import UserError

export_app = typer.Typer(help="Export models for game engines and other runtimes.", no_args_is_help=True)


@export_app.command("onnx")
def export_onnx(
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="Generator: a .safetensors file or run folder (default: the shipped "
        "model, unless only --f2p is given).",
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="Where to write the generator's .onnx file (default: generator.onnx)."
    ),
    f2p: str = typer.Option(
        None,
        "--f2p",
        help="Also export this face-to-parameter model folder's networks; "
        "with neither --model nor -o, only these.",
    ),
    f2p_out: Path = typer.Option(
        None,
        "--f2p-out",
        help="Folder for the f2p .onnx files (default: <output stem>_f2p next "
        "to -o, or f2p_onnx when no generator is exported).",
    ),
    opset: int = typer.Option(17, "--opset", min=13, max=21, help="ONNX opset version."),
) -> None:
    """Export a generator to ONNX (inputs z and tags, dynamic batch, tag schema in the metadata), and/or f2p networks."""
    with_generator = f2p is None or model is not None or output is not None
    if with_generator:
        output = output or Path("generator.onnx")
        _export_generator(model, output, opset)
    if f2p is not None:
        _export_f2p(
            f2p, f2p_out or (output.with_name(f"{output.stem}_f2p") if output else Path("f2p_onnx")), opset
        )


def _export_generator(model: str | None, output: Path, opset: int) -> None:
    from charforge.export.onnx import PARITY_TOL, export_generator_onnx

    try:
        from charforge.sampling import load_generator
    except ImportError as e:
        raise UserError(f"generators are not available in this install ({e})") from e
    bundle = load_generator(model)
    path = export_generator_onnx(bundle, output, opset=opset)
    typer.echo(
        f"wrote {path}  (z: {bundle.z_dim}, tags: {len(bundle.schema)}, image: 3x{bundle.image_size}x{bundle.image_size}, "
        f"onnxruntime matches PyTorch within {PARITY_TOL})"
    )


def _export_f2p(f2p: str, outdir: Path, opset: int) -> None:
    from charforge.export.onnx import export_f2p_onnx

    try:
        from charforge.f2p import load_f2p
    except ImportError as e:
        raise UserError(f"face-to-parameter is not available in this install ({e})") from e
    report = export_f2p_onnx(load_f2p(f2p), outdir, opset=opset)
    for name, rec in report.items():
        if "error" in rec:
            typer.echo(f"{name}: not exported: {rec['error']}")
        else:
            typer.echo(
                f"{name}: wrote {rec['path']}  (input {rec['input']}; max |ORT - torch| = {rec['parity_max_abs_error']:.1e})"
            )
    typer.echo(f"details: {outdir / 'f2p_onnx.json'}")


@export_app.command("hf")
def export_hf(
    model: str = typer.Argument(
        "default", help="Generator: a shipped name (default), a .safetensors file or a run folder."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Folder to write (new or empty)."),
    license: str | None = typer.Option(
        None,
        "--license",
        help="Licence id for the card's header (e.g. cc-by-4.0), overriding the one derived from the training "
        "data's licences.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace config.json, model.safetensors and README.md in a non-empty folder.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a Hugging Face style model folder: config.json, model.safetensors, README.md (card with YAML header).

    Load it offline with `charforge.load(DIR)` (or `charforge.from_pretrained(DIR)`); docs/ecosystem.md.
    """
    from charforge.hub import export_hf as _export

    with json_mode(as_json):
        rec = _export(model, out, license=license, overwrite=overwrite)
    if as_json:
        emit("export hf", rec)
        return
    typer.echo(
        f"wrote {out}: {', '.join(p.name for p in rec['files'])} (model {rec['model_id']}, licence "
        f"{rec['license']}); load it with charforge.load({str(out)!r})"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
