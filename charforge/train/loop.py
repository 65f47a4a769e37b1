"""The Trainer: setup, one step, and bookkeeping kept apart.

Determinism: every step draws its data indices, noise, labels and augmentation from generators seeded by
(seed, step), and reseeds torch's global RNG (dropout) the same way. A resumed run therefore replays exactly
what an uninterrupted run would have done, given the restored weights and optimiser state.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from charforge import __version__
from charforge.core.device import use_bf16
from charforge.core.images import image_grid, to_uint8
from charforge.core.tags import TagSchema
from charforge.data.packed import load_packed, verify_training_data
from charforge.errors import UserError
from charforge.models import runs
from charforge.models.blocks import to_memory_format
from charforge.models.families import get_family
from charforge.models.generator import save_generator, shipped_generators
from charforge.provenance import save_png
from charforge.provenance.modelcard import licence_warning, write_model_card
from charforge.train import checkpoint as ck
from charforge.train import distributed as dd
from charforge.train.losses import group_phases
from charforge.train.monitor import MetricsLog, histogram_distance, plot_loss_curves
from charforge.train.presets import D_FIELDS, Preset, preset_from_dict
from charforge.utils.io import sha256_file, write_json_atomic
from charforge.utils.progress import progress

N_FIXED = 64  # fixed-noise samples for the grid and the early-stop metric
N_EVAL_REAL = 256  # real images the early-stop metric compares against


class NonFiniteLoss(Exception):
    def __init__(self, step: int, names: list[str]):
        super().__init__(f"non-finite loss at step {step}: {', '.join(names)}")
        self.step, self.names = step, names


@dataclass
class TrainOptions:
    device: str = "auto"  # auto | cpu | cuda | mps
    tensorboard: bool = True  # write TensorBoard events
    show_progress: bool = True
    command: str = ""  # recorded in config.json and the model card
    init_from: str | None = None  # fine-tune: start a new run from a run folder, state file or generator file
    verify_checksums: bool = True  # sha256 of every dataset array before training (sizes and values always)
    max_minutes: float | None = None  # wall-clock budget of this invocation (a --resume gets a new one)
    explicit: tuple[
        str, ...
    ] = ()  # preset fields the user set on the command line (fine-tune defaults skip them)


class EMA:
    """Exponential moving average of G's weights; BN running stats are copied, not averaged."""

    def __init__(self, G: torch.nn.Module):
        self.net = copy.deepcopy(G).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, G: torch.nn.Module, beta: float) -> None:
        torch._foreach_lerp_(list(self.net.parameters()), list(G.parameters()), 1.0 - beta)
        for be, b in zip(self.net.buffers(), G.buffers()):
            be.copy_(b)


def untrained_warning(tags: list[str], total: int, unknown_groups: dict[str, list[str]] | None = None) -> str:
    """`unknown_groups`: exclusive groups (name -> tags) with no tag set on any image, e.g. eye colour in art
    that draws no irises; they are named as unknown rather than listed tag by tag as if absent."""
    grouped = {t for ts in (unknown_groups or {}).values() for t in ts}
    rest = [t for t in tags if t not in grouped]
    shown = ", ".join(rest[:12]) + (f" and {len(rest) - 12} more" if len(rest) > 12 else "")
    for name, ts in (unknown_groups or {}).items():
        shown += f"{'; ' if shown else ''}the {len(ts)} {name} tags, unknown on every image"
    return (
        f"warning: {len(tags)} of {total} tags have no example in the training data ({shown}). The model cannot "
        "learn them: generating with them warns, and `charforge eval` leaves them out of the precision mean. "
        "Add tagged examples (`charforge data import --tags ...`) if you need them."
    )


# fine-tuning on a small set: the EMA must follow the new data within the run, not average over the source's
FINETUNE_EMA_IMAGES_PER_ITEM = 10  # EMA half-life, in images seen, per training image (bounded below)
FINETUNE_EMA_MIN = 500.0
FINETUNE_EMA_RAMPUP = 0.05
SMALL_DATA = 5000  # below this many images a fine-tune adds differentiable augmentation in D
SMALL_DATA_AUGMENT = ("translation", "cutout")  # colour jitter would change the colour tags: not added


def finetune_preset(
    p: Preset, n_images: int, explicit: tuple[str, ...] = (), say: bool = True, *, fresh_d: bool = False
) -> Preset:
    """Sensible EMA for a fine-tune on `n_images`: half-life min(source, max(500, 10 x n_images)) images and a
    ramp-up, so the averaged weights move to the new data within a few hundred steps (a fine-tune that kept
    the shipped model's 20,000-image half-life and no ramp-up had not moved after 439 steps). The learning
    rate is the source's (already the fine-tuning rate for the shipped model). Fields the user set with
    --set (`explicit`) are left alone.

    `fresh_d`: the source has no discriminator (a generator file), so D starts from scratch; its first steps
    would then push G with noise (a fine-tune of the shipped generator washed out within 100 steps). D then
    trains alone for the first max(100, 3 epochs) steps (at most a quarter of the run): `d_warmup`.

    Under SMALL_DATA images, D also sees translated and cut-out images (DiffAugment): on 597 DiceBear avatars a
    fine-tune without it had D memorise the set and G collapse to noise by step 570, while with it G moved
    towards the new style (docs/own_art.md)."""
    changes: dict[str, Any] = {}
    if fresh_d and "d_warmup" not in explicit and p.d_warmup == 0:
        per_epoch = max(1, math.ceil(n_images / p.batch))
        changes["d_warmup"] = int(min(max(100, 3 * per_epoch), max(1, p.steps // 4)))
    elif not fresh_d and "d_warmup" not in explicit and p.d_warmup > 0:
        changes["d_warmup"] = 0  # the source's trained D comes along: its own warm-up is not this run's
    half = max(FINETUNE_EMA_MIN, FINETUNE_EMA_IMAGES_PER_ITEM * float(n_images))
    if "ema_half_life" not in explicit and p.ema_half_life > half:
        changes["ema_half_life"] = half
    if "ema_rampup" not in explicit and p.ema_rampup <= 0:
        changes["ema_rampup"] = FINETUNE_EMA_RAMPUP
    if "augment" not in explicit and n_images < SMALL_DATA:
        kinds = [k for k in p.augment.split(",") if k.strip()]
        added = [k for k in SMALL_DATA_AUGMENT if k not in kinds]
        if added:  # D overfits a few hundred images within ~150 steps without it (docs/own_art.md)
            changes["augment"] = ",".join(added + kinds)
    if "lr_decay_start" not in explicit and p.lr_decay_start > p.steps:
        changes["lr_decay_start"] = p.steps  # no decay inside the run, stated rather than implied
    if not changes:
        return p
    if say:
        text = ", ".join(
            f"{k} {getattr(p, k)!r} -> {v!r}" if isinstance(v, str) else f"{k} {getattr(p, k):g} -> {v:g}"
            for k, v in changes.items()
        )
        print(f"fine-tune on {n_images} images: {text} (override with --set)", file=sys.stderr)
    return dataclasses.replace(p, **changes)


def from_scratch_note(n_images: int, family: str, data_dir: str | Path) -> str:
    """What a from-scratch run on a small dataset can expect, from the measurements in docs/own_art.md, and the
    recipe that does better: a fine-tune of a shipped model."""
    ship = "diffusion" if family == "diffusion" else "default"
    return (
        f"note: training from scratch on {n_images} images. What to expect on a laptop CPU (measured, "
        "docs/own_art.md): a few hundred images of one character become recognisable after about 10 minutes "
        "(--preset dcgan-64); 300 images of a new style take on its layout and colours in 30 minutes but no "
        "recognisable faces yet; budget hours for a new style. For your own art, start from a shipped model "
        f"instead: `charforge train --data {data_dir} --init-from {ship} --minutes 30` "
        "(--minutes stops with a checkpoint, --resume continues)"
    )


def epoch_schedule(p: Preset, data_dir: str | Path, epochs: float, explicit: tuple[str, ...] = ()) -> Preset:
    """`--epochs E`: steps = ceil(E x images / (batch x processes)); samples, checkpoints and the early-stop
    metric once per epoch unless set with --set (seed 001's DCGAN study monitors per epoch)."""
    from charforge.data.packed import load_packed

    n = len(load_packed(data_dir))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_epoch = max(1, math.ceil(n / (p.batch * world)))
    changes: dict[str, Any] = {"steps": max(1, math.ceil(epochs * per_epoch))}
    for name in ("sample_every", "ckpt_every", "eval_every"):
        if name not in explicit:
            changes[name] = per_epoch
    if "log_every" not in explicit:
        changes["log_every"] = min(p.log_every, per_epoch)
    print(
        f"{epochs:g} epochs of {n} images = {changes['steps']} steps ({per_epoch} per epoch); "
        "samples, checkpoints and the early-stop metric every epoch",
        file=sys.stderr,
    )
    return dataclasses.replace(p, **changes)


def resolve_run_preset(out: str | Path, preset: Preset, *, resume: bool, overrides: dict[str, Any]) -> Preset:
    """On --resume the run's own config.json wins; only the fields given on this command line change."""
    cfg = Path(out) / "config.json"
    if not resume:
        return preset
    if not cfg.exists():
        raise UserError(
            f"{out}: --resume given but there is no run here (no config.json); drop --resume to start one"
        )
    saved = json.loads(cfg.read_text())["preset"]
    return preset_from_dict({**saved, **overrides})


def budget_total(step: int, first: int, steps: int, elapsed: float, budget: float) -> int:
    """The step a run under a time budget will reach: `steps`, or fewer where the budget runs out first, at the
    pace since this invocation began at step `first` (the progress bar's total, so its ETA is the budget's)."""
    done = step - first
    if done <= 0 or elapsed <= 0:
        return steps
    return min(steps, step + int(max(budget - elapsed, 0.0) * done / elapsed))


class Trainer:
    def __init__(
        self,
        data_dir: str | Path,
        run_dir: str | Path,
        preset: Preset,
        *,
        resume: bool = False,
        opts: TrainOptions | None = None,
        nan_hook: Callable[[int], bool] | None = None,
    ):
        self.p, self.opts, self.nan_hook = preset, opts or TrainOptions(), nan_hook
        self.run_dir = Path(run_dir)
        self.device = dd.pick_device(self.opts.device)
        self.dist = dd.init_distributed(self.device)
        if self.device.type == "cuda":
            self.device = dd.pick_device("cuda", self.dist.local_rank)
        self.data = load_packed(data_dir)
        if len(self.data) == 0:
            raise UserError(f"{data_dir}: the dataset is empty; build one with `charforge data build`")
        verify_training_data(self.data, checksums=self.opts.verify_checksums)
        self.schema, self.freqs = self.data.schema, self.data.tag_frequencies
        self.untrained_tags = [t for t, f in zip(self.schema.tags, self.freqs) if f <= 0]
        from charforge.core.pixelart import dataset_grid

        # pixel-art data: its grid and palette go into the model, and generation snaps onto them
        self.pixel_art = dataset_grid(self.data.images)
        if self.dist.is_main and self.pixel_art and not resume:
            g = self.pixel_art
            print(
                f"note: your data is pixel art on a {g['cell']} px grid ({g['share']:.0%} of the pictures looked at): "
                f"the model records the grid and the data's {len(g['palette'])} colours, and generated images are "
                "snapped onto them (generate --pixel-art off shows the raw output)",
                file=sys.stderr,
            )
        if self.dist.is_main and self.untrained_tags and not resume:
            rows = np.asarray(self.data.tags)
            unknown = {
                g.name: list(self.schema.tags[sl])
                for g, sl in zip(self.schema.groups, self.schema.group_slices())
                if len(rows) and not rows[:, sl].any()
            }
            print(untrained_warning(self.untrained_tags, len(self.schema), unknown), file=sys.stderr)
        if (
            self.untrained_tags
            and preset.train_labels == "schema"
            and "train_labels" not in self.opts.explicit
        ):
            # the paper's labels would ask G for tags no real image shows, which D's tag head can only reject
            self.p = preset = dataclasses.replace(preset, train_labels="data")
            if self.dist.is_main and not resume:
                print(
                    "note: G's training labels are drawn from your data's own tag rows (train_labels=data), "
                    "since it lacks some tags; --set train_labels=schema for the paper's draw",
                    file=sys.stderr,
                )
        if self.dist.is_main and not resume and not self.opts.init_from and len(self.data) < SMALL_DATA:
            print(from_scratch_note(len(self.data), preset.family, data_dir), file=sys.stderr)
        if self.opts.init_from and not resume:
            # a generator file carries no D; a family without a discriminator (diffusion) has none to warm up,
            # and a d_warmup there would only freeze the denoiser for its first steps
            fresh_d = _source_kind(self.opts.init_from) == "generator" and bool(D_FIELDS.get(preset.family))
            self.p = preset = finetune_preset(
                preset, len(self.data), self.opts.explicit, self.dist.is_main, fresh_d=fresh_d
            )
        # pairs the data never shows together (e.g. two hairstyles from a one-hairstyle creator) join the schema's
        # conflicts: G is not trained on impossible label combinations, and the saved model samples free tags
        # (generate, studio, npc) the same way
        self.learned_conflicts = self.schema.learn_conflicts(self.data.tags) if preset.learn_conflicts else []
        self.schema = self.schema.with_conflicts(self.learned_conflicts)
        if self.dist.is_main and (warning := licence_warning(self.data.manifest)):
            print(warning, file=sys.stderr)
        self.manifest_sha = self.data.manifest_hash()
        self.store = ck.CheckpointStore(self.run_dir, keep=preset.keep_ckpts)
        if self.dist.is_main and (stale := self.store.remove_stale_temps()):
            print(
                f"note: removed {stale} unfinished checkpoint file(s) left by an interrupted write",
                file=sys.stderr,
            )
        self._build()
        self.step, self.lr_scale, self.nan_retries, self.images_seen, self.elapsed = 0, 1.0, 0, 0, 0.0
        self.best, self.bad_evals, self.stop_reason, self.saved_step = math.inf, 0, "", -1
        self.log = MetricsLog(self.run_dir, tensorboard=self.opts.tensorboard and self.dist.is_main)
        self._prepare_run_dir(resume)

    # ---- setup ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        """The family's recipe names the networks, the generator among them, and the loss with its phases."""
        p, T = self.p, len(self.schema)
        torch.manual_seed(p.seed)
        fmt = torch.channels_last if p.channels_last else torch.contiguous_format
        self.memory_format = fmt
        self.recipe = get_family(p.family).load_recipe()
        self.modules = {
            k: to_memory_format(m.to(self.device), fmt) for k, m in self.recipe.modules(p, T).items()
        }
        for m in self.modules.values():
            dd.broadcast_module(m, self.dist)
        if p.d_fast and p.d_kind == "resnet" and isinstance(self.modules.get("D"), torch.nn.Module):
            # same math and state dict; the penalty skips an all-zero backward (train.fast_d)
            from charforge.train.fast_d import speed_up_discriminator

            speed_up_discriminator(self.modules["D"])
        self.gen_name = self.recipe.generator
        self.ema = EMA(self.modules[self.gen_name])
        # fused Adam: one kernel for all parameters (on this CPU 5 ms vs 19 ms per G+D update at 4.8 M params)
        fused = {"fused": True} if self.device.type in ("cpu", "cuda") else {}
        self.optims = {
            k: torch.optim.Adam(m.parameters(), lr=p.lr, betas=(p.beta1, p.beta2), **fused)
            for k, m in self.modules.items()
        }
        self.bf16 = use_bf16(self.device, p.bf16, what="training")
        self.teacher = self._load_teacher(fmt) if p.teacher else None
        self.loss = self.recipe.loss(
            self.modules, self.schema, p, autocast=self.autocast, memory_format=fmt, teacher=self.teacher
        )
        if (
            p.compile_g
            and self.device.type == "cpu"
            and not self.bf16
            and isinstance(getattr(self.loss, "G", None), torch.nn.Module)
        ):
            # fp32 on CPU: G's passes through torch.compile (train.compiled); checkpoints, EMA and the optimiser
            # keep using the module itself, so files and state are those of an eager run
            from charforge.train.compiled import CompiledOrEager

            self.loss.G = CompiledOrEager(self.loss.G)
            if self.dist.is_main:
                print(
                    "note: G runs through torch.compile (fp32 on CPU): the first two steps include its compilation "
                    "(about a minute on one core, seconds once inductor's cache holds it); for a run of a few "
                    "hundred steps --set compile_g=false is quicker",
                    file=sys.stderr,
                )
        self.phase_groups = group_phases(self.loss.phases())
        self.ada = None
        if p.ada:
            from charforge.train.ada import ADA_DEFAULT_KINDS, AdaptiveAugment

            if not self.loss.aug_kinds:
                from charforge.models.augment import parse_augment

                self.loss.aug_kinds = parse_augment(ADA_DEFAULT_KINDS)
                if self.dist.is_main:
                    print(f"ada: no augment kinds set; using {ADA_DEFAULT_KINDS}", file=sys.stderr)
            self.ada = AdaptiveAugment(target=p.ada_target, kimg=p.ada_kimg)  # train_step hands p to the loss
        rng = np.random.default_rng([p.seed, 2**31])  # fixed samples, independent of the step seeds
        noise_shape = p.model_config().noise_shape()  # (Z,) for a GAN, (3, S, S) for diffusion
        self.fixed_z = torch.from_numpy(rng.standard_normal((N_FIXED, *noise_shape)).astype(np.float32))
        self.fixed_c = torch.from_numpy(self._labels(N_FIXED, rng))
        idx = np.sort(rng.choice(len(self.data), size=min(N_EVAL_REAL, len(self.data)), replace=False))
        self.eval_real = self._resize_uint8(np.asarray(self.data.images[idx]))

    # the two GAN networks by their usual names (tests, fine-tuning and the bench read them)
    @property
    def G(self) -> torch.nn.Module:
        return self.modules["G"]

    @property
    def D(self) -> torch.nn.Module:
        return self.modules["D"]

    @property
    def optG(self) -> torch.optim.Optimizer:
        return self.optims["G"]

    @property
    def optD(self) -> torch.optim.Optimizer:
        return self.optims["D"]

    def _load_teacher(self, fmt) -> torch.nn.Module:
        """The preset's teacher tagger, frozen; its tags must be this dataset's tags, in the same order."""
        from charforge.tagger.net import load_tagger

        try:
            tagger = load_tagger(self.p.teacher)
        except UserError as e:
            raise UserError(f"teacher: {e}", field="teacher") from e
        if tagger.schema.tags != self.schema.tags:
            raise UserError(
                f"teacher {self.p.teacher}: it was trained on other tags ({len(tagger.schema)} tags, "
                f"first {tagger.schema.tags[:3]}) than {self.data.root} ({len(self.schema)}, first "
                f"{self.schema.tags[:3]}); train a tagger on this dataset with `charforge tagger train`",
                field="teacher",
            )
        net = tagger.net.to(self.device, memory_format=fmt).eval()
        for q in net.parameters():
            q.requires_grad_(False)
        self.teacher_sha256 = sha256_file(tagger.path)
        return net

    def autocast(self):
        """bf16 autocast where the preset asks for it and the device computes bf16 natively (core.device)."""
        on = self.bf16 and self.device.type in ("cpu", "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on)

    def _prepare_run_dir(self, resume: bool) -> None:
        latest = self.store.latest()
        dd.barrier(self.dist)  # every rank looks before rank 0 writes anything
        if latest is not None and not resume:
            raise UserError(
                f"{self.run_dir}: already holds a run (checkpoint at step {latest}); "
                "pass --resume to continue it or choose another --out"
            )
        cfg_path = self.run_dir / "config.json"
        if resume and cfg_path.exists():
            saved = json.loads(cfg_path.read_text())
            if saved.get("data_manifest_sha256") != self.manifest_sha:
                raise UserError(
                    f"{self.data.root}: this dataset differs from the one {self.run_dir} was trained on "
                    "(manifest hash changed); resume with the original data or start a new --out"
                )
        if resume and latest is not None:
            self.load_checkpoint(latest)
            if self.dist.is_main:
                self.log.truncate_after(latest)
                self._record_resume(cfg_path, latest)
            return
        if self.opts.init_from:
            self.init_from = init_weights(self, self.opts.init_from)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(cfg_path, self._config_record())
        self.save_checkpoint()  # step 0: the NaN guard always has something to roll back to

    def _record_resume(self, cfg_path: Path, step: int) -> None:
        """A resume that changes settings (`--set` on --resume) updates config.json and appends to its history."""
        if not cfg_path.exists():
            return
        saved = json.loads(cfg_path.read_text())
        now = self.p.to_dict()
        changed = {k: [saved["preset"].get(k), v] for k, v in now.items() if saved["preset"].get(k) != v}
        if not changed:
            return
        history = saved.get("resumed", []) + [
            {"step": step, "command": self.opts.command, "changed": changed}
        ]
        write_json_atomic(cfg_path, {**saved, "preset": now, "resumed": history})

    def _config_record(self) -> dict[str, Any]:
        return {
            "preset": self.p.to_dict(),
            "data": str(self.data.root),
            "data_manifest_sha256": self.manifest_sha,
            "data_count": len(self.data),
            "command": self.opts.command,
            "world_size": self.dist.world,
            "device": str(self.device),
            "charforge_version": __version__,
            "init_from": getattr(self, "init_from", None),
            "teacher_sha256": getattr(self, "teacher_sha256", None),
            "learned_conflicts": [list(c) for c in self.learned_conflicts],
            "untrained_tags": self.untrained_tags,
        }

    # ---- one step ----------------------------------------------------------------------------------
    def _step_rngs(self, step: int) -> tuple[np.random.Generator, torch.Generator]:
        rng = np.random.default_rng([self.p.seed, step])
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        torch.manual_seed(int(rng.integers(2**62)))  # dropout and any other global-RNG user
        return rng, g

    def _resize_uint8(self, imgs: np.ndarray) -> np.ndarray:
        if imgs.shape[1] == self.p.resolution:
            return imgs
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
        return to_uint8(self._resize(x / 127.5 - 1))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        s = self.p.resolution
        if x.shape[-1] == s:
            return x
        return F.interpolate(x, size=(s, s), mode="bilinear", antialias=x.shape[-1] > s, align_corners=False)

    def _slice(self, a):
        b, r = self.p.batch, self.dist.rank
        return a[r * b : (r + 1) * b]

    def _real_batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._slice(rng.integers(0, len(self.data), size=self.p.batch * self.dist.world))
        idx = np.sort(idx)  # memmap reads in file order
        imgs = torch.from_numpy(np.ascontiguousarray(self.data.images[idx]))  # (B, S, S, 3) uint8
        x = self._resize(imgs.permute(0, 3, 1, 2).float().div_(127.5).sub_(1))  # (B, 3, S, S) in [-1, 1]
        tags = torch.from_numpy(np.asarray(self.data.tags[idx], dtype=np.float32))  # (B, T)
        x = x.to(self.device, memory_format=self.memory_format)
        return x, tags.to(self.device)

    def _latents(self, rng: np.random.Generator, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.p.batch * self.dist.world
        z = self._slice(torch.randn(n, self.p.z_dim, generator=g))  # (B, Z)
        c = self._slice(torch.from_numpy(self._labels(n, rng)))  # (B, T)
        return z.to(self.device), c.to(self.device)

    def _labels(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """G's training labels: the paper's draw from the schema, or ("data") the tag rows of random training
        images, so a dataset that never shows a tag never asks G for it."""
        if self.p.train_labels == "data":
            rows = np.sort(rng.integers(0, len(self.data), size=n))
            return np.asarray(self.data.tags[rows], dtype=np.float32)
        return self.schema.sample_training(n, rng)

    def lr_at(self, step: int) -> float:
        decay = self.p.lr_decay_rate ** (max(0, step - self.p.lr_decay_start) / 1000.0)
        return self.p.lr * self.lr_scale * decay

    def ema_beta(self) -> float:
        """Per-step EMA decay from the half-life in images, ramped up early so the EMA forgets the random init."""
        half_life = self.p.ema_half_life
        if self.p.ema_rampup > 0:
            half_life = min(
                half_life, (self.images_seen + self.p.batch * self.dist.world) * self.p.ema_rampup
            )
        return 0.5 ** (self.p.batch * self.dist.world / max(half_life, 1e-8))

    def train_step(self, step: int) -> dict[str, float]:
        """One iteration: the loss's phase groups in order, each ending in its module's optimiser step."""
        rng, g = self._step_rngs(step)
        real, real_tags = self._real_batch(rng)
        lr = self.lr_at(step)
        for opt in self.optims.values():
            for group in opt.param_groups:
                group["lr"] = lr
        if self.ada is not None:
            self.loss.aug_p = self.ada.p
        logs: dict[str, torch.Tensor] = {}
        # reuse_fake: one latent draw for the step, and G's phase takes the fakes D's phase made (not in warm-up,
        # where G's phase does not run)
        reuse = self.p.reuse_fake and step >= self.p.d_warmup
        if hasattr(self.loss, "reuse_fake"):
            self.loss.reuse_fake = reuse
        shared = self._latents(rng, g) if reuse else None
        for module, phases in self.phase_groups:
            if module == self.gen_name and step < self.p.d_warmup:
                continue  # warm-up: a fresh discriminator learns the data before it may steer the generator
            z, c = shared if shared is not None else self._latents(rng, g)
            net, opt = self.modules[module], self.optims[module]
            opt.zero_grad(set_to_none=True)
            frozen = [m for k, m in self.modules.items() if k != module]
            for m in frozen:
                m.requires_grad_(False)
            for ph in phases:
                if step % ph.interval == 0:
                    logs |= self.loss.accumulate_gradients(ph.name, real, real_tags, z, c, g)
            for m in frozen:
                m.requires_grad_(True)
            self._finish_phase(net, opt, logs, step)
        self.ema.update(self.modules[self.gen_name], self.ema_beta())
        out = {k: float(v) for k, v in logs.items()}
        if self.ada is not None:
            out["aug_p"] = self.ada.p  # the probability this step used
            if "D_sign" in out:
                sign = dd.mean_over_ranks(out["D_sign"], self.dist, self.device)
                self.ada.observe(sign, self.p.batch * self.dist.world)
        return out

    def _finish_phase(self, net: torch.nn.Module, opt: torch.optim.Optimizer, logs: dict, step: int) -> None:
        if self.nan_hook is not None and self.nan_hook(step):
            logs["loss_D"] = torch.tensor(float("nan"))  # test hook: pretend the loss blew up
        bad = [k for k, v in logs.items() if not torch.isfinite(v).all()]
        if dd.any_true(bool(bad), self.dist, self.device):
            raise NonFiniteLoss(step, bad or ["(on another rank)"])
        dd.allreduce_grads(net, self.dist)
        opt.step()

    # ---- checkpoints ----------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """What a model file records of its making: hashes and names, never a path on this machine."""
        return {
            "preset": self.p.name,
            "step": self.step,
            "data_manifest_sha256": self.manifest_sha,
            "data_count": len(self.data),
            "teacher_sha256": getattr(self, "teacher_sha256", None),
            "init_from_sha256": (getattr(self, "init_from", None) or {}).get("sha256"),
            "learned_conflicts": [list(c) for c in self.learned_conflicts],
            # eval feature spaces whose network this run optimised against: the projected D reads EfficientNet-Lite0,
            # the generic space's network (the teacher is recorded by its sha256 and compared with the judge at eval)
            "feature_spaces_in_training": ["generic"] if self.p.d_kind == "projected" else [],
            "pixel_art": self.pixel_art,
        }

    def save_checkpoint(self) -> None:
        if self.dist.is_main:
            state: dict[str, torch.Tensor] = {}
            meta: dict[str, Any] = {}
            for name, m in self.modules.items():
                state |= ck.prefixed(name, m.state_dict())
                t, mo = ck.flatten_optimizer(self.optims[name], f"opt{name}")
                state |= t
                meta[f"opt{name}"] = mo
            state |= ck.prefixed(f"{self.gen_name}_ema", self.ema.net.state_dict())
            tr, mr = ck.capture_rng()
            meta |= {
                "step": self.step,
                "lr_scale": self.lr_scale,
                "images_seen": self.images_seen,
                "elapsed_s": self.elapsed,
                "best_metric": self.best if math.isfinite(self.best) else None,
                "best_step": getattr(self, "best_step", None),
                "bad_evals": self.bad_evals,
                "rng": mr,
            }
            if self.ada is not None:
                meta["ada"] = self.ada.state()
            self.store.save(
                self.step,
                state=state | tr,
                state_meta=meta,
                config=self.p.to_dict(),
                generator=self.ema.net.state_dict(),
                generator_config=self.p.model_config(),
                schema=self.schema,
                freqs=self.freqs,
                model_id=f"{self.run_dir.name}@{self.step}",
                provenance=self.provenance(),
            )
        self.saved_step = self.step
        dd.barrier(self.dist)

    def load_checkpoint(self, step: int) -> None:
        tensors, meta = self.store.load(step)
        for name, m in self.modules.items():
            m.load_state_dict(ck.unprefixed(name, tensors))
            ck.restore_optimizer(self.optims[name], tensors, meta[f"opt{name}"], f"opt{name}")
        self.ema.net.load_state_dict(ck.unprefixed(f"{self.gen_name}_ema", tensors))
        ck.restore_rng(tensors, meta["rng"])
        self.step, self.lr_scale = int(meta["step"]), float(meta["lr_scale"])
        self.saved_step = self.step
        self.images_seen, self.elapsed = int(meta["images_seen"]), float(meta["elapsed_s"])
        self.best = math.inf if meta.get("best_metric") is None else float(meta["best_metric"])
        self.best_step = meta.get("best_step")
        self.bad_evals = int(meta["bad_evals"])
        if self.ada is not None:
            self.ada.load(meta.get("ada"))

    def _rollback(self, err: NonFiniteLoss) -> None:
        self.nan_retries += 1
        if self.nan_retries > self.p.max_nan_retries:
            raise UserError(
                f"{self.run_dir}: training diverged: {err} after {self.p.max_nan_retries} rollbacks "
                f"(lr already x{self.lr_scale:g}). Try a lower --set lr=..., --set bf16=false, or a "
                "smaller --set gp_weight=...; the last good checkpoint is kept"
            )
        scale = self.lr_scale * self.p.nan_lr_factor
        good = self.store.latest()
        self.load_checkpoint(good)
        self.lr_scale = scale
        msg = f"warning: {err}; rolled back to step {good}, lr x{scale:g} (retry {self.nan_retries}/{self.p.max_nan_retries})"
        if self.dist.is_main:
            print(msg, file=sys.stderr)
            self.log.write(
                {"step": self.step, "event": "nan_rollback", "failed_step": err.step, "lr_scale": scale}
            )

    # ---- bookkeeping ----------------------------------------------------------------------------------
    @torch.no_grad()
    def ema_images(self, z: torch.Tensor, c: torch.Tensor) -> np.ndarray:
        # the family's own sampler: one pass for a GAN, the default sampler for diffusion
        with self.autocast():
            x = get_family(self.p.family).sample(self.ema.net, z.to(self.device), c.to(self.device))
        return to_uint8(x.float())  # (B, 3, S, S) -> (B, S, S, 3)

    def write_samples(self) -> Path:
        imgs = self.ema_images(self.fixed_z, self.fixed_c)
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        meta = {
            "generator": f"{self.p.family}/{self.p.name}",
            "model_id": f"{self.run_dir.name}@{self.step}",
            "seed": self.p.seed,
            "tags": "fixed training-label sample (see config.json)",
        }
        if self.pixel_art:  # shown as `generate` will draw them: snapped onto the data's grid and palette
            from charforge.core.pixelart import snap

            imgs = snap(imgs, self.pixel_art)
            meta["pixel_art"] = "snapped to the training set's pixel grid and palette, as generate draws them"
        save_png(path, image_grid(imgs, cols=int(math.sqrt(N_FIXED))), meta)
        return path

    def evaluate(self) -> float:
        """Early-stop metric: colour-histogram distance of EMA samples to real images (lower is better)."""
        dist = histogram_distance(self.eval_real, self.ema_images(self.fixed_z, self.fixed_c))
        if dist < self.best - 1e-4:
            self.best, self.bad_evals, self.best_step = dist, 0, self.step
            self._save_best()
        else:
            self.bad_evals += 1
        if self.p.patience and self.bad_evals >= self.p.patience:
            self.stop_reason = (
                f"early stop: hist_dist has not improved on {self.best:.4f} for {self.bad_evals} evaluations"
            )
        return dist

    def _save_best(self) -> None:
        """Keep the EMA generator at the best metric: a run that later degrades (a small set overfitting its
        discriminator) still has its best model, not only its last."""
        if not self.dist.is_main:
            return
        save_generator(
            runs.best_generator_path(self.run_dir),
            self.ema.net.state_dict(),
            self.p.model_config(),
            self.schema,
            self.freqs,
            model_id=f"{self.run_dir.name}@{self.step}",
            provenance={**self.provenance(), "best_hist_dist": round(float(self.best), 6)},
        )

    def _bookkeeping(self, logs: dict[str, float], rate: float) -> None:
        s, p = self.step, self.p
        if s % p.eval_every == 0:
            logs["hist_dist"] = self.evaluate() if self.dist.is_main else 0.0
            if dd.any_true(bool(self.stop_reason), self.dist, self.device) and not self.stop_reason:
                self.stop_reason = "early stop (decided on rank 0)"
        if self.dist.is_main and (s % p.log_every == 0 or "hist_dist" in logs):
            self.log.write(
                {
                    "step": s,
                    **logs,
                    "lr": self.lr_at(s - 1),
                    "img_per_s": rate,
                    "images": self.images_seen,
                    "time_s": round(self.elapsed, 3),
                }
            )
        if self.dist.is_main and s % p.sample_every == 0:
            self.write_samples()
            plot_loss_curves(self.log.path, self.run_dir / "loss_curves.png")
        if s % p.ckpt_every == 0:
            self.save_checkpoint()

    def run(self) -> dict[str, Any]:
        """Train until `steps` (or early stop); checkpoint at exit. Returns a summary dict."""
        p, per_step = self.p, self.p.batch * self.dist.world
        started, first = time.perf_counter(), self.step
        budget = None if self.opts.max_minutes is None else 60.0 * self.opts.max_minutes
        # Under a time budget the bar counts this invocation's steps (a resumed run starts at 0 %, and its end
        # is where the budget will run out); without one it counts the run's steps from 0 to --steps.
        shift = first if budget is not None else 0
        bar = progress(
            total=p.steps - shift,
            desc="train" if budget is None else f"train ({self.opts.max_minutes:g} min from step {first})",
            unit="step",
            initial=self.step - shift,
            disable=None if (self.opts.show_progress and self.dist.is_main) else True,
            # under a budget the total comes from the pace since the start (budget_total), so the ETA must too:
            # tqdm's smoothed recent rate put it minutes past the budget once steps slowed (after D warm-up)
            **({"smoothing": 0} if budget is not None else {}),
        )
        restore = self._stop_on_interrupt()
        try:
            while self.step < p.steps and not self.stop_reason:
                if budget is not None and dd.any_true(
                    time.perf_counter() - started >= budget, self.dist, self.device
                ):
                    self.stop_reason = (
                        f"time budget of {self.opts.max_minutes:g} min reached at step {self.step}; "
                        "checkpointed, --resume continues (with a new budget)"
                    )
                    break
                t0 = time.perf_counter()
                try:
                    logs = self.train_step(self.step)
                except NonFiniteLoss as err:
                    self._rollback(err)
                    bar.n = self.step - shift
                    continue
                dt = time.perf_counter() - t0
                self.step, self.images_seen, self.elapsed = (
                    self.step + 1,
                    self.images_seen + per_step,
                    self.elapsed + dt,
                )
                self._bookkeeping(logs, per_step / max(dt, 1e-9))
                bar.update(1)
                if budget is not None:  # the bar ends where the time budget will, not at `steps`
                    bar.total = (
                        budget_total(self.step, first, p.steps, time.perf_counter() - started, budget) - shift
                    )
                shown = {
                    k[5:]: f"{v:.3f}" for k, v in logs.items() if k.startswith("loss_")
                }  # D, G (not in warm-up)
                bar.set_postfix(**shown, ips=f"{per_step / max(dt, 1e-9):.0f}")
        finally:
            bar.close()
            restore()
        return self.finish()

    def _stop_on_interrupt(self) -> Callable[[], None]:
        """First Ctrl-C (or SIGTERM): finish the current step, checkpoint, exit; a second one aborts at once.

        Stopping between steps keeps the checkpoint exact (a step cut in half would leave D updated and G not).
        Returns a function that puts the previous handlers back.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, _frame):
            if self.stop_reason:
                raise KeyboardInterrupt
            # the step in progress finishes and is checkpointed; finish() and the CLI report the step count
            self.stop_signal = signal.Signals(signum).name
            self.stop_reason = (
                f"stopped by {self.stop_signal}; the last step is checkpointed, rerun with --resume"
            )

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(sig, h) for sig, h in old.items()] and None

    def _best_record(self) -> dict[str, Any] | None:
        path = runs.best_generator_path(self.run_dir)
        if not path.exists() or not math.isfinite(self.best):
            return None
        return {"path": str(path), "step": getattr(self, "best_step", None), "hist_dist": round(self.best, 4)}

    def _base_model_record(self) -> dict[str, Any] | None:
        """For a fine-tune's card: the source file's name, model id, hash and step (config.json keeps the path)."""
        rec = getattr(self, "init_from", None)
        if not rec:
            cfg = self.run_dir / "config.json"
            rec = json.loads(cfg.read_text()).get("init_from") if cfg.exists() else None
        if not rec:
            return None
        return {
            "file": Path(rec["path"]).name,
            "model_id": rec.get("model_id"),
            "sha256": rec.get("sha256"),
            "step": rec.get("step"),
        }

    def finish(self) -> dict[str, Any]:
        if self.saved_step != self.step:  # in memory: ranks must agree without racing on the file system
            self.save_checkpoint()
        if self.dist.is_main:
            if self.step > 0 and not (self.run_dir / "samples" / f"step_{self.step:07d}.png").exists():
                # a short run (a time budget, a stop) ends between sample grids: the CLI points the user at
                # samples/, so the last step always has one
                self.write_samples()
            plot_loss_curves(self.log.path, self.run_dir / "loss_curves.png")
            write_model_card(
                self.run_dir,
                dataset_manifest=self.data.manifest,
                config=self.p.to_dict(),
                command=self.opts.command,
                steps=self.step,
                wall_time_s=self.elapsed,
                tag_freqs=self.freqs,
                metrics={"hist_dist (best)": None if not math.isfinite(self.best) else round(self.best, 4)},
                base_model=self._base_model_record(),
                untrained_tags=self.untrained_tags,
            )
            if self.stop_reason and not getattr(
                self, "stop_signal", None
            ):  # a signal stop: the CLI reports it
                print(self.stop_reason, file=sys.stderr)
        self.log.close()
        return {
            "step": self.step,
            "images": self.images_seen,
            "time_s": self.elapsed,
            "stop_reason": self.stop_reason,
            "generator": str(self.store.generator_path(self.step)),
            "best": self._best_record(),
        }


def _init_source(source: str | Path) -> Path:
    """A run folder (its latest state), a file, or the name of a shipped generator ("default")."""
    shipped = shipped_generators().get(str(source))
    path = Path(source)
    if not path.exists() and "/" not in str(source) and shipped is not None:
        return shipped
    if not path.exists():
        raise UserError(
            f"--init-from {source}: no such file or run folder; give a run folder, a .safetensors file or "
            "'default' (the shipped generator)"
        )
    if path.is_dir():
        latest = ck.CheckpointStore(path).latest()
        if latest is None:
            raise UserError(
                f"--init-from {path}: no checkpoint in this folder; give a run folder, a state-*.safetensors "
                "or a generator .safetensors file"
            )
        path = ck.CheckpointStore(path).state_path(latest)
    return path


def _source_kind(source: str | Path) -> str | None:
    from charforge.models.io import read_metadata

    return read_metadata(_init_source(source)).get("charforge_kind")


def source_preset(source: str | Path, overrides: dict[str, Any] | None = None) -> Preset:
    """The preset an --init-from source was trained with (its architecture and schedule, not its teacher),
    with `overrides` applied.

    A training-state file records its whole preset. A generator file of format 2 records only its model
    config: the schedule then comes from the preset named in its provenance (or the family's first preset), and
    the architecture fields from the file. A format-1 generator file records its preset."""
    from charforge.models.io import read_metadata
    from charforge.train.presets import PRESETS

    meta = read_metadata(_init_source(source))
    cfg = meta.get("charforge_config")
    if not isinstance(cfg, dict) or "family" not in cfg:
        raise UserError(f"--init-from {source}: the file records no model config; pass --preset")
    if meta.get("charforge_kind") == "generator" and str(meta.get("charforge_format", "1")) != "1":
        prov = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
        named = PRESETS.get(str(prov.get("preset")))
        base = (
            named
            if named is not None and named.family == cfg["family"]
            else next((q for q in PRESETS.values() if q.family == cfg["family"]), None)
        )
        if base is None:
            raise UserError(f"--init-from {source}: no preset of family {cfg['family']!r}; pass --preset")
        cfg = {**base.to_dict(), **{k: v for k, v in cfg.items() if k != "family"}}
    # the source's teacher tagger is a file on the machine and dataset it was trained with: a fine-tune starts
    # without one unless --set teacher=... names one for the new data; its checkpoint bookkeeping (how many to
    # keep) is the source run's, not a fine-tune's
    fresh = {"teacher": "", "keep_ckpts": Preset("", cfg["family"]).keep_ckpts}
    return preset_from_dict({**cfg, **fresh, **(overrides or {})})


def init_weights(trainer: Trainer, source: str | Path) -> dict[str, Any]:
    """Fine-tuning: copy G, G_ema and D weights from `source` into a fresh run (new optimisers, step 0).

    `source` is a run folder (its latest checkpoint), a `state-*.safetensors` file (G, EMA and D) or a generator
    file (G and EMA only; D starts fresh). Shapes must match the preset. Parameters the source lacks are allowed
    only where a module is new to this preset (e.g. `d_projection`'s embedding) and start from their init.
    Returns a provenance record for config.json.
    """
    from charforge.models.io import load_model

    path = _init_source(source)
    tensors, meta = load_model(path)
    kind = meta.get("charforge_kind")
    # the family's own module names (a GAN's G and D, the diffusion family's U): a state file holds each
    # trained module and the EMA; a generator file is one network, loaded into the generator and its EMA
    gen = trainer.gen_name
    others = {k: m for k, m in trainer.modules.items() if k != gen}
    if kind == ck.STATE_KIND:
        parts = {gen: trainer.modules[gen], f"{gen}_ema": trainer.ema.net, **others}
    elif kind == "generator":
        tensors = ck.prefixed(gen, tensors) | ck.prefixed(f"{gen}_ema", tensors)
        parts = {gen: trainer.modules[gen], f"{gen}_ema": trainer.ema.net}
    else:
        raise UserError(
            f"--init-from {path}: is a {kind!r} file; expected a training state or a generator file"
        )
    old_schema = _source_schema(path, meta)
    remap = old_schema is not None and old_schema.tags != trainer.schema.tags
    if remap and len(old_schema) == len(trainer.schema):
        raise UserError(
            f"--init-from {path}: its {len(old_schema)} tags differ from this dataset's by name at the same count; "
            "fine-tuning onto another schema needs added or removed tags (e.g. the style group), not renamed ones"
        )
    missing_all: list[str] = []
    remapped: list[str] = []
    for prefix, net in parts.items():
        own = net.state_dict()
        src = ck.unprefixed(prefix, tensors)
        if remap:
            for k, v in list(src.items()):
                if k in own and own[k].shape != v.shape:
                    src[k] = transfer_tag_weights(own[k], v, old_schema, trainer.schema, name=f"{prefix}.{k}")
                    remapped.append(f"{prefix}.{k}")
        extra = sorted(set(src) - set(own))
        if extra:
            raise UserError(
                f"--init-from {path}: {prefix} has weights this preset lacks ({', '.join(extra[:3])}); "
                "use the preset the source was trained with (see its config.json)"
            )
        for k, v in src.items():
            if own[k].shape != v.shape:
                raise UserError(
                    f"--init-from {path}: {prefix}.{k} has shape {tuple(v.shape)}, this preset needs "
                    f"{tuple(own[k].shape)}; use the source's preset and dataset tag schema"
                )
        missing = sorted(set(own) - set(src))
        net.load_state_dict({**own, **src})
        missing_all += [f"{prefix}.{k}" for k in missing]
    if trainer.dist.is_main and missing_all:
        print(
            f"--init-from: {len(missing_all)} tensors are new in this preset and start from their init: "
            f"{', '.join(missing_all[:4])}",
            file=sys.stderr,
        )
    if trainer.dist.is_main and remapped:
        added = [t for t in trainer.schema.tags if t not in set(old_schema.tags)]
        dropped = [t for t in old_schema.tags if t not in set(trainer.schema.tags)]
        said = [
            f"new tags start with no effect: {', '.join(added[:6])}{' ...' if len(added) > 6 else ''}"
            if added
            else "",
            f"dropped (not in this dataset): {', '.join(dropped[:6])}{' ...' if len(dropped) > 6 else ''}"
            if dropped
            else "",
        ]
        print(
            f"--init-from: the source has {len(old_schema)} tags, this dataset {len(trainer.schema)}; carried "
            f"{len(remapped)} tag-sized tensors over by tag name ({'; '.join(x for x in said if x)})",
            file=sys.stderr,
        )
    return {
        "path": str(path),
        "sha256": sha256_file(path),
        "step": meta.get("step"),
        "new_tensors": missing_all,
        "remapped_tensors": remapped,
        "source_tags": None if old_schema is None else len(old_schema),
    }


def _source_schema(path: Path, meta: dict[str, Any]) -> TagSchema | None:
    """The tag schema an --init-from source was trained on: a generator file's own, or (for a state file)
    that of the generator file written with it (None when there is none: then shapes must simply match)."""
    from charforge.models.generator import read_tag_schema

    if meta.get("charforge_kind") == ck.STATE_KIND:
        path = path.with_name(path.name.replace("state-", "generator-", 1))
        if not path.is_file():
            return None
    return read_tag_schema(path)


def transfer_tag_weights(
    own: torch.Tensor, src: torch.Tensor, old: TagSchema, new: TagSchema, *, name: str = "tensor"
) -> torch.Tensor:
    """`src` (trained on `old` tags) reshaped to `own` (built for `new` tags), matching tag columns by name.

    In every family the tags are the last entries of one axis: the input of a Linear (G's dense layer on
    [z, tags], conditional-BN embeddings, D's projection) or the output of D's tag head. Entries before the
    tag block are copied; tag entries go to the column of the same tag; a new tag's input weights are zero
    (so the fine-tuned model starts as the source) and its output rows keep their fresh init."""
    diff = [a for a in range(own.dim()) if own.shape[a] != src.shape[a]]
    to, tn = len(old), len(new)
    if own.dim() != src.dim() or len(diff) != 1:
        raise UserError(
            f"--init-from: {name} has shape {tuple(src.shape)}, this preset needs {tuple(own.shape)}; "
            "use the source's preset"
        )
    a = diff[0]
    if own.shape[a] - src.shape[a] != tn - to or src.shape[a] < to:
        raise UserError(
            f"--init-from: {name} has shape {tuple(src.shape)}, this preset needs {tuple(own.shape)}; the "
            f"difference is not the tag count ({to} -> {tn}); use the source's preset"
        )
    off_o, off_n = src.shape[a] - to, own.shape[a] - tn
    out = own.clone()
    if a == own.dim() - 1 and own.dim() > 1:  # an input axis: new tags start with no effect
        out.narrow(a, off_n, tn).zero_()
    mine, theirs = new.column_map(old)
    idx_n = torch.as_tensor(off_n + mine, dtype=torch.long)
    idx_o = torch.as_tensor(off_o + theirs, dtype=torch.long)
    out.narrow(a, 0, off_n).copy_(src.narrow(a, 0, off_o))
    out.index_copy_(a, idx_n, src.index_select(a, idx_o).to(out.dtype))
    return out
