"""Diffusion sampling speed on the CPU beside the shipped GAN: ms for one image and images/s batched at several
step counts, with and without classifier-free guidance (its cost: a second denoiser pass per step), and with a
negative tag (a third). Writes bench/results/diffusion_speed.json; bench/results/diffusion.md quotes it.

    OMP_NUM_THREADS=1 python bench/bench_diffusion.py --threads 1 [--model diffusion] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from charforge import sampling

ROOT = Path(__file__).resolve().parent


def cpu_flags() -> list[str]:
    from charforge.core.device import cpu_flags as flags

    return sorted(f for f in flags() if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"))


def load_average() -> float:
    return os.getloadavg()[0]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN kernels, scheduler tables)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def sharpness(diff, gan, n: int, data_dir: Path) -> dict:
    """Laplacian-variance sharpness over that of real renders at the same size (1 = as sharp as the data), on
    the tag rows of n real images and seeds 0..n-1 for both models; the GAN also at the diffusion model's size."""
    import torch.nn.functional as F

    from charforge.data.packed import load_packed
    from charforge.metrics.sharpness import sharpness_ratio

    data = load_packed(data_dir)
    idx = np.sort(np.random.default_rng(0).choice(len(data), n, replace=False))
    real = np.asarray(data.images[idx])
    tags = np.asarray(data.tags[idx], np.float32)

    def down(imgs: np.ndarray, s: int) -> np.ndarray:  # the trainer's antialiased bilinear resize
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    s = diff.image_size
    d_imgs = sampling.generate(diff, tags, seeds=range(n))
    g_imgs = sampling.generate(gan, tags, seeds=range(n))
    return {
        "n": n,
        f"diffusion_vs_real_at_{s}px": sharpness_ratio(d_imgs, down(real, s)),
        f"gan_vs_real_at_{gan.image_size}px": sharpness_ratio(g_imgs, real),
        f"gan_downsampled_vs_real_at_{s}px": sharpness_ratio(down(g_imgs, s), down(real, s)),
        "sampling": diff.sampling_record(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="diffusion")
    ap.add_argument("--gan", default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", default="5,10,20,50")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "diffusion_speed.json")
    ap.add_argument(
        "--sharpness-n", type=int, default=128, help="images per model for the sharpness ratio (0 = skip)"
    )
    ap.add_argument(
        "--sharpness-steps", type=int, default=None, help="diffusion steps for the sharpness images"
    )
    ap.add_argument("--data", type=Path, default=ROOT.parent / "data" / "builtin64")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    load0 = load_average()
    diff = sampling.load_generator(a.model, device="cpu")
    gan = sampling.load_generator(a.gan, device="cpu")
    rng = np.random.default_rng(0)
    tags1 = sampling.sample_tags(diff, None, 1, rng)
    tagsb = sampling.sample_tags(diff, None, a.batch, rng)
    neg = diff.schema.to_vector(["hat"])
    rows = []
    for steps in [int(s) for s in a.steps.split(",")]:
        for label, guidance, negative in [
            ("no guidance", 1.0, None),
            ("guidance 2", 2.0, None),
            ("guidance 2 + negative", 2.0, neg),
        ]:
            b = diff.with_options(steps=steps, guidance=guidance)
            one = timed(
                lambda b=b, negative=negative: sampling.generate(b, tags1, seeds=[0], negative=negative),
                a.repeats,
            )
            many = timed(
                lambda b=b, negative=negative: sampling.generate(
                    b, tagsb, seeds=range(a.batch), batch_size=a.batch, negative=negative
                ),
                max(1, a.repeats - 1),
            )
            rows.append(
                {
                    "model": "diffusion",
                    "steps": steps,
                    "mode": label,
                    "ms_one": 1000 * one,
                    "img_per_s_batched": a.batch / many,
                }
            )
            print(rows[-1], flush=True)
    one = timed(lambda: sampling.generate(gan, tags1[:, : len(gan.schema)], seeds=[0]), 10)
    many = timed(lambda: sampling.generate(gan, tagsb, seeds=range(a.batch), batch_size=a.batch), 5)
    rows.append(
        {
            "model": "gan",
            "steps": 1,
            "mode": "one pass",
            "ms_one": 1000 * one,
            "img_per_s_batched": a.batch / many,
        }
    )
    print(rows[-1], flush=True)
    sb = diff.with_options(steps=a.sharpness_steps) if a.sharpness_steps else diff
    sharp = sharpness(sb, gan, a.sharpness_n, a.data) if a.sharpness_n else None
    doc = {
        "sharpness": sharp,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": subprocess.run(["lscpu"], capture_output=True, text=True)
        .stdout.split("Model name:")[1]
        .splitlines()[0]
        .strip()
        if platform.system() == "Linux"
        else platform.processor(),
        "flags": cpu_flags(),
        "threads": a.threads,
        "torch": torch.__version__,
        "batch": a.batch,
        "load_average_start_end": [round(load0, 2), round(load_average(), 2)],
        "diffusion": {"model_id": diff.model_id, "image_size": diff.image_size},
        "gan": {"model_id": gan.model_id, "image_size": gan.image_size},
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
