"""Training the part segmenter (charforge.tagger.parts) on the built-in creator's exact part masks.

The masks come free with the part renders the tag estimator already uses (`tagger_augment.render_parts`):
a part's per-pixel colour coefficient is 1 where the part shows, fractions on its anti-aliased edges and
under shading, 0 elsewhere. A pixel is a target when its mean coefficient passes MASK_COEF.

Every image is repainted (hair, eyes, skin, clothes, hat, background in random colours, skin in any colour
for a share), framed (zoom 0.5-1.9, rotation, aspect, shift, mirror; the masks follow) and restyled
(`style_augment`: outlines, texture, posterisation, tone, blur, resampling, noise, JPEG; no cut-outs, which
would hide a part the target still shows); a share also gets its colour channels permuted. The network so
learns where hair and hats are from their shape and place, not from their colour.

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


def part_targets(parts: ta.PartRenders, idx: np.ndarray, names: tuple[str, ...]) -> torch.Tensor:
    """(B, P, S, S) float 0/1 masks of `names` for portraits `idx`: a pixel belongs to the part with the
    largest coefficient there, when that passes MASK_COEF (parts never overlap, even on anti-aliased edges)."""
    c = np.stack([parts.coef[p][idx].astype(np.float32).mean(axis=-1) / ta.COEF_SCALE for p in names], axis=1)
    m = (c == c.max(axis=1, keepdims=True)) & (c > MASK_COEF)
    return torch.from_numpy(m.astype(np.float32))


def make_batch(
    parts: ta.PartRenders, step: int, opts: PartSegOptions, schema, names: tuple[str, ...], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (B, 3, size, size) in [-1, 1], masks (B, P, size, size)) for `step`, from (seed, step) only."""
    rng = np.random.default_rng([opts.seed, step, 7])
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    idx = np.sort(rng.choice(len(parts), size=min(opts.batch_size, len(parts)), replace=False))
    img, _ = ta.recolour(parts, idx, rng, schema, p_part=0.85, skin_any=opts.skin_any)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).mul(2).sub(1)
    m = part_targets(parts, idx, names)
    flip = torch.rand(len(x), generator=g) < 0.5
    x[flip], m[flip] = x[flip].flip(-1), m[flip].flip(-1)
    x, m = ta.frame(x, g, None, opts.zoom, masks=m)
    x = ta.style_augment(x, g, ta.StyleOptions(zoom=(1.0, 1.0), p_cutout=0.0))
    perm = torch.rand(len(x), generator=g) < opts.p_permute
    if perm.any():
        order = torch.randperm(3, generator=g)
        x[perm] = x[perm][:, order]
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous(), (m > 0.5).float()


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus a soft Dice term per part (hats are small and rare: Dice keeps them from being ignored)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + 1)
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
        x, m = make_batch(parts, k, ev, schema, names, net.cfg.image_size)
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
    torch.manual_seed(opts.seed)
    net = PartSegNet(cfg)
    fp_opts = {
        k: v for k, v in asdict(opts).items() if k not in ("threads", "parts_cache", "checkpoint_every")
    }
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
            x, m = make_batch(train_parts, step, opts, data.schema, cfg.parts, image_size)
            loss = seg_loss(net(x), m)
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
