"""Training the tagger on a packed dataset: deterministic held-out split, light augmentation, resumable.

Output folder:
  tagger.safetensors      the model (kind "tagger", config + tag schema in metadata)
  report.json / report.md per-tag held-out precision and recall
  confusion_<group>.png   a confusion matrix per exclusive group
  checkpoint.safetensors  weights + Adam state while training (removed when done); rerun to resume
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charforge.core.device import use_bf16
from charforge.core.tags import TagSchema
from charforge.data.packed import PackedDataset, load_packed
from charforge.errors import UserError
from charforge.models.augment import degrade
from charforge.models.io import load_model, save_model
from charforge.tagger.net import (
    KIND,
    WEIGHTS_NAME,
    Tagger,
    TaggerConfig,
    TaggerNet,
    calibration_summary,
    fit_temperatures,
    preprocess,
    save_tagger,
    tag_loss,
)
from charforge.train import tagger_augment
from charforge.train.schedule import warmup_cosine
from charforge.utils.io import sha256_file
from charforge.utils.progress import progress

CHECKPOINT_NAME = "checkpoint.safetensors"
EXTRA_FORMAT = (
    "an .npz with `images` uint8 (N, S, S, 3), `labels` float32 (N, T) with 1 shown, 0 not shown and NaN "
    "unknown (masked in the loss), and `tags` (T,) the tag names of the labels' columns"
)


@dataclass
class ExtraSet:
    """Labelled images from outside the dataset (e.g. foreign avatar styles with labels from their options),
    their labels in the dataset schema's column order, NaN where unknown."""

    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N, T) float32 in the schema's order; NaN = unknown
    sha256: str


def load_extra(path: str | Path, schema: TagSchema, *, flag: str = "--extra") -> ExtraSet:
    """Read and check an extra set (EXTRA_FORMAT); a bad file is a UserError naming the file and the field. The
    file is read with allow_pickle=False, so it cannot run code."""
    from charforge.utils.io import read_image_npz

    p = Path(path)
    got = read_image_npz(p, ("images", "labels", "tags"), flag, EXTRA_FORMAT)
    images, labels, tags = got["images"], got["labels"].astype(np.float32), [str(t) for t in got["tags"]]
    if labels.shape != (len(images), len(tags)):
        raise UserError(
            f"{flag} {p}: labels must be (N, T) = ({len(images)}, {len(tags)}), got {labels.shape}",
            field=flag.lstrip("-"),
        )
    unknown = sorted(set(tags) - set(schema.tags))
    if unknown:
        raise UserError(
            f"{flag} {p}: tags not in the dataset's schema: {unknown[:5]}", field=flag.lstrip("-")
        )
    bad = ~np.isnan(labels) & (labels != 0) & (labels != 1)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise UserError(
            f"{flag} {p}: row {r}, tag {tags[c]!r}: label {labels[r, c]} (use 1, 0 or NaN)",
            field=flag.lstrip("-"),
        )
    full = np.full((len(images), len(schema)), np.nan, np.float32)
    full[:, [list(schema.tags).index(t) for t in tags]] = labels
    return ExtraSet(images, full, sha256_file(p))


@dataclass
class TaggerTrainOptions:
    steps: int = 3000  # optimiser steps
    batch_size: int = 64  # images per step
    lr: float = 2e-3  # Adam learning rate, cosine-decayed to 5 % of this by the last step
    weight_decay: float = 1e-4  # decoupled (AdamW) weight decay per step, relative
    seed: int = 0  # seeds the split, the batches, the augmentation and the initial weights
    split_seed: int | None = None  # seeds the held-out split and calibration shift instead (None: `seed`), so
    # runs at several seeds are judged on the same held-out images (seed noise of a recipe)
    holdout: float = 0.1  # fraction of images held out for the precision/recall report
    shift: float = 0.0625  # max random translation, as a fraction of the image side
    degrade: float = 0.5  # share of images that also get a random blur, down-up resampling and pixel noise
    checkpoint_every: int = 250  # steps between resumable checkpoints
    amp: bool = True  # bf16 autocast on CPU (about 2x faster on AVX-512 BF16 machines)
    threads: int | None = None  # torch intra-op threads (None: leave as is)
    # ---- generalising to art the creator did not draw (charforge.train.tagger_augment) ----
    recolour: float = (
        0.0  # per colour part (hair, eyes, skin, clothes, hat, background): chance of a new colour
    )
    recolour_n: int = 12000  # training images that get part renders (built-in creator datasets only)
    clean_share: float = (
        0.0  # with recolour: share of each batch drawn as plain renders (flip/shift/degrade only)
    )
    style: bool = False  # style/framing augmentation (zoom, outlines, posterisation, JPEG, ...)
    calibrate: bool = False  # fit temperatures on held-out renders under a held-out style shift; store them
    parts_cache: str | None = None  # folder caching the part renders (None: <out>/part_renders)
    skin_any: float = 0.0  # with recolour: chance that a repainted skin takes any colour, not a skin tone
    drop_groups: tuple[str, ...] = ()  # exclusive groups the tagger does not learn (e.g. "style": 34 tags)
    colour_true: bool = False  # with recolour + style: hair/eye tags follow the colour after posterise, tone
    zoom: tuple[float, float] = (
        0.55,
        1.45,
    )  # style framing: zoom range (< 1 out onto the background, > 1 in)
    # ---- images from outside the dataset whose labels are partly unknown (load_extra) ----
    extra: str | None = None  # an .npz of labelled images (EXTRA_FORMAT); None: none
    extra_share: float = (
        0.25  # with extra: share of each batch drawn from it (taken from the recoloured share)
    )


@dataclass
class TaggerTrainResult:
    path: Path
    report: dict = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False  # the folder already held this exact tagger; nothing was retrained


def _split_seed(opts: TaggerTrainOptions) -> int:
    return opts.seed if opts.split_seed is None else opts.split_seed


def split_indices(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, held-out) index split; at least one image on each side when n >= 2."""
    perm = np.random.default_rng([seed, 7919]).permutation(n)
    n_held = int(round(n * holdout))
    n_held = min(max(n_held, 1 if n >= 2 and holdout > 0 else 0), n - 1) if n >= 2 else 0
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def augment(x: torch.Tensor, gen: torch.Generator, shift: float) -> torch.Tensor:
    """Random horizontal flip and a small translation (reflect padding). Colours are left alone: they are tags."""
    b, _, s, _ = x.shape  # (B, 3, S, S)
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    pad = int(round(s * shift))
    if pad == 0:
        return x
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")  # (B, 3, S+2p, S+2p)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy.view(b, 1) + torch.arange(s).view(1, s)).view(b, 1, s, 1).expand(b, 3, s, s + 2 * pad)
    x = padded.gather(2, rows)  # (B, 3, S, S+2p)
    cols = (dx.view(b, 1) + torch.arange(s).view(1, s)).view(b, 1, 1, s).expand(b, 3, s, s)
    return x.gather(3, cols)  # (B, 3, S, S)


def _lr_at(step: int, opts: TaggerTrainOptions) -> float:
    return warmup_cosine(step, opts.steps, opts.lr, max_warmup=100, floor=0.05)


def _save_checkpoint(
    path: Path,
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    step: int,
    fingerprint: dict,
    kind: str = "tagger-checkpoint",
) -> None:
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    save_model(path, tensors, kind=kind, config=fingerprint, extra={"step": step})


def _load_checkpoint(
    path: Path,
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    fingerprint: dict,
    kind: str = "tagger-checkpoint",
) -> int:
    """Restore weights + Adam state; returns the step to continue from (0 when there is no usable checkpoint)."""
    if not path.is_file():
        return 0
    tensors, meta = load_model(path, kind=kind)
    if meta.get("charforge_config") != fingerprint:
        raise UserError(
            f"{path}: an unfinished run with different settings is here; delete it or rerun the original command"
        )
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    state = opt.state_dict()
    for i in range(len(state["param_groups"][0]["params"])):
        keys = [k for k in tensors if k.startswith(f"opt.{i}.")]
        if keys:
            state["state"][i] = {k.split(".", 2)[2]: tensors[k] for k in keys}
    opt.load_state_dict(state)
    return int(meta["step"])


def learned_schema(schema: TagSchema, drop_groups) -> tuple[TagSchema, np.ndarray]:
    """The schema a tagger learns from a dataset's schema without the exclusive groups `drop_groups` (e.g. a
    multi-style dataset's "style" for a 34-tag tagger), and the dataset's tag columns that fill it."""
    drop = set(drop_groups)
    unknown = drop - {g.name for g in schema.groups}
    if unknown:
        raise UserError(
            f"no exclusive tag group {sorted(unknown)} in this dataset's schema", field="drop_groups"
        )
    if not drop:
        return schema, np.arange(len(schema))
    kept = TagSchema(
        groups=[g for g in schema.groups if g.name not in drop],
        independent=list(schema.independent),
        conflicts=list(schema.conflicts),
        train_p=schema.train_p,
    )
    mine, theirs = kept.column_map(schema)
    assert np.array_equal(mine, np.arange(len(kept)))
    return kept, theirs


def _batch(
    data: PackedDataset,
    idx: np.ndarray,
    step: int,
    opts: TaggerTrainOptions,
    size: int,
    parts=None,
    cols: np.ndarray | None = None,
    extra: ExtraSet | None = None,
):
    rng = np.random.default_rng([opts.seed, step])  # per-step stream: a resumed run draws the same batches
    n_clean = opts.batch_size if parts is None else int(round(opts.batch_size * opts.clean_share))
    n_extra = 0 if extra is None else max(1, int(round(opts.batch_size * opts.extra_share)))
    if parts is None:  # no recoloured share to take the extra images from: they replace plain ones
        n_extra = min(n_extra, opts.batch_size - 1)
        n_clean -= n_extra
    else:
        n_extra = min(n_extra, opts.batch_size - n_clean)
    n_recoloured = 0 if parts is None else opts.batch_size - n_clean - n_extra
    xs, ys = [], []
    if n_recoloured > 0:  # recoloured part renders (training images only)
        n = n_recoloured
        pick = np.sort(rng.choice(len(parts), size=min(n, len(parts)), replace=False))
        shown: dict = {}  # the hair and eye colour each image shows, for colour_true
        img, tags = tagger_augment.recolour(
            parts, pick, rng, data.schema, p_part=opts.recolour, skin_any=opts.skin_any, colours_out=shown
        )
        x = torch.from_numpy(img).permute(0, 3, 1, 2).mul(2).sub(1)  # (B, 3, S, S) in [-1, 1]
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        xs.append(x)
        ys.append(torch.from_numpy(tags))
    if n_clean > 0:
        pick = np.sort(rng.choice(idx, size=min(n_clean, len(idx)), replace=len(idx) < n_clean))
        xs.append(preprocess(np.asarray(data.images[pick]), size))  # (B, 3, size, size)
        ys.append(torch.from_numpy(np.asarray(data.tags[pick], dtype=np.float32)))
    x, y = torch.cat(xs), torch.cat(ys)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    x = augment(x, gen, opts.shift)
    style_opts = tagger_augment.StyleOptions(zoom=tuple(opts.zoom))
    if opts.style:  # style/framing on the recoloured share only: the clean share keeps the creator's look
        k = len(x) - n_clean if parts is not None else len(x)
        if k > 0 and opts.colour_true and parts is not None:
            # the colour steps move the shown hair/eye colours too; their tags follow (`relabel_colours`)
            names = list(shown)
            c = (
                torch.from_numpy(np.stack([shown[p] for p in names], axis=2)).unsqueeze(-1) * 2 - 1
            )  # (k,3,K,1)
            xk, c = tagger_augment.style_augment(x[:k], gen, style_opts, colours=c)
            moved = ((c.squeeze(-1).permute(0, 2, 1) + 1) / 2).numpy()  # (k, K, 3)
            tags_k = tagger_augment.relabel_colours(
                y[:k].numpy(), {p: moved[:, i] for i, p in enumerate(names)}, data.schema
            )
            x, y = torch.cat([xk, x[k:]]), torch.cat([torch.from_numpy(tags_k), y[k:]])
        elif k > 0:
            x = torch.cat([tagger_augment.style_augment(x[:k], gen, style_opts), x[k:]])
    if n_extra:  # drawn last, from their own streams, so a run without --extra draws exactly as before
        pick = np.sort(rng.choice(len(extra.images), size=min(n_extra, len(extra.images)), replace=False))
        xe = preprocess(extra.images[pick], size)
        gen_e = torch.Generator().manual_seed(int(rng.integers(2**62)))
        xe = augment(xe, gen_e, opts.shift)
        if opts.style:
            xe = tagger_augment.style_augment(xe, gen_e, style_opts)
        # before the clean share: x = [recoloured, extra, clean], degrade (below) sees the same layout
        x = torch.cat([x[: len(x) - n_clean], xe, x[len(x) - n_clean :]])
        y = torch.cat([y[: len(y) - n_clean], torch.from_numpy(extra.labels[pick]), y[len(y) - n_clean :]])
    if cols is not None:
        y = y[:, torch.from_numpy(cols)]
    return degrade(x, gen, opts.degrade), y


def _train_loop(
    net: TaggerNet,
    data: PackedDataset,
    train_idx: np.ndarray,
    opts: TaggerTrainOptions,
    out: Path,
    fingerprint: dict,
    parts=None,
    schema: TagSchema | None = None,
    cols: np.ndarray | None = None,
    extra_set: ExtraSet | None = None,
) -> None:
    opt = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    ckpt = out / CHECKPOINT_NAME
    start = _load_checkpoint(ckpt, net, opt, fingerprint)
    net.train()
    bf16 = use_bf16("cpu", opts.amp, what="tagger training")  # native bf16 only; else fp32, said once
    with progress(total=opts.steps, desc="tagger", unit="step", initial=start) as bar:
        for step in range(start, opts.steps):
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, opts)
            extra = {} if parts is None else {"parts": parts}  # (the 5-argument call stays as it was)
            if cols is not None:
                extra["cols"] = cols
            if extra_set is not None:
                extra["extra"] = extra_set
            x, y = _batch(data, train_idx, step, opts, net.cfg.image_size, **extra)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = tag_loss(
                    net(x.contiguous(memory_format=torch.channels_last)), y, schema or data.schema
                )
            optimiser_step(
                opt, loss, bar, step, opts, lambda k: _save_checkpoint(ckpt, net, opt, k, fingerprint)
            )
    net.eval()


def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor, bar, step: int, opts, save) -> None:
    """Backward and step, advance the progress bar, and call `save(step + 1)` every `opts.checkpoint_every`
    steps before the last (the loops of the tagger and the part reader)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    bar.update(1)
    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    if (step + 1) % opts.checkpoint_every == 0 and step + 1 < opts.steps:
        save(step + 1)


def _reuse_finished(path: Path, net: TaggerNet, fingerprint: dict) -> float | None:
    """A rerun on a finished folder: the same data and settings load the finished weights (the report is
    rewritten, nothing is retrained) and return the recorded training time; different ones are refused rather
    than overwriting the finished tagger. None when the folder holds no finished tagger."""
    if not path.is_file():
        return None
    tensors, meta = load_model(path, kind=KIND)
    if meta.get("fingerprint") != fingerprint:
        what = "an older version" if "fingerprint" not in meta else "other data or settings"
        raise UserError(
            f"{path}: this folder already holds a finished tagger trained with {what}; "
            "pick a new -o folder, or delete the file to retrain here"
        )
    net.load_state_dict(tensors, strict=True)
    return float(meta.get("train", {}).get("seconds", 0.0))


def _calibrate(
    tagger: Tagger,
    data: PackedDataset,
    held_idx: np.ndarray,
    opts: TaggerTrainOptions,
    cache: str,
    cols: np.ndarray | None = None,
) -> dict:
    """Fit one temperature per exclusive group and per independent tag on half of the held-out renders under
    the held-out style shift (`tagger_augment.shifted_validation`); measure on the other half. Sets
    `tagger.temperature` and returns what goes into the file's metadata."""
    if tagger_augment.has_part_renders(data):
        parts = tagger_augment.cached_part_renders(data, held_idx, cache)
        images, tags = tagger_augment.shifted_validation(parts, data.schema, seed=_split_seed(opts))
        source = "held-out renders, recoloured and under the held-out style shift"
    else:
        images, tags = np.asarray(data.images[held_idx]), np.asarray(data.tags[held_idx], np.float32)
        source = "held-out images"
    if cols is not None:
        tags = tags[:, cols]
    schema = tagger.schema
    fit, test = np.arange(len(images)) % 2 == 0, np.arange(len(images)) % 2 == 1
    tagger.temperature = None
    logits = tagger.logits(images)
    temperature = fit_temperatures(logits[fit], tags[fit], schema)
    before = calibration_summary(logits[test], tags[test], schema, None)
    after = calibration_summary(logits[test], tags[test], schema, temperature)
    tagger.temperature = temperature
    return {
        "temperature": [round(float(t), 4) for t in temperature],
        "min_confidence": dict(tagger.min_confidence),
        "fitted_on": f"{int(fit.sum())} {source} (even positions)",
        "measured_on": f"{int(test.sum())} {source} (odd positions)",
        "before": before,
        "after": after,
    }


def train_tagger(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    opts: TaggerTrainOptions | None = None,
    image_size: int = 64,
    channels: int = 32,
    feat_dim: int = 256,
    pool: str = "flatten",
    stem_stride: int = 2,
) -> TaggerTrainResult:
    """Train a tagger on `data_dir`, write the model and its held-out report into `out_dir`."""
    from charforge.tagger.report import write_tagger_report

    opts = opts or TaggerTrainOptions()
    if opts.steps < 1 or opts.batch_size < 1:
        raise UserError("--steps and --batch-size must be at least 1")
    if stem_stride not in (1, 2):
        raise UserError(f"--stem-stride {stem_stride}: use 1 (full-resolution first stage) or 2")
    if image_size < 8 or image_size & (image_size - 1):
        raise UserError(f"--size {image_size}: must be a power of two >= 8 (e.g. 32, 64, 128)")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    data = load_packed(data_dir)
    if len(data) < 2:
        raise UserError(f"{data_dir}: {len(data)} image(s); the tagger needs at least 2 (one is held out)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_idx, held_idx = split_indices(len(data), opts.holdout, _split_seed(opts))
    torch.manual_seed(opts.seed)
    schema, cols = learned_schema(data.schema, opts.drop_groups)
    cols_or_none = None if len(cols) == len(data.schema) else cols
    cfg = TaggerConfig(
        n_tags=len(schema),
        image_size=image_size,
        channels=channels,
        feat_dim=feat_dim,
        pool=pool,
        stem_stride=stem_stride,
    )
    net = TaggerNet(cfg).to(memory_format=torch.channels_last)
    fp_opts = {**asdict(opts), "threads": None}
    # options added after the first estimator are left out at their defaults, so folders trained before they
    # existed still resume and reuse
    for name, default in (
        ("skin_any", 0.0),
        ("drop_groups", ()),
        ("colour_true", False),
        ("zoom", (0.55, 1.45)),
        ("extra", None),
        ("extra_share", 0.25),
        ("split_seed", None),
    ):
        if fp_opts[name] == default:
            del fp_opts[name]
    extra_set = None
    if opts.extra:
        if not 0 < opts.extra_share < 1:
            raise UserError(f"--extra-share {opts.extra_share}: must be between 0 and 1", field="extra_share")
        extra_set = load_extra(opts.extra, data.schema)
        fp_opts["extra"] = extra_set.sha256  # the file's content, not its path, decides reuse and resume
    fingerprint = json.loads(
        json.dumps({"data": data.manifest_hash(), "config": asdict(cfg), "opts": fp_opts})
    )
    seconds = _reuse_finished(out / WEIGHTS_NAME, net, fingerprint)
    reused = seconds is not None
    cache = opts.parts_cache or str(out / "part_renders")
    if seconds is None:  # nothing finished here yet: train (resuming from a checkpoint if one is there)
        parts = None
        if opts.recolour > 0:
            parts = tagger_augment.cached_part_renders(data, train_idx[: opts.recolour_n], cache)
        _train_loop(net, data, train_idx, opts, out, fingerprint, parts, schema, cols_or_none, extra_set)
        seconds = time.perf_counter() - t0
    tagger = Tagger(net, schema)
    calibration = None
    if opts.calibrate and len(held_idx) >= 4:
        calibration = _calibrate(tagger, data, held_idx, opts, cache, cols_or_none)
    held = (
        np.asarray(data.images[held_idx])
        if len(held_idx)
        else np.zeros((0, data.size, data.size, 3), np.uint8)
    )
    report = write_tagger_report(
        out,
        tagger,
        held,
        np.asarray(data.tags[held_idx])[:, cols],
        info={
            "data": str(data_dir),
            "n_train": len(train_idx),
            "n_heldout": len(held_idx),
            "train_seconds": round(seconds, 1),
            "options": asdict(opts),
            "config": asdict(cfg),
            **({"calibration": calibration} if calibration else {}),
        },
    )
    path = save_tagger(
        out / WEIGHTS_NAME,
        net,
        schema,
        extra={
            "train": json.loads(
                json.dumps(
                    {
                        "data": str(data_dir),
                        "steps": opts.steps,
                        "seed": opts.seed,
                        "split_seed": _split_seed(opts),
                        "seconds": round(seconds, 1),
                    }
                )
            ),
            "fingerprint": fingerprint,
            "heldout_summary": report["summary"],
            **({"calibration": calibration} if calibration else {}),
        },
    )
    (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    return TaggerTrainResult(path=path, report=report, seconds=seconds, reused=reused)
