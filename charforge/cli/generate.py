"""`charforge generate | interpolate | npc`: thin wrappers over charforge.sampling."""

from __future__ import annotations

from pathlib import Path

import typer

from charforge.cli._json import JSON_HELP, emit, json_mode

MODEL_HELP = (
    "Generator: a shipped name (default), a .safetensors file, a run folder (its latest EMA weights), a "
    "Hub-style folder from `export hf`, "
    "or with --backend onnx a .onnx export."
)
BACKEND_HELP = (
    "Runtime: torch, or onnx (onnxruntime; a safetensors model is exported once into the cache, "
    "$CHARFORGE_CACHE or ~/.cache/charforge)."
)
DEVICE_HELP = "Where the generator runs: auto (CUDA, then MPS, else CPU), cpu, cuda or mps (torch backend)."
NO_WM_HELP = "Skip the invisible watermark (the PNG metadata then records watermark: none)."
SEED_SCHEME_HELP = (
    "How a seed becomes noise and free tags: torch-v1 (default; the original seeds) or portable-v1 (the same "
    "characters as the browser page and `charforge export web`). Recorded in every PNG and manifest; "
    "docs/web.md defines both."
)
TRUNC_HELP = (
    "Truncation psi in (0, 1]: scales the noise towards the average face. 1 = full variety; 0.6-0.8 = "
    "tags drawn more reliably, faces more alike (docs/generator.md measures the trade-off)."
)


def _warn_untrained(bundle, tags: str, source: str) -> None:
    """Say so (stderr) when a requested tag had no training example; the run goes on."""
    from charforge import sampling

    missing = sampling.untrained_requested(bundle, bundle.schema.parse(tags, source=source))
    if missing:
        typer.echo(sampling.untrained_message(missing), err=True)


STEPS_HELP = "Diffusion models: denoising steps (1-1000; default 20). Fewer is faster and blurrier."
GUIDANCE_HELP = (
    "Diffusion models: classifier-free guidance scale (0-30; default 2, 1 = none). Higher follows the tags "
    "more closely with less variety; costs a second denoiser pass per step."
)
SAMPLER_HELP = "Diffusion models: dpm++ (DPM-Solver++ 2M, default) or ddim."
NEG_GUIDANCE_HELP = (
    'Diffusion models: weight of the push away from the tags turned off with "-tag" (default: --guidance); '
    "0 only switches them off, like a GAN."
)
INIT_HELP = (
    "Diffusion models: start from this image (img2img): variations of a character, or new tags on an "
    "existing image. Centre-cropped to a square and resized to the model's size."
)
STRENGTH_HELP = "With --init-image: how far to move from it, 0 (keep it) to 1 (ignore it); default 0.6."


def _sampler_options(bundle, steps, guidance, sampler, negative_guidance, strength, init_image):
    """The bundle with the sampler options given on the command line (diffusion: steps, guidance, ...), and the
    init image (or None); a family that takes no such option refuses it by name."""
    from charforge.core.images import BadImage, load_image
    from charforge.errors import UserError

    if strength is not None and init_image is None:
        raise UserError(
            "--strength: only used with --init-image IMG (img2img); add one or drop --strength",
            field="strength",
        )
    bundle = bundle.with_options(
        steps=steps,
        guidance=guidance,
        sampler=sampler,
        negative_guidance=negative_guidance,
        strength=strength,
    )
    if init_image is None:
        return bundle, None
    if not bundle.takes("init"):
        raise UserError(
            f"--init-image: the {bundle.config.get('family')} model {bundle.model_id!r} cannot start from an image; "
            "img2img needs a diffusion model (e.g. --model diffusion)",
            field="init_image",
        )
    if not Path(init_image).is_file():
        raise UserError(
            f"--init-image {init_image}: no such file; give a PNG or JPEG image", field="init_image"
        )
    try:
        return bundle, load_image(init_image)
    except BadImage as e:
        raise UserError(f"--init-image {init_image}: {e}", field="init_image") from e


UPSCALE_HELP = (
    "Upscale every output 2x or 4x with the upscaler (anime super-resolution, docs/upscale.md); 1 = off. "
    "The PNG metadata records the upscaler beside the generator."
)
UPSCALER_HELP = "Upscaler for --upscale: a shipped name (default), a .safetensors file or a run folder."


def _upscaler(upscale: int, spec: str | None, device: str):
    """The loaded upscaler, or None for --upscale 1; a bad scale is refused before any work."""
    from charforge.sr import check_scale, load_upscaler

    if check_scale(upscale) == 1:
        return None
    return load_upscaler(spec, device=device)


PIXEL_ART_HELP = (
    "auto: a model trained on pixel art snaps its outputs onto the training set's pixel grid and palette (as "
    "recorded in the model); off: the raw output."
)


def _pixel_art(bundle, mode: str):
    """The bundle with pixel snapping on (auto) or off; a note when a pixel-art model snaps."""
    import dataclasses

    from charforge.core.pixelart import check_mode

    bundle = dataclasses.replace(bundle, pixel_snap=check_mode(mode) == "auto")
    if bundle.pixel_art and bundle.pixel_snap:
        g = bundle.pixel_art
        typer.echo(
            f"note: this model was trained on pixel art: its outputs are snapped onto a {g['cell']} px grid and "
            f"its data's {len(g['palette'])} colours (--pixel-art off for the raw output)",
            err=True,
        )
    return bundle


def _seed_scheme(value: str) -> str:
    from charforge.web.seeds import check_seed_scheme

    return check_seed_scheme(value, field="--seed-scheme")


def _model_doc(bundle, no_watermark: bool, truncation: float, seed_scheme: str = "torch-v1") -> dict:
    """The --json fields every generating command shares."""
    return {
        "seed_scheme": seed_scheme,
        "model_id": bundle.model_id,
        "model_sha256": bundle.sha256,
        "generator": bundle.family,
        "backend": bundle.backend,
        "watermark": not no_watermark,
        "truncation": truncation,
    }


def _grid_path(out: Path) -> Path:
    """--out of generate: an existing folder gets grid.png inside, a name without a suffix gets .png (`-o gen1`
    wrote a PNG named gen1); another suffix is an error, since the grid is always a PNG."""
    from charforge.errors import UserError

    if out.is_dir():
        return out / "grid.png"
    if out.suffix == "":
        return out.with_name(out.name + ".png")
    if out.suffix.lower() != ".png":
        raise UserError(
            f"--out {out}: the grid is a PNG; name it {out.with_suffix('.png').name} "
            "(or give a folder, which gets grid.png)",
            field="out",
        )
    return out


def generate(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    tags: str = typer.Option(
        "", help='Tags to fix, e.g. "blonde hair, blue eyes, smile, -hat"; the rest follow the training data.'
    ),
    n: int = typer.Option(16, "--n", "-n", min=1, help="Number of characters."),
    seed: int = typer.Option(
        0,
        help="Image i uses seed+i (noise and free tags), so one seed reproduces one character; "
        "the studio gives the same image for the same seed and tags.",
    ),
    out: Path = typer.Option(
        Path("grid.png"),
        "-o",
        "--out",
        help="Output grid PNG (a name without a suffix gets .png; an existing folder gets grid.png inside).",
    ),
    each: Path | None = typer.Option(None, help="Also write one PNG per character into this folder."),
    fixed_noise: bool = typer.Option(
        False, "--fixed-noise", help="Same noise (from --seed) for all, random attributes."
    ),
    cols: int | None = typer.Option(None, help="Grid columns (default: square-ish)."),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    no_watermark: bool = typer.Option(False, "--no-watermark", help=NO_WM_HELP),
    truncation: float = typer.Option(1.0, help=TRUNC_HELP),
    upscale: int = typer.Option(1, "--upscale", help=UPSCALE_HELP),
    upscaler: str | None = typer.Option(None, "--upscaler", help=UPSCALER_HELP),
    pixel_art: str = typer.Option("auto", "--pixel-art", help=PIXEL_ART_HELP),
    seed_scheme: str = typer.Option("torch-v1", "--seed-scheme", help=SEED_SCHEME_HELP),
    steps: int | None = typer.Option(None, "--steps", help=STEPS_HELP),
    guidance: float | None = typer.Option(None, "--guidance", help=GUIDANCE_HELP),
    sampler: str | None = typer.Option(None, "--sampler", help=SAMPLER_HELP),
    negative_guidance: float | None = typer.Option(None, "--negative-guidance", help=NEG_GUIDANCE_HELP),
    init_image: Path | None = typer.Option(None, "--init-image", help=INIT_HELP),
    strength: float | None = typer.Option(None, "--strength", help=STRENGTH_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Generate characters for a tag set into a grid PNG (and optionally one PNG each)."""
    from charforge import sampling
    from charforge.provenance import save_png
    from charforge.sr import apply as apply_upscale

    with json_mode(as_json):
        out = _grid_path(out)
        scheme = _seed_scheme(seed_scheme)
        up = _upscaler(upscale, upscaler, device)
        bundle = sampling.load_generator(model, backend, device=device)
        bundle = _pixel_art(bundle, pixel_art)
        bundle, init = _sampler_options(
            bundle, steps, guidance, sampler, negative_guidance, strength, init_image
        )
        _warn_untrained(bundle, tags, "--tags")
        images, seeds, tag_m = sampling.characters_for_request(
            bundle,
            tags,
            n,
            seed,
            fixed_noise=fixed_noise,
            source="--tags",
            truncation=truncation,
            seed_scheme=scheme,
            init=init,
        )  # checks --tags first
        images, up_meta = apply_upscale(up, images, upscale)
        req = sampling.request_record(bundle, tags, init=init, source="--tags")
        meta = (
            sampling.sheet_meta(bundle, tags, seed, seeds, tag_m, fixed_noise, truncation, scheme)
            | req
            | up_meta
        )
        sampling.save_sheet(bundle, images, meta, out, cols=cols, watermark=not no_watermark)
        files = []
        if each is not None:  # the same images as the grid, one file each
            for i, (img, s, t) in enumerate(zip(images, seeds, tag_m)):
                extra = {"tag_seed": seed + i} | ({"truncation": truncation} if truncation != 1.0 else {})
                extra |= req | up_meta
                files.append(each / f"{i:04d}_seed{s}.png")
                meta_i = {**bundle.png_meta(s, t, scheme), **extra}
                save_png(files[-1], img, meta_i, watermark=not no_watermark)
    if as_json:
        images_doc = [
            {"seed": s, "tag_seed": seed + i, "tags": bundle.schema.from_vector(t)}
            | ({"file": files[i]} if files else {})
            for i, (s, t) in enumerate(zip(seeds, tag_m))
        ]
        doc = _model_doc(bundle, no_watermark, truncation, seed_scheme) | bundle.sampling_record() | req
        emit("generate", doc | {"grid": out, "images": images_doc})
    else:
        typer.echo(f"wrote {out}" + (f" and {n} images in {each}" if each else ""))


def interpolate(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    seed_a: int = typer.Option(0, help="Seed of the first character."),
    seed_b: int | None = typer.Option(None, help="Seed of the last character (default: same as --seed-a)."),
    tags_a: str = typer.Option("", help="Tags of the first character."),
    tags_b: str | None = typer.Option(
        None, help="Tags of the last character (default: the first one's tags)."
    ),
    frames: int = typer.Option(16, min=2, help="Number of frames."),
    fps: float = typer.Option(8.0, min=0.1, max=100.0, help="GIF frame rate, frames per second (0.1-100)."),
    out: Path = typer.Option(
        Path("interpolation"), "-o", "--out", help="Output folder for frames and the GIF."
    ),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    no_watermark: bool = typer.Option(False, "--no-watermark", help=NO_WM_HELP),
    truncation: float = typer.Option(1.0, help=TRUNC_HELP),
    upscale: int = typer.Option(1, "--upscale", help=UPSCALE_HELP),
    upscaler: str | None = typer.Option(None, "--upscaler", help=UPSCALER_HELP),
    pixel_art: str = typer.Option("auto", "--pixel-art", help=PIXEL_ART_HELP),
    seed_scheme: str = typer.Option("torch-v1", "--seed-scheme", help=SEED_SCHEME_HELP),
    steps: int | None = typer.Option(None, "--steps", help=STEPS_HELP),
    guidance: float | None = typer.Option(None, "--guidance", help=GUIDANCE_HELP),
    sampler: str | None = typer.Option(None, "--sampler", help=SAMPLER_HELP),
    negative_guidance: float | None = typer.Option(None, "--negative-guidance", help=NEG_GUIDANCE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Morph between two seeds and/or tag sets: writes frame PNGs and an animated GIF."""
    import numpy as np

    from charforge import sampling
    from charforge.provenance import save_png
    from charforge.sr import apply as apply_upscale
    from charforge.utils.io import write_bytes_atomic

    with json_mode(as_json):
        scheme = _seed_scheme(seed_scheme)
        up = _upscaler(upscale, upscaler, device)
        bundle = sampling.load_generator(model, backend, device=device)
        bundle = _pixel_art(bundle, pixel_art)
        bundle, _ = _sampler_options(bundle, steps, guidance, sampler, negative_guidance, None, None)
        seed_b = seed_a if seed_b is None else seed_b
        _warn_untrained(bundle, tags_a, "--tags-a")
        if tags_b is not None:
            _warn_untrained(bundle, tags_b, "--tags-b")
        ca = bundle.schema.parse(tags_a, source="--tags-a")
        ta = sampling.sample_tags_for_seeds(bundle, ca, [seed_a], scheme)[0]
        tb = (
            ta
            if tags_b is None
            else sampling.sample_tags_for_seeds(
                bundle, bundle.schema.parse(tags_b, source="--tags-b"), [seed_b], scheme
            )[0]
        )
        frames_px = sampling.interpolate(bundle, (seed_a, ta), (seed_b, tb), frames, truncation, scheme)
        images, up_meta = apply_upscale(up, frames_px, upscale)
        for i, img in enumerate(images):
            t = i / (frames - 1)
            meta = {
                **bundle.png_meta(seed_a, ta, scheme),
                "seed_b": seed_b,
                "tags_b": bundle.schema.from_vector(tb),
                "t": t,
                **up_meta,
            }
            save_png(out / f"frame_{i:03d}.png", img, meta, watermark=not no_watermark)
        gif = out / "interpolation.gif"
        gif_meta = {
            "generator": bundle.family,
            "model_id": bundle.model_id,
            "model_sha256": bundle.sha256,
            "interpolation": {"a": seed_a, "b": seed_b},
            "seed_scheme": scheme,
            **bundle.sampling_record(),
            **up_meta,
        }
        ping_pong = np.concatenate([images, images[::-1]])  # (2F, S, S, 3): there and back
        write_bytes_atomic(gif, sampling.gif_bytes(ping_pong, round(1000 / fps), gif_meta))
    if as_json:
        frame_files = [out / f"frame_{i:03d}.png" for i in range(frames)]
        emit(
            "interpolate",
            _model_doc(bundle, no_watermark, truncation, seed_scheme) | {"frames": frame_files, "gif": gif},
        )
    else:
        typer.echo(f"wrote {frames} frames and {gif}")


def npc(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    n: int = typer.Option(200, "--n", "-n", min=1, help="Number of NPC portraits."),
    seed: int = typer.Option(0, help="Batch seed (picks the per-portrait seeds)."),
    tags: str = typer.Option("", help='Tags every NPC shares, e.g. "hat".'),
    min_distance: float = typer.Option(
        0.04, help="Min RMS difference of 16x16 thumbnails (0-1) between two NPCs."
    ),
    out: Path = typer.Option(Path("npcs"), "-o", "--out", help="Output folder."),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    no_watermark: bool = typer.Option(False, "--no-watermark", help=NO_WM_HELP),
    truncation: float = typer.Option(1.0, help=TRUNC_HELP),
    upscale: int = typer.Option(1, "--upscale", help=UPSCALE_HELP),
    upscaler: str | None = typer.Option(None, "--upscaler", help=UPSCALER_HELP),
    pixel_art: str = typer.Option("auto", "--pixel-art", help=PIXEL_ART_HELP),
    seed_scheme: str = typer.Option("torch-v1", "--seed-scheme", help=SEED_SCHEME_HELP),
    steps: int | None = typer.Option(None, "--steps", help=STEPS_HELP),
    guidance: float | None = typer.Option(None, "--guidance", help=GUIDANCE_HELP),
    sampler: str | None = typer.Option(None, "--sampler", help=SAMPLER_HELP),
    negative_guidance: float | None = typer.Option(None, "--negative-guidance", help=NEG_GUIDANCE_HELP),
    init_image: Path | None = typer.Option(None, "--init-image", help=INIT_HELP),
    strength: float | None = typer.Option(None, "--strength", help=STRENGTH_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """A batch of unique NPC portraits plus manifest.json (file, seed, tags), near-duplicates rejected."""
    from charforge import sampling
    from charforge.provenance import save_png
    from charforge.sr import apply as apply_upscale
    from charforge.utils.io import write_json_atomic

    with json_mode(as_json):
        scheme = _seed_scheme(seed_scheme)
        up = _upscaler(upscale, upscaler, device)
        bundle = sampling.load_generator(model, backend, device=device)
        bundle = _pixel_art(bundle, pixel_art)
        bundle, init = _sampler_options(
            bundle, steps, guidance, sampler, negative_guidance, strength, init_image
        )
        constraints = bundle.schema.parse(tags, source="--tags")
        _warn_untrained(bundle, tags, "--tags")
        records = sampling.npc_batch(
            bundle,
            n,
            seed,
            constraints,
            min_distance=min_distance,
            truncation=truncation,
            seed_scheme=scheme,
            init=init,
        )
        req = sampling.request_record(bundle, tags, init=init, source="--tags")
        items = []
        for i, r in enumerate(records):
            name = f"npc_{i:04d}.png"
            meta = bundle.png_meta(r.seed, r.tags, scheme) | req
            meta |= {"truncation": truncation} if truncation != 1.0 else {}
            image, up_meta = apply_upscale(up, r.image, upscale)
            save_png(out / name, image, meta | up_meta, watermark=not no_watermark)
            items.append({"file": name, "seed": r.seed, "tags": bundle.schema.from_vector(r.tags)})
        write_json_atomic(
            out / "manifest.json",
            {
                "model_id": bundle.model_id,
                "model_sha256": bundle.sha256,
                "generator": bundle.family,
                "batch_seed": seed,
                "seed_scheme": scheme,
                "request": tags,
                "min_distance": min_distance,
                "watermark": not no_watermark,
                "truncation": truncation,
                "backend": bundle.backend,
                **bundle.sampling_record(),
                **req,
                **({"upscale": up.provenance(upscale)} if up else {}),
                "items": items,
            },
        )
    if as_json:
        emit(
            "npc",
            _model_doc(bundle, no_watermark, truncation, seed_scheme)
            | {
                "out": out,
                "manifest": out / "manifest.json",
                "items": [{**i, "file": out / i["file"]} for i in items],
            },
        )
    else:
        typer.echo(f"wrote {len(items)} portraits and {out / 'manifest.json'}")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("interpolate")(interpolate)
    app.command("npc")(npc)
