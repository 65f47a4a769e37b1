"""`charforge tagger train | predict | parts-train`: the tag classifier that judges generated images and tags
imports, and the part reader that finds the hair (and hat and skin) so its colour is read from its pixels."""

from __future__ import annotations

from pathlib import Path

import typer

tagger_app = typer.Typer(help="Train and use the tagger (our Illustration2Vec).", no_args_is_help=True)


@tagger_app.command("train")
def train(
    data: Path = typer.Option(..., "--data", help="Packed dataset folder with tags."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (taggers/NAME)."),
    steps: int = typer.Option(3000, help="Optimiser steps."),
    size: int = typer.Option(64, help="Input side in pixels (a power of two); images are resized to it."),
    seed: int = typer.Option(0, help="Seed for the split, batches, augmentation and initial weights."),
    split_seed: int | None = typer.Option(
        None,
        "--split-seed",
        help="Seed for the held-out split and the calibration shift only (default: --seed). Keep it fixed "
        "to compare runs at several --seed values on the same held-out images.",
    ),
    batch_size: int = typer.Option(64, help="Images per step."),
    lr: float = typer.Option(2e-3, help="Peak Adam learning rate (cosine decay)."),
    channels: int = typer.Option(32, help="Width of the first conv stage (doubles per stage, max 256)."),
    pool: str = typer.Option(
        "flatten", help="flatten (keep the 4x4 layout) or avg (global average) before the feature layer."
    ),
    stem_stride: int = typer.Option(
        2,
        help="Stride of the first conv: 2 halves the cost, 1 keeps full resolution "
        "for one more stage (small details such as the mouth line).",
    ),
    feat_dim: int = typer.Option(256, help="Width of the feature (penultimate) layer: the domain FID space."),
    holdout: float = typer.Option(0.1, help="Fraction of images held out for the precision/recall report."),
    degrade: float = typer.Option(
        0.5,
        help="Share of training images also blurred, resampled and noised, so the "
        "tagger reads tags in softer or noisier drawings (0 = off).",
    ),
    amp: bool = typer.Option(
        True, help="bf16 autocast where the CPU computes bf16 natively (AVX-512 BF16 / AMX); fp32 elsewhere."
    ),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's choice)."),
    recolour: float = typer.Option(
        0.0,
        help="Chance per colour part (hair, eyes, skin, clothes, hat, background) of a new colour, relabelled "
        "(built-in creator datasets; the shipped estimator used 0.7).",
    ),
    recolour_n: int = typer.Option(12000, help="Training images that get part renders for --recolour."),
    clean_share: float = typer.Option(
        0.0, help="With --recolour: share of each batch drawn as plain renders (the estimator used 0.3)."
    ),
    style: bool = typer.Option(
        False, help="Style and framing augmentation (zoom, outlines, posterisation, JPEG)."
    ),
    calibrate: bool = typer.Option(
        False,
        help="Fit per-tag temperatures under a held-out style shift and store them (calibrated, can abstain).",
    ),
    parts_cache: str | None = typer.Option(
        None, help="Folder caching the part renders (default: OUT/part_renders)."
    ),
    skin_any: float = typer.Option(
        0.0,
        help="With --recolour: chance that a repainted skin takes any colour (cartoon avatars' yellow skins).",
    ),
    drop_groups: str = typer.Option(
        "",
        help="Comma list of exclusive groups not to learn (e.g. style: a 34-tag tagger from builtin-styles data).",
    ),
    colour_true: bool = typer.Option(
        False, help="With --recolour --style: hair/eye tags follow the colour after posterisation and tone."
    ),
    zoom: str = typer.Option("0.55,1.45", help="With --style: framing zoom range LO,HI (>1 zooms in)."),
    extra: Path | None = typer.Option(
        None,
        help="Labelled images from outside the dataset whose labels may be partly unknown: an .npz with images "
        "uint8 (N,S,S,3), labels (N,T) with 1/0/NaN (NaN = unknown, masked) and tags (T,) names; e.g. "
        "`python bench/foreign/training_set.py` (foreign avatar styles).",
    ),
    extra_share: float = typer.Option(0.25, help="With --extra: share of each batch drawn from it."),
) -> None:
    """Train a multi-label tagger; writes tagger.safetensors, report.json/md and confusion PNGs. Rerun to resume."""
    from charforge.errors import UserError
    from charforge.train.tagger import TaggerTrainOptions, train_tagger

    try:
        lo, hi = (float(v) for v in zoom.split(","))
    except ValueError:
        raise UserError(f"--zoom {zoom!r}: give two numbers LO,HI such as 0.55,1.45", field="zoom") from None
    if not 0 < lo <= hi:
        raise UserError(f"--zoom {zoom!r}: need 0 < LO <= HI", field="zoom")
    opts = TaggerTrainOptions(
        skin_any=skin_any,
        drop_groups=tuple(g.strip() for g in drop_groups.split(",") if g.strip()),
        colour_true=colour_true,
        zoom=(lo, hi),
        extra=None if extra is None else str(extra),
        extra_share=extra_share,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        split_seed=split_seed,
        holdout=holdout,
        amp=amp,
        threads=threads,
        degrade=degrade,
        recolour=recolour,
        recolour_n=recolour_n,
        clean_share=clean_share,
        style=style,
        calibrate=calibrate,
        parts_cache=parts_cache,
    )
    if pool not in ("flatten", "avg"):
        raise UserError(f"--pool {pool!r}: use flatten or avg")
    res = train_tagger(
        data,
        out,
        opts=opts,
        image_size=size,
        channels=channels,
        feat_dim=feat_dim,
        pool=pool,
        stem_stride=stem_stride,
    )
    s = res.report["summary"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    typer.echo(f"tagger       {res.path}")
    typer.echo(
        f"trained in   {res.seconds:.1f} s"
        + (" (earlier; already finished here, nothing retrained)" if res.reused else "")
    )
    typer.echo(
        f"held-out     precision mean {fmt(s['mean_precision'])} (min {fmt(s['min_precision'])}), "
        f"recall mean {fmt(s['mean_recall'])} (min {fmt(s['min_recall'])})"
    )
    typer.echo(f"report       {Path(out) / 'report.md'}")


@tagger_app.command("parts-train")
def parts_train(
    data: Path = typer.Option(
        ..., "--data", help="Packed dataset from `data build --creator builtin-styles` (or builtin)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    steps: int = typer.Option(3000, help="Optimiser steps."),
    batch_size: int = typer.Option(32, help="Images per step."),
    lr: float = typer.Option(2e-3, help="Peak AdamW learning rate (cosine decay)."),
    seed: int = typer.Option(0, help="Seed for the split, batches, augmentation and initial weights."),
    parts: str = typer.Option(
        "hair,hat,skin,cloth,bg",
        help="Comma list of parts to mark: hair, hat, skin, eyes, cloth, bg, glasses.",
    ),
    size: int = typer.Option(
        32, help="Side the network sees, px (a multiple of 8); masks return at full size."
    ),
    channels: int = typer.Option(
        16, help="Width of the full-resolution stage (doubles per downsampling, cap 96)."
    ),
    n_images: int = typer.Option(12000, help="Training portraits that get part renders."),
    parts_cache: str | None = typer.Option(
        None,
        help="Folder caching the part renders (default: OUT/part_renders; the tagger's cache is shared).",
    ),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's choice)."),
    extra: Path | None = typer.Option(
        None,
        "--extra",
        help="Images the creator did not draw, with pixel masks: an .npz with images (N,S,S,3) uint8, masks "
        "(N,K,S,S) uint8 (1 / 0 / 255 unknown) and parts (K,) names (e.g. bench/foreign/part_masks.py).",
    ),
    extra_share: float = typer.Option(0.25, help="With --extra: share of each batch drawn from it."),
    synth_hats: float = typer.Option(
        0.0,
        "--synth-hats",
        help="Share of portraits (0-1) that get a painted hat of a random kind, colour and finish over their "
        "hair, marked as hat: teaches hats the creator does not draw (charforge/train/synth_hats.py).",
    ),
) -> None:
    """Train the part reader (hair/hat/skin masks) on the creator's exact part masks; rerun to resume."""
    from charforge.train.partseg import PartSegOptions, train_partseg

    opts = PartSegOptions(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        n_images=n_images,
        parts_cache=parts_cache,
        threads=threads,
        extra=None if extra is None else str(extra),
        extra_share=extra_share,
        synth_hats=synth_hats,
    )
    names = tuple(p.strip() for p in parts.split(",") if p.strip())
    path = train_partseg(data, out, opts, parts=names, channels=channels, image_size=size)
    import json

    report = json.loads((Path(out) / "report.json").read_text())
    typer.echo(f"part reader  {path}")
    typer.echo(f"trained in   {report['seconds']:.1f} s")
    typer.echo("held-out IoU " + ", ".join(f"{k[4:]} {v:.3f}" for k, v in report["heldout"].items()))


@tagger_app.command("parts-combine")
def parts_combine(
    main: str = typer.Argument(
        ..., help="Part reader file or training folder that marks every part not taken (or 'shipped')."
    ),
    take: list[str] = typer.Option(
        ...,
        "--take",
        help="PART=READER (repeatable): mark PART with that reader's network instead (READER may be 'shipped').",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="The .safetensors to write."),
) -> None:
    """Combine part readers: one network marks most parts, another marks the parts it reads better (e.g. a
    reader trained on foreign art for hair, the creator-trained one for thin glasses rims)."""
    from charforge.errors import UserError
    from charforge.tagger.parts import combine_readers

    taken: dict[str, str] = {}
    for item in take:
        part, sep, src = item.partition("=")
        if not sep or not part.strip() or not src.strip():
            raise UserError(
                f"--take {item!r}: expected PART=READER, e.g. --take glasses=shipped", field="take"
            )
        taken[part.strip()] = src.strip()
    path = combine_readers(main, taken, out)
    typer.echo(f"part reader  {path}")
    typer.echo("taken        " + ", ".join(f"{k} from {v}" for k, v in taken.items()))


def _split_predict_args(paths: list[Path]) -> tuple[Path, list[Path]]:
    """`[TAGGER] IMAGE...`: the first path is the tagger when it is a folder or a .safetensors file;
    otherwise every path is an image and the shipped tagger is used."""
    from charforge.errors import UserError
    from charforge.tagger.net import default_tagger_path

    usage = "usage: charforge tagger predict [TAGGER] IMAGE..."
    first = paths[0]
    if first.is_dir() or first.suffix.lower() == ".safetensors":
        if len(paths) == 1:
            raise UserError(
                f"no image given after the tagger {first}; {usage} (for example: "
                f"charforge tagger predict {first} portrait.png)",
                field="images",
            )
        return first, paths[1:]
    shipped = default_tagger_path()
    if shipped is None:
        raise UserError(
            f"no tagger given ({first} is taken as an image) and this install ships no default tagger; "
            f"{usage}, with TAGGER a .safetensors file or a folder made by `charforge tagger train`",
            field="tagger",
        )
    return shipped, paths


@tagger_app.command("predict")
def predict(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="[TAGGER] IMAGE",
        help="An optional tagger (a .safetensors file or a folder made by `tagger train`; default: the "
        "shipped tagger), then the image files to tag.",
    ),
) -> None:
    """Print the tags the tagger reads in each image."""
    from charforge.core.images import BadImage, load_image
    from charforge.errors import UserError
    from charforge.tagger.net import decide_tags, keep_likelier_of_conflicts, load_tagger

    tagger, images = _split_predict_args(paths)
    t = load_tagger(tagger)
    for p in images:
        try:
            img = load_image(p)[None]  # (1, H, W, 3)
        except BadImage as e:
            raise UserError(f"{p}: {e}; give a readable image file") from e
        seen = t.read(img)
        proba = seen.proba
        tags = keep_likelier_of_conflicts(decide_tags(proba, t.schema, t.threshold), proba, t.schema)
        tags = t.schema.from_vector(tags[0].astype("float32"))
        note = ""
        if seen.unfamiliar is not None and seen.unfamiliar[0]:
            note = (
                f"  (unlike the art this estimator learned from: {seen.familiarity[0] / seen.line:.1f}x "
                "its familiarity line; these tags are a guess)"
            )
        typer.echo(f"{p}: {', '.join(tags) or '(none)'}{note}")


# shared by `tagger thresholds`, `tagger probe` and `tagger familiarity`, which write a fitted copy of a tagger file
TAGGER_FILE = typer.Argument(
    ..., help="Tagger file or folder (e.g. charforge/weights/tagger_estimate.safetensors)."
)
PARTS_DURING_FIT = typer.Option(
    "auto", help="Part reader during fitting and after: auto (what the tagger loads with), shipped, or none."
)
LIMIT_PER_SET = typer.Option(None, help="At most this many images from each --on set.")
LABELLED_SETS = typer.Option(
    ...,
    "--on",
    help="Labelled images to fit on (repeatable): a packed dataset folder, or an .npz as for `tagger train "
    "--extra` (1 / 0 / NaN unknown). Use images the tagger never trained on; for a probe, several styles.",
)
FEATURE_SIZE = typer.Option(
    224,
    help="Pixels (square) each picture or band is resized to for EfficientNet-Lite0: 224 is its own resolution; "
    "112 reads about 4x faster.",
)


@tagger_app.command("thresholds")
def thresholds(
    tagger: Path = TAGGER_FILE,
    on: list[Path] = LABELLED_SETS,
    out: Path = typer.Option(
        ..., "-o", "--out", help="The new tagger file (.safetensors); a curve plot goes beside it."
    ),
    tags: str | None = typer.Option(
        None, help="Comma list of independent tags to fit (default: all of them)."
    ),
    parts: str = PARTS_DURING_FIT,
    limit: int | None = LIMIT_PER_SET,
) -> None:
    """Fit one decision threshold per independent tag on labelled images and write a copy of the tagger that
    decides there (the weights are unchanged)."""

    from charforge.train import thresholds as th

    wanted = [x.strip() for x in tags.split(",") if x.strip()] if tags else None
    path, fitted, reader, plot = th.fit_tagger_thresholds(
        tagger, on, out, tags=wanted, parts=parts, limit=limit, log=lambda m: typer.echo(m, err=True)
    )
    for tag, rec in fitted.items():
        if "curve" in rec:
            typer.echo(
                f"{tag:<12} threshold {rec['threshold']:.3f}  mean F1 {rec['mean_f1_at_base']:.3f} -> "
                f"{rec['mean_f1_at_threshold']:.3f}  ("
                + ", ".join(
                    f"{k} {v['f1_at_base']:.2f}->{v['f1_at_threshold']:.2f}"
                    for k, v in rec["sets"].items()
                    if v.get("used")
                )
                + ")"
            )
        else:
            typer.echo(f"{tag:<12} threshold {rec['threshold']:.3f}  ({rec['note']})")
    typer.echo(f"tagger       {path}" + (" (with the shipped part reader)" if reader else ""))
    if plot:
        typer.echo(f"curves       {plot}")
    typer.echo("note         F1 above is on the fitting sets (optimistic); judge the file on other images")


@tagger_app.command("probe")
def probe(
    tagger: Path = TAGGER_FILE,
    on: list[Path] = LABELLED_SETS,
    out: Path = typer.Option(..., "-o", "--out", help="The new tagger file (.safetensors)."),
    tags: str = typer.Option("hat,glasses", help="Comma list of independent tags the probe reads."),
    crops: str = typer.Option(
        "full,top,eyes", help="Comma list of image bands whose features it reads: full, top, eyes."
    ),
    blend: float = typer.Option(
        0.75,
        help="Share of the probe in the blended log-odds: 0 the network only, 1 the probe only (0.75: the "
        "shipped estimator's, chosen on a validation style).",
    ),
    c: float = typer.Option(0.003, "--c", help="Inverse L2 strength of the logistic regressions."),
    parts: str = PARTS_DURING_FIT,
    limit: int | None = LIMIT_PER_SET,
    size: int = FEATURE_SIZE,
    replace: bool = typer.Option(
        False, "--replace", help="The file already holds a probe (the shipped estimator does): fit a new one."
    ),
) -> None:
    """Add a linear probe on ImageNet features (EfficientNet-Lite0, shipped offline) for tags whose shapes vary
    between art styles (hats, glasses), blended with the network's answer; writes a copy of the tagger."""

    from charforge.train.probe import fit_probe

    res = fit_probe(
        tagger,
        on,
        out,
        tags=tuple(x.strip() for x in tags.split(",") if x.strip()),
        crops=tuple(x.strip() for x in crops.split(",") if x.strip()),
        c=c,
        blend=blend,
        parts=parts,
        limit=limit,
        size=size,
        replace=replace,
    )
    for r in res.rows:
        typer.echo(
            f"{r['tag']:<12} {r['n']} labelled ({r['positives']} with it)  F1 network {r['f1_network']:.3f} "
            f"-> blended {r['f1_blend']:.3f}"
        )
    typer.echo(f"tagger       {res.path}")
    typer.echo(
        "note         F1 above is on the fitting sets (optimistic); the probe's tags lost their fitted "
        "thresholds: refit them with `charforge tagger thresholds` on other images, then judge the file on "
        "others again"
    )


@tagger_app.command("familiarity")
def familiarity(
    tagger: Path = TAGGER_FILE,
    on: list[Path] = typer.Option(
        ...,
        "--on",
        help="The images the estimator learned from (repeatable): packed dataset folders, or .npz files as for "
        "`tagger train --extra`. Labels are not read.",
    ),
    line_on: list[Path] = typer.Option(
        ...,
        "--line-on",
        help="Other images of the same kinds (repeatable), not in --on: the line is a quantile of their scores.",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="The new tagger file (.safetensors)."),
    components: int = typer.Option(64, help="Principal directions of the model."),
    quantile: float = typer.Option(
        0.99,
        help="The line: this quantile of the --line-on images' scores (0.99: 1 in 100 of them is above).",
    ),
    limit: int | None = LIMIT_PER_SET,
    size: int = FEATURE_SIZE,
) -> None:
    """Add a familiarity model: pictures unlike anything the estimator learned from (by their ImageNet
    features) get no estimated tags where it may abstain (`data import --estimate-tags`); writes a copy."""

    from charforge.train.familiar import fit_familiarity

    res = fit_familiarity(
        tagger, on, line_on, out, components=components, quantile=quantile, limit=limit, size=size
    )
    typer.echo(f"fitted on    {res.fitted} images; line {res.line:.4f} set on {res.line_images} others")
    for name, share in res.above.items():
        typer.echo(f"above line   {name}: {share:.1%}")
    typer.echo(f"tagger       {res.path}")


def register(app: typer.Typer) -> None:
    app.add_typer(tagger_app, name="tagger")
