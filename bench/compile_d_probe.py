"""Would torch.compile of D speed up the trainer's first-order passes? A probe, not a lever.

Session 14 also ran it inside the trainer (D compiled for D's and G's phases, the penalty eager, with d_fast's
leaky ReLU): bench/bench_train.py measured that 2-4% slower than eager D in three 9-window runs, so it was not
kept (bench/results/train.md, session 14). The probe stays to re-check on other CPUs and torch versions.

Times acgan-64-cpu's discriminator (channels_last, as the trainer runs it) in the two first-order passes of a
training step, eager against `torch.compile(D, dynamic=False)`:
  - D's phase: batch 64 ([fake; real]), D trainable, forward + backward into D's weights;
  - G's phase: batch 32, D frozen, forward + backward into the input image only.
A third variant compiles D with a LeakyReLU whose backward reads the saved output's sign (same gradient:
y > 0 exactly where x > 0 for a positive slope), so the compiled graph saves a float tensor instead of a bool
mask. Part one times inductor's bool and uint8 stores on their own, which the plain compiled D needs for its
LeakyReLU masks. The DRAGAN/R1 penalty (double backward) is not part of this: it would stay eager.

Usage: taskset -c 1 env OMP_NUM_THREADS=1 PYTHONPATH=. python bench/compile_d_probe.py [--reps 10]
Results: bench/results/train.md, session 14.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from charforge.core.device import cpu_flags, cpu_name
from charforge.models.blocks import to_memory_format
from charforge.train.presets import build_discriminator, resolve_preset

N_TAGS = 34


class _LeakyReLUSavingOutput(torch.autograd.Function):
    """leaky_relu whose backward uses sign(y) (saved as float) instead of a bool mask of x > 0."""

    @staticmethod
    def forward(ctx, x, slope):
        y = F.leaky_relu(x, slope)
        ctx.save_for_backward(y)
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return torch.where(y > 0, gy, gy * ctx.slope), None


class LeakyReLUSavingOutput(nn.LeakyReLU):
    def forward(self, x):
        return _LeakyReLUSavingOutput.apply(x, self.negative_slope)


def swap_leaky_relu(m: nn.Module) -> nn.Module:
    for name, child in m.named_children():
        if type(child) is nn.LeakyReLU:
            setattr(m, name, LeakyReLUSavingOutput(child.negative_slope))
        else:
            swap_leaky_relu(child)
    return m


def median_ms(reps: int, fn, *args) -> float:
    for _ in range(3):
        fn(*args)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)


def mask_stores(reps: int) -> list[str]:
    x = torch.randn(64, 16, 32, 32).contiguous(memory_format=torch.channels_last)  # D's first map at batch 64
    rows = []
    for name, f in {
        "x > 0 (bool out)": lambda x: x > 0,
        "(x > 0).to(uint8)": lambda x: (x > 0).to(torch.uint8),
        "(x > 0).float()": lambda x: (x > 0).float(),
        "leaky_relu (float out)": lambda x: F.leaky_relu(x, 0.2),
    }.items():
        cf = torch.compile(f, dynamic=False)
        e, c = median_ms(reps, f, x), median_ms(reps, cf, x)
        rows.append(f"| {name} | {e:.2f} | {c:.2f} |")
    return rows


def d_passes(reps: int) -> list[str]:
    p = resolve_preset("acgan-64-cpu")
    nets = {}
    for name in ("eager", "compiled", "compiled, LeakyReLU saving its output"):
        torch.manual_seed(0)
        d = to_memory_format(build_discriminator(p, N_TAGS), torch.channels_last)
        if name.startswith("compiled, "):
            swap_leaky_relu(d)
        nets[name] = (d, d if name == "eager" else torch.compile(d, dynamic=False))
    g = torch.Generator().manual_seed(1)
    x64 = torch.randn(64, 3, 64, 64, generator=g).contiguous(memory_format=torch.channels_last)
    x32 = torch.randn(32, 3, 64, 64, generator=g).contiguous(memory_format=torch.channels_last)

    def d_phase(module, call):
        module.requires_grad_(True)
        module.zero_grad(set_to_none=True)
        adv, cls = call(x64)
        (F.softplus(-adv).mean() + cls.square().mean()).backward()

    def g_phase(module, call):
        module.requires_grad_(False)
        x = x32.detach().requires_grad_(True)
        adv, cls = call(x)
        (F.softplus(-adv).mean() + cls.square().mean()).backward()
        return x.grad

    # same numbers up to rounding: D's weight gradients (D's phase) and the image gradient (G's phase)
    d_phase(*nets["eager"])
    ref = [q.grad.clone() for q in nets["eager"][0].parameters()]
    ref_x = g_phase(*nets["eager"])
    worst = 0.0
    for module, call in nets.values():
        d_phase(module, call)
        for a, q in zip(ref, module.parameters()):
            worst = max(worst, ((q.grad - a).abs().max() / a.abs().max().clamp_min(1e-12)).item())
        gx = g_phase(module, call)
        worst = max(worst, ((gx - ref_x).abs().max() / ref_x.abs().max()).item())
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(2):  # alternate, so a slow patch of the machine hits every variant
        for name, (module, call) in nets.items():
            for phase, fn in (("D", d_phase), ("G", g_phase)):
                times.setdefault((name, phase), []).append(median_ms(reps, fn, module, call))
    rows = [f"| {name} | {min(times[(name, 'D')]):.1f} | {min(times[(name, 'G')]):.1f} |" for name in nets]
    return rows + [f"\nlargest relative gradient difference against eager: {worst:.1e}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from charforge.train.compiled import isa_cache_dir

    print(
        f"inductor cache: {isa_cache_dir()}"
    )  # one per vector ISA: a shared one served AVX-512 code to AVX2
    simd = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in cpu_flags())
    print(
        f"{cpu_name()}, SIMD {simd}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| 1M floats, channels_last (64, 16, 32, 32) | eager ms | compiled ms |\n|---|---:|---:|")
    print("\n".join(mask_stores(args.reps)))
    print("\n| acgan-64-cpu D, median ms | D's phase (b64, weights) | G's phase (b32, frozen, input) |")
    print("|---|---:|---:|")
    print("\n".join(d_passes(args.reps)))


if __name__ == "__main__":
    main()
