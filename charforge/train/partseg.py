"""Training the part segmenter (charforge.tagger.parts) on the built-in creator's exact part masks.

The masks come free with the part renders the tag estimator already uses (`tagger_augment.render_parts`):
a part's per-pixel colour coefficient is 1 where the part shows, fractions on its anti-aliased edges and
under shading, 0 elsewhere. A pixel is a target when its mean coefficient passes MASK_COEF.

Every image is repainted (hair, eyes, skin, clothes, hat, background in random colours, skin in any colour
for a share), framed (zoom 0.5-1.9, rotation, aspect, shift, mirror; the masks follow) and restyled
(`style_augment`: outlines, texture, posterisation, tone, blur, resampling, noise, JPEG; no cut-outs, which
would hide a part the target still shows); a share also gets its colour channels permuted. The network so
learns where hair and hats are from their shape and place, not from their colour.

`extra` (an .npz of images the creator did not draw with their own pixel masks, EXTRA_MASKS_FORMAT; e.g.
bench/foreign/part_masks.py) supplies a share of every batch under the same flip, framing, style steps and
channel permutation. Its masks are 1 / 0 / 255 unknown; unknown pixels, and parts the file does not mark, add
nothing to the loss. Without it the batches are exactly what they were.

Each step's randomness comes from (seed, step), and the state file holds the weights and the Adam state,
so a resumed run continues exactly. Output folder: parts.safetensors, report.json, checkpoint while training.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charforge.data.packed import load_packed
from charforge.errors import UserError
from charforge.tagger.parts import WEIGHTS_NAME, PartSegConfig, PartSegNet, save_partseg
from charforge.train import tagger_augment as ta
from charforge.train.tagger import _load_checkpoint, _lr_at, _save_checkpoint, optimiser_step, split_indices
from charforge.utils.progress import progress

CHECKPOINT_NAME = "checkpoint.safetensors"
CHECKPOINT_KIND = "partseg-checkpoint"
MASK_COEF = 0.25  # mean colour coefficient above which a pixel belongs to a part
EXTRA_MASKS_FORMAT = (
    "an .npz with `images` uint8 (N, S, S, 3), `masks` uint8 (N, K, S, S) with 1 part, 0 not and 255 unknown, "
    "and `parts` (K,) the part names of the mask channels"
)
UNKNOWN = 255
# An extra image's mask pixel, reduced to the network's side, is the part where the part covers at least this share
# of it: a 1 px rim drawn at 64 px covers half of each 2x2 block and so stays a rim at 32 px (bilinear > 0.5 would
# drop it and teach the reader that thin rims are not glasses).
EXTRA_KEEP = 0.25


@dataclass
class PartSegOptions:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    n_images: int = 12000  # training portraits with part renders
    holdout: float = 0.1  # the tag estimator's split, so its part-render cache is shared
    skin_any: float = 0.3  # share of repainted skins that take any colour
    zoom: tuple[float, float] = (0.5, 1.9)
    p_permute: float = 0.3  # share of images whose colour channels are permuted
    checkpoint_every: int = 250
    parts_cache: str | None = None  # folder for the part renders (default: <out>/part_renders)
    threads: int | None = None
    extra: str | None = None  # an .npz of foreign images with pixel masks (EXTRA_MASKS_FORMAT); None: none
    extra_share: float = 0.25  # with extra: share of each batch drawn from it
    synth_hats: float = 0.0  # share of portraits that get a painted hat (train/synth_hats.py)


@dataclass
class ExtraMasks:
    images: np.ndarray  # (N, S, S, 3) uint8
    masks: np.ndarray  # (N, K, S, S) uint8: 1 / 0 / UNKNOWN
    parts: tuple[str, ...]
    sha256: str


def load_extra_masks(path: str | Path, names: tuple[str, ...]) -> ExtraMasks:
    """Read and check an extra mask file (EXTRA_MASKS_FORMAT; allow_pickle=False); a bad file is a UserError
    naming the file and what is wrong."""
    from charforge.utils.io import read_image_npz, sha256_file

    p = Path(path)
    got = read_image_npz(p, ("images", "masks", "parts"), "--extra", EXTRA_MASKS_FORMAT)
    images, masks, parts = got["images"], got["masks"], tuple(str(x) for x in got["parts"])
    want = (len(images), len(parts), images.shape[1], images.shape[2])
    if masks.dtype != np.uint8 or masks.shape != want:
        raise UserError(
            f"--extra {p}: masks must be uint8 {want}, got {masks.dtype} {masks.shape}", field="extra"
        )
    bad = (masks != 0) & (masks != 1) & (masks != UNKNOWN)
    if bad.any():
        r, k = np.argwhere(bad)[0][:2]
        raise UserError(
            f"--extra {p}: image {r}, part {parts[k]!r}: mask value {masks[tuple(np.argwhere(bad)[0])]} "
            f"(use 1, 0 or {UNKNOWN} unknown)",
            field="extra",
        )
    if not set(parts) & set(names):
        raise UserError(
            f"--extra {p}: marks {', '.join(parts)}, none of the parts trained here ({', '.join(names)})",
            field="extra",
        )
    return ExtraMasks(images, masks, parts, sha256_file(p))


def part_targets(parts: ta.PartRenders, idx: np.ndarray, names: tuple[str, ...]) -> torch.Tensor:
    """(B, P, S, S) float 0/1 masks of `names` for portraits `idx`: a pixel belongs to the part with the
    largest coefficient there, when that passes MASK_COEF (parts never overlap, even on anti-aliased edges)."""
    c = np.stack([parts.coef[p][idx].astype(np.float32).mean(axis=-1) / ta.COEF_SCALE for p in names], axis=1)
    m = (c == c.max(axis=1, keepdims=True)) & (c > MASK_COEF)
    return torch.from_numpy(m.astype(np.float32))


def make_batch(
    parts: ta.PartRenders,
    step: int,
    opts: PartSegOptions,
    schema,
    names: tuple[str, ...],
    size: int,
    extra: ExtraMasks | None = None,
):
    """(images (B, 3, size, size) in [-1, 1], masks (B, P, size, size), weights) for `step`, from (seed, step)
    only. The weights are None without `extra` (every pixel counts); with it, 0 where a mask is unknown."""
    n_extra = int(round(opts.batch_size * opts.extra_share)) if extra is not None else 0
    rng = np.random.default_rng([opts.seed, step, 7])
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    n = min(opts.batch_size - n_extra, len(parts))
    idx = np.sort(rng.choice(len(parts), size=n, replace=False))
    img, _ = ta.recolour(parts, idx, rng, schema, p_part=0.85, skin_any=opts.skin_any)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).mul(2).sub(1)
    m = part_targets(parts, idx, names)
    if opts.synth_hats > 0:
        _paint_hats(x, m, None, names, opts, step, 13)
    x, m = _augment(x, m, g, opts)
    side = x.shape[-1]
    x, m = _resized(x, m, size)
    if extra is None:
        return x, m, None
    w = torch.ones_like(m)
    if n_extra:
        xe, me, we = _extra_rows(extra, step, opts, names, n_extra, side)
        if (
            side != size
        ):  # thin parts (1 px glasses rims) must survive the reduction: area share, not bilinear
            xe = F.interpolate(xe, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            me = (F.adaptive_avg_pool2d(me, size) >= EXTRA_KEEP).float()
            we = (F.adaptive_avg_pool2d(we, size) > 0.5).float()
        else:
            me, we = (me > 0.5).float(), (we > 0.5).float()
        x, m, w = torch.cat([x, xe.contiguous()]), torch.cat([m, me]), torch.cat([w, we])
    return x, m, w


def _augment(x: torch.Tensor, m: torch.Tensor, g: torch.Generator, opts: PartSegOptions):
    flip = torch.rand(len(x), generator=g) < 0.5
    x[flip], m[flip] = x[flip].flip(-1), m[flip].flip(-1)
    x, m = ta.frame(x, g, None, opts.zoom, masks=m)
    x = ta.style_augment(x, g, ta.StyleOptions(zoom=(1.0, 1.0), p_cutout=0.0))
    perm = torch.rand(len(x), generator=g) < opts.p_permute
    if perm.any():
        order = torch.randperm(3, generator=g)
        x[perm] = x[perm][:, order]
    return x, m


def _resized(x: torch.Tensor, m: torch.Tensor, size: int):
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous(), (m > 0.5).float()


def _extra_rows(extra: ExtraMasks, step: int, opts: PartSegOptions, names, n: int, side: int):
    """n rows of the extra file for `step` (their own random stream), at `side` px: images, masks in `names`
    order, and weights (1 known, 0 unknown or not marked by the file)."""
    rng = np.random.default_rng([opts.seed, step, 11])
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    idx = np.sort(rng.choice(len(extra.images), size=min(n, len(extra.images)), replace=False))
    x = torch.from_numpy(np.array(extra.images[idx])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    raw = torch.from_numpy(np.array(extra.masks[idx]))
    b, s = len(idx), x.shape[-1]
    m, w = torch.zeros(b, len(names), s, s), torch.zeros(b, len(names), s, s)
    for j, name in enumerate(names):
        if name in extra.parts:
            k = extra.parts.index(name)
            m[:, j] = (raw[:, k] == 1).float()
            w[:, j] = (raw[:, k] != UNKNOWN).float()
    if opts.synth_hats > 0 and "hat" in names and "hat" not in extra.parts:
        # a pixel the file marks as another part is known not to be a hat; painted hats are known hats
        w[:, names.index("hat")] = torch.maximum(w[:, names.index("hat")], (m * w).amax(dim=1))
        _paint_hats(x, m, w, names, opts, step, 17)
    if s != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        mw = F.interpolate(torch.cat([m, w], 1), size=(side, side), mode="bilinear", align_corners=False)
        m, w = mw[:, : len(names)], mw[:, len(names) :]
    x, mw = _augment(x, torch.cat([m, w], 1), g, opts)
    return x, mw[:, : len(names)], mw[:, len(names) :]


def _paint_hats(x, m, w, names, opts: PartSegOptions, step: int, stream: int) -> None:
    """Painted hats (charforge.train.synth_hats) on a share of the rows, in place, from their own random stream
    (so a run without them draws exactly what it drew before)."""
    from charforge.train.synth_hats import paint_batch

    rng = np.random.default_rng([opts.seed, step, stream])
    xn, mn = x.numpy(), m.numpy()
    paint_batch(xn, mn, names, rng, opts.synth_hats, known=None if w is None else w.numpy())


def seg_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE plus a soft Dice term per part (hats are small and rare: Dice keeps them from being ignored).
    `weight` (same shape, 0/1): only known pixels count; None: all do."""
    p = torch.sigmoid(logits)
    if weight is None:
        bce = F.binary_cross_entropy_with_logits(logits, target)
        inter = (p * target).sum(dim=(0, 2, 3))
        dice = 1 - (2 * inter + 1) / (p.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + 1)
        return bce + dice.mean()
    el = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (el * weight).sum() / weight.sum().clamp(min=1)
    pw, tw = p * weight, target * weight
    inter = (pw * tw).sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (pw.sum(dim=(0, 2, 3)) + tw.sum(dim=(0, 2, 3)) + 1)
    return bce + dice.mean()


@torch.no_grad()
def evaluate(net: PartSegNet, parts: ta.PartRenders, schema, opts: PartSegOptions) -> dict:
    """IoU per part on held-out portraits under the training augmentation with a fixed seed (never a
    training step's seed)."""
    net.eval()
    names = net.cfg.parts
    inter = np.zeros(len(names))
    union = np.zeros(len(names))
    ev = PartSegOptions(**{**asdict(opts), "seed": opts.seed + 10_000, "batch_size": 100})
    for k in range(max(1, len(parts) // 100)):
        x, m, _ = make_batch(parts, k, ev, schema, names, net.cfg.image_size)
        p = torch.sigmoid(net(x)) > 0.5
        t = m > 0.5
        inter += (p & t).sum(dim=(0, 2, 3)).numpy()
        union += (p | t).sum(dim=(0, 2, 3)).numpy()
    net.train()
    return {f"iou_{n}": round(float(i / max(u, 1)), 4) for n, i, u in zip(names, inter, union)}


def train_partseg(
    data_dir: str | Path,
    out_dir: str | Path,
    opts: PartSegOptions | None = None,
    *,
    parts: tuple[str, ...] = ("hair", "hat", "skin", "cloth", "bg"),
    channels: int = 16,
    image_size: int = 32,
) -> Path:
    """Train on a packed built-in (or multi-style) creator dataset; returns the weights' path."""
    opts = opts or PartSegOptions()
    if opts.steps < 1 or opts.batch_size < 1:
        raise UserError("--steps and --batch-size must be at least 1")
    valid = (*ta.PARTS, *ta.MASK_ONLY_PARTS)
    unknown = [p for p in parts if p not in valid]
    if unknown:
        raise UserError(f"--parts {','.join(unknown)}: valid parts are {', '.join(valid)}", field="parts")
    if image_size < 16 or image_size % 8:
        raise UserError(f"--size {image_size}: must be a multiple of 8, at least 16")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    data = load_packed(data_dir)
    if not ta.has_part_renders(data):
        raise UserError(
            f"{data_dir}: the part segmenter learns from the built-in creator's part renders; build the data "
            "with `charforge data build --creator builtin-styles` (or builtin), which stores the parameters"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_idx, held_idx = split_indices(len(data), opts.holdout, opts.seed)
    cache = opts.parts_cache or str(out / "part_renders")
    train_parts = ta.cached_part_renders(data, train_idx[: opts.n_images], cache)
    held_parts = ta.cached_part_renders(data, held_idx[:500], cache)
    train_parts = ta.cached_mask_parts(data, train_idx[: opts.n_images], train_parts, parts, cache)
    held_parts = ta.cached_mask_parts(data, held_idx[:500], held_parts, parts, cache)
    cfg = PartSegConfig(parts=tuple(parts), image_size=image_size, channels=channels)
    extra = load_extra_masks(opts.extra, cfg.parts) if opts.extra else None
    if extra is not None and not 0 < opts.extra_share < 1:
        raise UserError(
            f"--extra-share {opts.extra_share}: give a share between 0 and 1", field="extra_share"
        )
    if not 0 <= opts.synth_hats <= 1:
        raise UserError(f"--synth-hats {opts.synth_hats}: give a share between 0 and 1", field="synth_hats")
    if opts.synth_hats and not {"hair", "hat"} <= set(cfg.parts):
        raise UserError(
            "--synth-hats places hats over the hair: --parts must include hair and hat", field="parts"
        )
    torch.manual_seed(opts.seed)
    net = PartSegNet(cfg)
    fp_opts = {
        k: v for k, v in asdict(opts).items() if k not in ("threads", "parts_cache", "checkpoint_every")
    }
    if extra is not None:
        fp_opts["extra"] = extra.sha256  # the file's content, not where it lies
    else:
        fp_opts.pop("extra_share")  # unused: a run without --extra keeps its old fingerprint
        fp_opts.pop("extra")
    if not opts.synth_hats:
        fp_opts.pop("synth_hats")  # unused: a run without painted hats keeps its old fingerprint
    fingerprint = json.loads(
        json.dumps({"data": data.manifest_hash(), "config": asdict(cfg), "opts": fp_opts})
    )
    opt = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=1e-4)
    ckpt = out / CHECKPOINT_NAME
    start = _load_checkpoint(ckpt, net, opt, fingerprint, kind=CHECKPOINT_KIND)
    net.train()
    with progress(total=opts.steps, desc="parts", unit="step", initial=start) as bar:
        for step in range(start, opts.steps):
            for grp in opt.param_groups:
                grp["lr"] = _lr_at(step, opts)
            x, m, w = make_batch(train_parts, step, opts, data.schema, cfg.parts, image_size, extra)
            loss = seg_loss(net(x), m, w)
            optimiser_step(
                opt, loss, bar, step, opts,
                lambda k: _save_checkpoint(ckpt, net, opt, k, fingerprint, kind=CHECKPOINT_KIND),
            )  # fmt: skip
    seconds = time.perf_counter() - t0
    report = {
        "data": str(data_dir),
        "n_train": int(min(opts.n_images, len(train_idx))),
        "n_heldout": len(held_parts),
        "options": asdict(opts),
        "config": asdict(cfg),
        "seconds": round(seconds, 1),
        "heldout": evaluate(net, held_parts, data.schema, opts),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    path = save_partseg(
        out / WEIGHTS_NAME,
        net.eval(),
        extra={"train": {"data": str(data_dir), "steps": opts.steps, "seed": opts.seed}, "report": report},
    )
    ckpt.unlink(missing_ok=True)
    return path
