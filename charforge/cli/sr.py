"""`charforge upscale IMAGES` and `charforge sr train | eval | export`: anime super-resolution (docs/upscale.md)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

sr_app = typer.Typer(
    help="Train, evaluate and export the upscaler (x2 / x4 super-resolution).", no_args_is_help=True
)

UPSCALER_HELP = (
    "Upscaler: a shipped name (default), a .safetensors file, or a run folder of `charforge sr train`."
)


@sr_app.command("train")
def train(
    out: Path = typer.Option(..., "-o", "--out", help="Run folder (runs/NAME)."),
    steps: int = typer.Option(12000, help="Optimiser steps."),
    batch_size: int = typer.Option(16, help="Patches per step."),
    patch: int = typer.Option(40, help="Input patch side in px (of the 64 px renders)."),
    lr: float = typer.Option(2e-3, help="Peak Adam learning rate (warm-up, then cosine decay)."),
    n_train: int = typer.Option(4000, help="Creator characters rendered at 64, 128 and 256 px (cached)."),
    seed: int = typer.Option(0, help="Seed of the training characters, the batches and the initial weights."),
    channels: int = typer.Option(48, help="Trunk width."),
    blocks: int = typer.Option(8, help="Residual blocks in the trunk."),
    up_channels: int = typer.Option(24, help="Channels after the first pixel shuffle."),
    cel_share: float = typer.Option(
        0.4,
        help="Share of training characters in the cel style (the generators'); the rest span the six styles.",
    ),
    clean_share: float = typer.Option(0.25, help="Share of inputs left undegraded."),
    blur_p: float = typer.Option(
        0.7, help="Of the degraded inputs: chance of a Gaussian blur (GAN softness)."
    ),
    fade_p: float = typer.Option(
        0.0, help="Of the degraded inputs: chance of faded outlines (thin dark lines blended away)."
    ),
    chroma_p: float = typer.Option(
        0.0, help="Of the degraded inputs: chance of colour fringes (channels shifted by < 1 px)."
    ),
    speckle_p: float = typer.Option(
        0.0, help="Of the degraded inputs: chance of blotchy colour noise along edges (a GAN's speckle)."
    ),
    edge_weight: float = typer.Option(
        0.0, help="Weight of an L1 term between the Laplacians of output and target."
    ),
    gan_weight: float = typer.Option(
        0.0,
        help="Weight of an adversarial term (small patch discriminator): sharper lines, risk of artefacts.",
    ),
    init_from: str | None = typer.Option(
        None, "--init-from", help="Start from this upscaler (file, run folder or shipped name): a fine-tune."
    ),
    gen_model: list[str] = typer.Option(
        [],
        "--gen-model",
        help="Also train on crops of this generator's outputs (shipped name, file or run folder; repeatable): "
        "a discriminator pushes their x4 outputs towards the renders, a low-frequency term keeps them "
        "faithful. No truth exists for them, so they only get these two terms.",
    ),
    gen_gan_weight: float = typer.Option(0.05, help="Adversarial weight of the --gen-model crops."),
    gen_fidelity_weight: float = typer.Option(
        1.0,
        help="Weight of L1 between the low-passed downscaled output and the low-passed --gen-model input.",
    ),
    gen_batch: int = typer.Option(8, help="--gen-model crops per step."),
    d_warmup: int = typer.Option(
        0,
        help="First steps in which only the discriminator learns (no adversarial gradient to the upscaler).",
    ),
    adv_ramp: int = typer.Option(0, help="Then the adversarial weights rise linearly over this many steps."),
    gen_pool: int = typer.Option(2000, help="Outputs drawn (once, cached) from each --gen-model."),
    eval_every: int = typer.Option(500, help="Validation PSNR, sample sheet and curves every N steps."),
    checkpoint_every: int = typer.Option(500, help="Checkpoint every N steps."),
    minutes: float | None = typer.Option(
        None, help="Stop (checkpointed, exit 0) after this much wall time; --resume goes on."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's choice)."),
    bf16: bool = typer.Option(
        True, help="bf16 autocast where the CPU computes bf16 natively; fp32 elsewhere."
    ),
) -> None:
    """Train an upscaler on exact creator pairs (64 -> 128 and 256 px) under a degradation model."""
    from charforge.models.sr import SRConfig
    from charforge.train.sr import SRTrainOptions, train_sr

    opts = SRTrainOptions(
        steps=steps,
        batch_size=batch_size,
        patch=patch,
        lr=lr,
        n_train=n_train,
        seed=seed,
        cel_share=cel_share,
        clean_share=clean_share,
        blur_p=blur_p,
        fade_p=fade_p,
        chroma_p=chroma_p,
        speckle_p=speckle_p,
        edge_weight=edge_weight,
        gan_weight=gan_weight,
        init_from=init_from,
        gen_models=tuple(gen_model),
        gen_gan_weight=gen_gan_weight if gen_model else 0.0,
        gen_fidelity_weight=gen_fidelity_weight if gen_model else 1.0,
        gen_batch=gen_batch,
        d_warmup=d_warmup,
        adv_ramp=adv_ramp,
        gen_pool=gen_pool,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        minutes=minutes,
        threads=threads,
        bf16=bf16,
        model=SRConfig(channels=channels, blocks=blocks, up_channels=up_channels),
    )
    command = "charforge " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    res = train_sr(out, opts, resume=resume, command=command)
    m = res.metrics
    summary = ", ".join(
        f"x{s} {m[f'psnr_x{s}_clean']:.2f} dB (bicubic {m[f'bicubic_x{s}_clean']:.2f})"
        for s in (2, 4)
        if f"psnr_x{s}_clean" in m
    )
    state = "finished" if res.finished else f"stopped at step {res.step} (rerun with --resume to go on)"
    typer.echo(f"{state}; validation {summary}; wrote {res.path}")


@sr_app.command("export")
def export(
    model: str | None = typer.Option(None, "--model", "-m", help=UPSCALER_HELP),
    out: Path = typer.Option(Path("upscaler_onnx"), "-o", "--out", help="Output folder."),
) -> None:
    """ONNX export for engines: upscaler_x2.onnx and upscaler_x4.onnx (+ JSON sidecars), parity-checked."""
    from charforge.export.sr_onnx import export_upscaler_onnx
    from charforge.models.io import file_sha256, read_metadata
    from charforge.models.sr import load_upscaler_file
    from charforge.sr import resolve_path

    path = resolve_path(model)
    net, meta = load_upscaler_file(path)
    model_id = str(read_metadata(path).get("model_id", path.stem))
    summary = export_upscaler_onnx(net, out, model_id=model_id, sha256=file_sha256(path))
    for k, v in summary.items():
        typer.echo(f"wrote {v['path']} ({k}; max difference to PyTorch {v['parity_max_abs']:.2g} of 255)")


def _inputs(paths: list[Path]) -> list[Path]:
    from charforge.core.images import is_image_path
    from charforge.errors import UserError

    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            inside = sorted(q for q in p.rglob("*") if q.is_file() and is_image_path(q))
            if not inside:
                raise UserError(f"{p}: no image files in this folder (png, jpg, webp, bmp, gif, tif)")
            found += inside
        elif p.is_file():
            found.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return found


def _read(path: Path):
    """(uint8 (H, W, 3 or 4), charforge metadata of the source, or {}), from one decode."""
    import numpy as np

    from charforge.core.images import load_image_with_alpha
    from charforge.provenance.metadata import charforge_fields

    got = load_image_with_alpha(
        path
    )  # checks: a real image, not a bomb, readable (BadImage names the reason)
    meta = charforge_fields(got.text)
    if got.alpha is not None:
        return np.concatenate([got.rgb, got.alpha[..., None]], -1), meta
    return got.rgb, meta


def upscale(
    images: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    out: Path = typer.Option(Path("upscaled"), "-o", "--out", help="Output folder (NAME_x4.png per input)."),
    scale: int = typer.Option(4, "--scale", "-s", help="2 or 4."),
    model: str | None = typer.Option(None, "--upscaler", help=UPSCALER_HELP),
    backend: str = typer.Option("torch", help="torch, or onnx (onnxruntime; exported once into the cache)."),
    device: str = typer.Option(
        "cpu", help="Where the upscaler runs: cpu, cuda, mps or auto (torch backend)."
    ),
    no_watermark: bool = typer.Option(False, "--no-watermark", help="Skip the invisible watermark."),
    pixel_art: str = typer.Option(
        "auto",
        "--pixel-art",
        help="auto: pictures drawn on an exact pixel grid are enlarged by repeating pixels (crisp cells, the same "
        "palette); off: the network for every picture.",
    ),
) -> None:
    """Upscale any images x2 or x4 (anime-style super-resolution). Writes PNGs with provenance metadata
    (the source's charforge metadata is kept and the upscaler is recorded beside it). Pixel art on an exact grid
    is enlarged by pixel repeats, not the network (--pixel-art off to change that); the summary counts them."""
    from charforge.core.images import BadImage
    from charforge.errors import UserError
    from charforge.provenance import save_png
    from charforge.sr import check_scale, load_upscaler
    from charforge.utils.progress import progress

    check_scale(scale, field="scale")
    if scale == 1:
        raise UserError("--scale 1: nothing to do; choose 2 or 4", field="scale")
    from charforge.core.pixelart import check_mode

    check_mode(pixel_art)  # before any file, not once per file
    files = _inputs(images)
    up = load_upscaler(model, backend=backend, device=device)
    failed: list[str] = []
    written = pixel = 0
    drop = ("watermark", "watermark_tag", "software", "ai_generated")
    with progress(total=len(files), desc="upscaling", unit="img") as bar:
        for path in files:
            try:
                img, src_meta = _read(path)
                how: list[str] = []
                big = up.upscale(img, scale, pixel_art=pixel_art, methods=how)
            except BadImage as e:
                failed.append(f"{path}: {e.reason}")
                bar.update(1)
                continue
            except UserError as e:
                failed.append(f"{path}: {e}")
                bar.update(1)
                continue
            meta = {k: v for k, v in src_meta.items() if k not in drop}
            meta |= {"source_file": path.name, **up.provenance(scale), "upscale_method": how[0]}
            repeats = how[0].startswith("nearest")
            pixel += repeats
            mark = not no_watermark and not repeats
            if repeats and not no_watermark:  # no network changed a pixel; a mark would break the palette
                meta["watermark_skipped"] = "pixel art enlarged by pixel repeats (the mark would add colours)"
            rgb = big[..., :3]
            dest = out / f"{path.stem}_x{scale}.png"
            if big.shape[-1] == 4:  # keep transparency: watermark the colour, then put the alpha back
                import numpy as np
                from PIL import Image

                from charforge.provenance.metadata import apply_watermark, build_pnginfo
                from charforge.utils.io import atomic_path

                marked, meta = apply_watermark(rgb, meta, mark)
                rgba = np.concatenate([marked, big[..., 3:]], -1)
                with atomic_path(dest) as tmp:
                    Image.fromarray(rgba).save(tmp, format="PNG", pnginfo=build_pnginfo(meta))
            else:
                save_png(dest, rgb, meta, watermark=mark)
            written += 1
            bar.update(1)
    typer.echo(f"wrote {written} image(s) to {out} (x{scale}, upscaler {up.model_id})")
    if pixel:
        typer.echo(
            f"pixel art: {pixel} of {written} drawn on an exact pixel grid were enlarged by repeating pixels, not by "
            "the network (--pixel-art off to use the network for them too)"
        )
    if failed:
        for line in failed:
            typer.echo(f"error: {line}", err=True)
        typer.echo(f"{len(failed)} of {len(files)} input(s) could not be upscaled (listed above)", err=True)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(sr_app, name="sr")
    app.command("upscale")(upscale)
