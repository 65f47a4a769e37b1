"""Training the tagger on a packed dataset: deterministic held-out split, light augmentation, resumable.

Output folder:
  tagger.safetensors      the model (kind "tagger", config + tag schema in metadata)
  report.json / report.md per-tag held-out precision and recall
  confusion_<group>.png   a confusion matrix per exclusive group
  checkpoint.safetensors  weights + Adam state while training (removed when done); rerun to resume
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

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
    preprocess,
    save_tagger,
    tag_loss,
)
from charforge.utils.progress import progress

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class TaggerTrainOptions:
    steps: int = 3000  # optimiser steps
    batch_size: int = 64  # images per step
    lr: float = 2e-3  # Adam learning rate, cosine-decayed to 5 % of this by the last step
    weight_decay: float = 1e-4  # decoupled (AdamW) weight decay per step, relative
    seed: int = 0  # seeds the split, the batches, the augmentation and the initial weights
    holdout: float = 0.1  # fraction of images held out for the precision/recall report
    shift: float = 0.0625  # max random translation, as a fraction of the image side
    degrade: float = 0.5  # share of images that also get a random blur, down-up resampling and pixel noise
    checkpoint_every: int = 250  # steps between resumable checkpoints
    amp: bool = True  # bf16 autocast on CPU (about 2x faster on AVX-512 BF16 machines)
    threads: int | None = None  # torch intra-op threads (None: leave as is)


@dataclass
class TaggerTrainResult:
    path: Path
    report: dict = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False  # the folder already held this exact tagger; nothing was retrained


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
    warm = max(1, min(100, opts.steps // 20))
    if step < warm:
        return opts.lr * (step + 1) / warm
    t = (step - warm) / max(1, opts.steps - warm)
    return opts.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def _save_checkpoint(
    path: Path, net: TaggerNet, opt: torch.optim.Optimizer, step: int, fingerprint: dict
) -> None:
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    save_model(path, tensors, kind="tagger-checkpoint", config=fingerprint, extra={"step": step})


def _load_checkpoint(path: Path, net: TaggerNet, opt: torch.optim.Optimizer, fingerprint: dict) -> int:
    """Restore weights + Adam state; returns the step to continue from (0 when there is no usable checkpoint)."""
    if not path.is_file():
        return 0
    tensors, meta = load_model(path, kind="tagger-checkpoint")
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


def _batch(data: PackedDataset, idx: np.ndarray, step: int, opts: TaggerTrainOptions, size: int):
    rng = np.random.default_rng([opts.seed, step])  # per-step stream: a resumed run draws the same batches
    pick = np.sort(rng.choice(idx, size=min(opts.batch_size, len(idx)), replace=len(idx) < opts.batch_size))
    x = preprocess(np.asarray(data.images[pick]), size)  # (B, 3, size, size)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return degrade(augment(x, gen, opts.shift), gen, opts.degrade), torch.from_numpy(
        np.asarray(data.tags[pick], dtype=np.float32)
    )


def _train_loop(
    net: TaggerNet,
    data: PackedDataset,
    train_idx: np.ndarray,
    opts: TaggerTrainOptions,
    out: Path,
    fingerprint: dict,
) -> None:
    opt = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    ckpt = out / CHECKPOINT_NAME
    start = _load_checkpoint(ckpt, net, opt, fingerprint)
    net.train()
    with progress(total=opts.steps, desc="tagger", unit="step", initial=start) as bar:
        for step in range(start, opts.steps):
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, opts)
            x, y = _batch(data, train_idx, step, opts, net.cfg.image_size)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts.amp):
                loss = tag_loss(net(x.contiguous(memory_format=torch.channels_last)), y, data.schema)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if (step + 1) % opts.checkpoint_every == 0 and step + 1 < opts.steps:
                _save_checkpoint(ckpt, net, opt, step + 1, fingerprint)
    net.eval()


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
    train_idx, held_idx = split_indices(len(data), opts.holdout, opts.seed)
    torch.manual_seed(opts.seed)
    cfg = TaggerConfig(
        n_tags=len(data.schema),
        image_size=image_size,
        channels=channels,
        feat_dim=feat_dim,
        pool=pool,
        stem_stride=stem_stride,
    )
    net = TaggerNet(cfg).to(memory_format=torch.channels_last)
    fingerprint = json.loads(
        json.dumps(
            {"data": data.manifest_hash(), "config": asdict(cfg), "opts": {**asdict(opts), "threads": None}}
        )
    )
    seconds = _reuse_finished(out / WEIGHTS_NAME, net, fingerprint)
    reused = seconds is not None
    if seconds is None:  # nothing finished here yet: train (resuming from a checkpoint if one is there)
        _train_loop(net, data, train_idx, opts, out, fingerprint)
        seconds = time.perf_counter() - t0
    tagger = Tagger(net, data.schema)
    held = (
        np.asarray(data.images[held_idx])
        if len(held_idx)
        else np.zeros((0, data.size, data.size, 3), np.uint8)
    )
    report = write_tagger_report(
        out,
        tagger,
        held,
        np.asarray(data.tags[held_idx]),
        info={
            "data": str(data_dir),
            "n_train": len(train_idx),
            "n_heldout": len(held_idx),
            "train_seconds": round(seconds, 1),
            "options": asdict(opts),
            "config": asdict(cfg),
        },
    )
    path = save_tagger(
        out / WEIGHTS_NAME,
        net,
        data.schema,
        extra={
            "train": json.loads(
                json.dumps(
                    {
                        "data": str(data_dir),
                        "steps": opts.steps,
                        "seed": opts.seed,
                        "seconds": round(seconds, 1),
                    }
                )
            ),
            "fingerprint": fingerprint,
            "heldout_summary": report["summary"],
        },
    )
    (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    return TaggerTrainResult(path=path, report=report, seconds=seconds, reused=reused)
