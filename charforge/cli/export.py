"""`charforge export onnx`: the generator and/or the face-to-parameter networks as ONNX files."""

from __future__ import annotations

from pathlib import Path

import typer

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


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
