"""Training throughput per preset: charforge's loop settings vs a plain fp32 loop of the same architecture.

Both run side by side in one process on the same synthetic batch stream, alternating timed windows; we
report the median img/s of the windows. "plain" = fp32, contiguous NCHW, DRAGAN penalty every step.
"charforge" = the preset's bf16 autocast + channels_last + lazy penalty (gp_every). Peak memory is the
maxrss of a child process that runs only that variant.
Usage: python bench/bench_train.py [--presets acgan-64-cpu,dcgan-64] [--batch 16] [--windows 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from charforge.data.tags import make_girls_moe_schema
from charforge.models.presets import build_discriminator, build_generator, resolve_preset
from charforge.train.losses import make_loss

SCHEMA = make_girls_moe_schema()


def make_stepper(preset_name: str, batch: int, plain: bool):
    over = {"batch": batch}
    if plain:
        over |= {"bf16": False, "channels_last": False, "gp_every": 1}
    p = resolve_preset(preset_name, over)
    torch.manual_seed(0)
    fmt = torch.channels_last if p.channels_last else torch.contiguous_format
    G = build_generator(p, len(SCHEMA)).to(memory_format=fmt)
    D = build_discriminator(p, len(SCHEMA)).to(memory_format=fmt)
    oG = torch.optim.Adam(G.parameters(), lr=p.lr, betas=(p.beta1, p.beta2))
    oD = torch.optim.Adam(D.parameters(), lr=p.lr, betas=(p.beta1, p.beta2))
    ac = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if p.bf16 else contextlib.nullcontext
    loss = make_loss(G, D, SCHEMA, p, autocast=ac, memory_format=fmt)
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    state = {"step": 0}

    def step():
        real = (torch.rand(batch, 3, p.resolution, p.resolution, generator=g) * 2 - 1).contiguous(memory_format=fmt)
        tags = torch.from_numpy(SCHEMA.sample_training(batch, rng))
        z = torch.randn(batch, p.z_dim, generator=g)
        oD.zero_grad(set_to_none=True)
        loss.accumulate_gradients("D", real, tags, z, tags, g)
        if p.gp_weight > 0 and state["step"] % p.gp_every == 0:
            loss.accumulate_gradients("Dreg", real, tags, z, tags, g)
        oD.step()
        oG.zero_grad(set_to_none=True)
        D.requires_grad_(False)
        loss.accumulate_gradients("G", real, tags, z, tags, g)
        D.requires_grad_(True)
        oG.step()
        state["step"] += 1

    return step


def time_window(step, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - t


def child_maxrss(preset: str, batch: int, plain: bool) -> float:
    code = (f"import bench_train as b; s = b.make_stepper({preset!r}, {batch}, {plain}); [s() for _ in range(3)];"
            "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=sys.path[0], check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # MiB


def bench(preset: str, batch: int, windows: int, steps: int) -> dict:
    plain, fast = make_stepper(preset, batch, True), make_stepper(preset, batch, False)
    for s in (plain, fast):
        time_window(s, 2)  # warm-up (oneDNN kernel selection)
    tp, tf = [], []
    for _ in range(windows):
        tp.append(batch * steps / time_window(plain, steps))
        tf.append(batch * steps / time_window(fast, steps))
    mp, mf = statistics.median(tp), statistics.median(tf)
    return {"preset": preset, "batch": batch, "plain_img_s": mp, "charforge_img_s": mf, "speedup": mf / mp,
            "plain_maxrss_mib": child_maxrss(preset, batch, True), "charforge_maxrss_mib": child_maxrss(preset, batch, False)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="acgan-64-cpu,dcgan-64")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench(p, args.batch, args.windows, args.steps) for p in args.presets.split(",")]
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
