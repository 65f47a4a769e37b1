"""Training throughput per preset: charforge's real training step vs a plain fp32 PyTorch loop.

"charforge" is `Trainer.train_step` itself (data from a packed dataset, both phases, EMA update) with the
preset's settings: channels_last, lazy DRAGAN penalty (gp_every), one D pass over [fake; real] when D has no
batch statistics, D frozen during G's backward, and bf16 autocast where the preset turns it on.
"plain" is the textbook loop written out below with the same G, D, loss formulas, data and EMA: fp32, NCHW,
penalty every step, separate D passes for real and fake, and no requires_grad switching.
A third column flips the preset's bf16 switch, so the bf16 question is measured rather than argued.

All variants run in one process on the same data, alternating timed windows; we report the median img/s of
the windows. Peak memory is the maxrss of a child process that runs only that variant.
Usage: python bench/bench_train.py [--presets acgan-64-cpu,dcgan-64] [--batch 32] [--windows 5] [--steps 8]
       [--out bench/results/train.md]

`--no-bf16-levers` instead times, against the same plain fp32 loop, the charforge step with bf16 forced off
(CHARFORGE_BF16=0, the path of a CPU without native bf16) and with each speed lever that works without bf16:
lazier regularisation (gp_every), a smaller D (one residual block fewer per stage), G eager instead of
through torch.compile (the preset's compile_g, on where the step runs fp32), and D without its fast paths
(the preset's d_fast, train.fast_d). `--levers 0,3` picks rows of LEVERS.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from charforge.core.device import cpu_name  # noqa: E402
from charforge.core.tags import make_girls_moe_schema  # noqa: E402
from charforge.data.packed import load_packed, write_packed  # noqa: E402
from charforge.train.loop import Trainer, TrainOptions  # noqa: E402
from charforge.train.losses import classification_loss  # noqa: E402
from charforge.train.presets import build_discriminator, build_generator, resolve_preset  # noqa: E402

SCHEMA = make_girls_moe_schema()
N_IMAGES = 512


def make_data(root: Path, size: int) -> Path:
    """A small packed dataset of random pixels and sampled tags: enough for timing, cheap to make."""
    if not (root / "manifest.json").exists():
        rng = np.random.default_rng(0)
        imgs = rng.integers(0, 256, (N_IMAGES, size, size, 3), dtype=np.uint8)
        write_packed(root, imgs, SCHEMA.sample_training(N_IMAGES, rng).astype(np.uint8), SCHEMA)
    return root


def charforge_stepper(
    preset: str,
    batch: int,
    data: Path,
    run: Path,
    flip_bf16: bool = False,
    extra: dict | None = None,
):
    over = {"batch": batch, **(extra or {})}
    if flip_bf16:
        over["bf16"] = not resolve_preset(preset).bf16
    tr = Trainer(
        data,
        run,
        resolve_preset(preset, over),
        opts=TrainOptions(device="cpu", tensorboard=False, show_progress=False),
    )
    state = {"step": 0}

    def step():
        tr.train_step(state["step"])
        state["step"] += 1

    return step


LEVERS = {  # name -> preset overrides (the preset's compile_g compiles G where the step runs fp32)
    "bf16 off (CHARFORGE_BF16=0)": {},
    "bf16 off, gp_every 16": {"gp_every": 16},
    "bf16 off, gp_every 16, D 0 blocks/stage": {"gp_every": 16, "d_blocks": 0},
    "bf16 off, G eager (compile_g=false)": {"compile_g": False},
    "bf16 off, gp_every 16, G eager": {"gp_every": 16, "compile_g": False},
    "bf16 off, D fast paths off (d_fast=false)": {"d_fast": False},
    "bf16 off, gp_every 16, D fast paths off": {"gp_every": 16, "d_fast": False},
    "bf16 off, G's phase reuses D's fakes (reuse_fake)": {"reuse_fake": True},
    "bf16 off, reuse_fake, gp_every 16": {"reuse_fake": True, "gp_every": 16},
}


def bench_levers(preset: str, batch: int, windows: int, steps: int, work: Path, levers: str = "") -> dict:
    """Plain fp32 loop vs the charforge step without bf16 and each lever, in one process, alternating.
    `levers`: comma-separated indices into LEVERS (default: all)."""
    p = resolve_preset(preset)
    data = make_data(work / f"data{p.resolution}", p.resolution)
    old = os.environ.get("CHARFORGE_BF16")
    os.environ["CHARFORGE_BF16"] = "0"
    try:
        variants = {"plain fp32 loop": plain_stepper(preset, batch, data)}
        chosen = {int(i) for i in levers.split(",")} if levers else set(range(len(LEVERS)))
        for i, (name, over) in enumerate(LEVERS.items()):
            if i not in chosen:
                continue
            try:
                variants[name] = charforge_stepper(preset, batch, data, work / f"lev{i}", extra=over)
                time_window(variants[name], 2)  # warm-up (and compilation)
            except Exception as e:  # torch.compile needs a working C++ toolchain; say so, keep the rest
                print(f"{name}: skipped ({type(e).__name__}: {str(e)[:200]})", file=sys.stderr)
                variants.pop(name, None)
        time_window(variants["plain fp32 loop"], 2)
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(windows):
            for k, s in variants.items():
                rates[k].append(batch * steps / time_window(s, steps))
    finally:
        if old is None:
            os.environ.pop("CHARFORGE_BF16", None)
        else:
            os.environ["CHARFORGE_BF16"] = old
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = med["plain fp32 loop"]
    return {
        "preset": preset,
        "batch": batch,
        "img_s": med,
        "speedup": {k: v / base for k, v in med.items()},
        "windows": {k: [round(x, 1) for x in v] for k, v in rates.items()},
    }


def cpu_simd_flags() -> str:
    from charforge.core.device import capabilities, cpu_flags

    keep = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx_vnni")
    caps = capabilities()
    kernels = f"; torch kernels {caps['cpu_capability']}"
    if caps["isa_capped"]:  # an emulated smaller CPU: say so beside the flags it does not use
        kernels += (
            f" (capped: ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '-')}, "
            f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '-')})"
        )
    return (" ".join(f for f in keep if f in cpu_flags()) or "(unknown)") + kernels


def levers_markdown(rows: list[dict], args) -> str:
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, SIMD flags: {cpu_simd_flags()}; torch {torch.__version__}, "
        f"{args.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average at start "
        f"{args.load_at_start:.2f}. Batch {args.batch}; {args.windows} alternating windows of {args.steps} steps "
        "after warm-up; median img/s. Every charforge row runs with CHARFORGE_BF16=0 (fp32, as on a CPU without "
        "native bf16).",
        "",
        "| preset | variant | img/s | vs plain fp32 loop | windows |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        for k, v in r["img_s"].items():
            lines.append(
                f"| {r['preset']} | {k} | {v:.1f} | {r['speedup'][k]:.2f}x | {', '.join(map(str, r['windows'][k]))} |"
            )
    return "\n".join(lines) + "\n"


def plain_stepper(preset: str, batch: int, data: Path):
    """The loop most people write first: fp32, NCHW, every term every step."""
    p = resolve_preset(preset, {"batch": batch})
    ds = load_packed(data)
    torch.manual_seed(0)
    T = len(SCHEMA)
    G, D = build_generator(p, T), build_discriminator(p, T)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    oG = torch.optim.Adam(G.parameters(), lr=p.lr, betas=(p.beta1, p.beta2))
    oD = torch.optim.Adam(D.parameters(), lr=p.lr, betas=(p.beta1, p.beta2))
    adv_w = p.adv_weight or float(T)
    state = {"step": 0}

    def cls_loss(logits, target):
        return classification_loss(logits, target, SCHEMA, p.cls_loss) if logits is not None else 0.0

    def step():
        rng = np.random.default_rng([0, state["step"]])
        idx = np.sort(rng.integers(0, len(ds), size=batch))
        real = torch.from_numpy(np.ascontiguousarray(ds.images[idx])).permute(0, 3, 1, 2).float() / 127.5 - 1
        real = real.contiguous()
        real_tags = torch.from_numpy(np.asarray(ds.tags[idx], dtype=np.float32))
        z = torch.randn(batch, p.z_dim)
        c = torch.from_numpy(SCHEMA.sample_training(batch, rng))
        # D
        oD.zero_grad()
        fake = G(z, c).detach()
        adv_f, _ = D(fake)
        adv_r, cls_r = D(real)
        loss_d = adv_w * (F.softplus(adv_f).mean() + F.softplus(-adv_r).mean()) + cls_loss(cls_r, real_tags)
        if p.gp_weight > 0:
            x_hat = (
                real + torch.rand(batch, 1, 1, 1) * 0.5 * real.std() * torch.rand_like(real)
            ).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat)[0].sum(), x_hat, create_graph=True)
            loss_d = loss_d + p.gp_weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss_d.backward()
        oD.step()
        # G
        oG.zero_grad()
        z = torch.randn(batch, p.z_dim)
        c = torch.from_numpy(SCHEMA.sample_training(batch, rng))
        adv, cls = D(G(z, c))
        (adv_w * F.softplus(-adv).mean() + cls_loss(cls, c)).backward()
        oG.step()
        with torch.no_grad():
            for pe, pg in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(pg, 1 - 0.999)
        state["step"] += 1

    return step


def time_window(step, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - t


def child_maxrss(variant: str, preset: str, batch: int, data: Path) -> float:
    code = (
        f"import bench_train as b, pathlib, tempfile; d = pathlib.Path({str(data)!r});"
        f"s = b.plain_stepper({preset!r}, {batch}, d) if {variant!r} == 'plain' else "
        f"b.charforge_stepper({preset!r}, {batch}, d, pathlib.Path(tempfile.mkdtemp()) / 'run', {variant!r} == 'flip');"
        "[s() for _ in range(4)]; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=sys.path[0], check=True
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # MiB


def bench(preset: str, batch: int, windows: int, steps: int, work: Path) -> dict:
    p = resolve_preset(preset)
    data = make_data(work / f"data{p.resolution}", p.resolution)
    variants = {
        "plain": plain_stepper(preset, batch, data),
        "charforge": charforge_stepper(preset, batch, data, work / f"run-{preset}"),
        "flip": charforge_stepper(preset, batch, data, work / f"run-{preset}-flip", flip_bf16=True),
    }
    for s in variants.values():
        time_window(s, 2)  # warm-up (oneDNN kernel selection)
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(windows):
        for k, s in variants.items():
            rates[k].append(batch * steps / time_window(s, steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "preset": preset,
        "batch": batch,
        "bf16": p.bf16,
        "channels_last": p.channels_last,
        "gp_every": p.gp_every,
        "img_s": med,
        "speedup": med["charforge"] / med["plain"],
        "speedup_flipped_bf16": med["flip"] / med["plain"],
        "windows": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "maxrss_mib": {k: child_maxrss(k, preset, batch, data) for k in variants},
    }


def to_markdown(rows: list[dict], args) -> str:
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, SIMD flags: {cpu_simd_flags()}; torch {torch.__version__}, "
        f"{args.threads} threads, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average at start "
        f"{os.getloadavg()[0]:.2f}. Batch {args.batch}; {args.windows} alternating windows of {args.steps} steps "
        "after 2 warm-up steps; median img/s.",
        "",
        "| preset | plain fp32 loop | charforge step | speed-up | charforge, bf16 flipped | speed-up | peak RSS MiB (plain / charforge) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, rss = r["img_s"], r["maxrss_mib"]
        flip = "bf16 on" if not r["bf16"] else "bf16 off"
        lines.append(
            f"| {r['preset']} (bf16 {'on' if r['bf16'] else 'off'}, gp every {r['gp_every']}) | {m['plain']:.1f} | "
            f"{m['charforge']:.1f} | **{r['speedup']:.2f}x** | {m['flip']:.1f} ({flip}) | "
            f"{r['speedup_flipped_bf16']:.2f}x | {rss['plain']:.0f} / {rss['charforge']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="acgan-64-cpu,dcgan-64")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="")
    ap.add_argument("--no-bf16-levers", action="store_true", help="time the speed levers without bf16")
    ap.add_argument("--levers", default="", help="with --no-bf16-levers: which, as indices into LEVERS (0,1)")
    args = ap.parse_args()
    args.load_at_start = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    if args.no_bf16_levers:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [
                bench_levers(p, args.batch, args.windows, args.steps, Path(tmp), args.levers)
                for p in args.presets.split(",")
            ]
        print(json.dumps(rows, indent=2))
        md = levers_markdown(rows, args)
        print(md)
        if args.out:
            Path(args.out).write_text(md)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(p, args.batch, args.windows, args.steps, Path(tmp)) for p in args.presets.split(",")]
    print(json.dumps(rows, indent=2))
    md = to_markdown(rows, args)
    print(md)
    if args.out:
        Path(args.out).write_text(md)


if __name__ == "__main__":
    main()
