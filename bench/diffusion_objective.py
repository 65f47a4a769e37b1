"""Diffusion objectives side by side in one space neither optimises: the error of the clean image each model
implies, on fresh renders it never saw.

    python bench/diffusion_objective.py v=runs/v eps=runs/eps [--n 256] [--out bench/results/diffusion_objective.md]

A v-prediction model and an epsilon-prediction model minimise different losses, so their training losses
cannot be compared. Both imply an estimate of the clean image x0 at every noise level
(v: x0 = sqrt(a) x_t - sqrt(1 - a) v; eps: x0 = (x_t - sqrt(1 - a) eps) / sqrt(a)), and that estimate's mean
squared error against the true render is the same quantity for both. It is measured at fixed timesteps, with
the same noise and tags for every model, on built-in creator renders drawn from a seed no training set uses,
brought to the model's resolution with the trainer's resize; conditioned on their true tags. Lower is better;
"mean" averages the timesteps equally. The tag precision and FID of the same models come from `charforge eval`
(see docs/diffusion.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TIMESTEPS = (50, 150, 300, 500, 700, 900)
SEED = 424242  # fresh renders: no dataset in the docs is built from this seed


def fresh_renders(n: int, size: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from charforge.creators.builtin import BuiltinCreator

    c = BuiltinCreator()
    batch = c.sample(n, np.random.default_rng(SEED))
    return c.render(batch, size), np.asarray(c.derive_tags(batch), np.float32), list(c.schema.tags)


@torch.no_grad()
def x0_errors(bundle, images: np.ndarray, tags: np.ndarray, names: list[str]) -> dict[int, float]:
    from charforge.models.diffusion import training_scheduler

    s = bundle.image_size
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1  # the trainer's mapping and resize
    x0 = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False).contiguous()
    cols = [names.index(t) for t in bundle.schema.tags]  # the model's tag order, by name
    c = torch.from_numpy(tags[:, cols])
    sched = training_scheduler(bundle.config)
    ac = sched.alphas_cumprod.double()
    pred_kind = bundle.config["prediction"]
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(x0.shape, generator=g)  # the same noise for every model and timestep
    out = {}
    for t in TIMESTEPS:
        tt = torch.full((len(x0),), t, dtype=torch.long)
        a = ac[t].float()
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        errs = []
        for i in range(0, len(x0), 64):
            pred = bundle.net(x_t[i : i + 64], tt[i : i + 64], c[i : i + 64]).float()
            if pred_kind == "v_prediction":
                est = a.sqrt() * x_t[i : i + 64] - (1 - a).sqrt() * pred
            else:
                est = (x_t[i : i + 64] - (1 - a).sqrt() * pred) / a.sqrt()
            errs.append(((est - x0[i : i + 64]) ** 2).mean(dim=(1, 2, 3)))
        out[t] = float(torch.cat(errs).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="NAME=PATH (a diffusion model file or run folder)")
    ap.add_argument("--n", type=int, default=256, help="fresh renders")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = ap.parse_args(argv)
    from charforge.core.device import describe_machine
    from charforge.sampling import load_generator

    torch.set_num_threads(args.threads)
    images, tags, names = fresh_renders(args.n)
    rows = []
    for spec in args.models:
        name, _, path = spec.partition("=")
        b = load_generator(path, device="cpu")
        if b.config.get("family") != "diffusion":
            print(f"{spec}: not a diffusion model", file=sys.stderr)
            return 2
        err = x0_errors(b, images, tags, names)
        rows.append((name, b.model_id, b.config["prediction"], err))
        print(name, b.model_id, {k: round(v, 4) for k, v in err.items()}, flush=True)
    head = "| model | id | prediction | " + " | ".join(f"t={t}" for t in TIMESTEPS) + " | mean |"
    lines = [
        "## Diffusion objectives: clean-image error on fresh renders (bench/diffusion_objective.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {describe_machine()}; {args.n} built-in creator "
        f"renders from seed {SEED} (never a training seed), the same noise for every model; MSE of the implied x0 "
        "in [-1, 1] pixel units, conditioned on the true tags (lower is better).",
        "",
        head,
        "|" + "---|" * (len(TIMESTEPS) + 4),
    ]
    for name, mid, kind, err in rows:
        vals = " | ".join(f"{err[t]:.4f}" for t in TIMESTEPS)
        lines.append(f"| {name} | `{mid}` | {kind} | {vals} | {np.mean(list(err.values())):.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
