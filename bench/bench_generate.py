"""Generation speed of a generator: images/s at batch 64 and p50 latency of one image, per inference variant.

Variants: fp32 under no_grad (baseline); fp32 under inference_mode; + channels_last; + bf16 autocast.
Medians of repeated runs after warm-up, all in one process. sampling.generate uses the fp32 inference_mode
path (bit-reproducible per seed); the others show what a faster path would buy.
Usage: python bench/bench_generate.py [--model SPEC] [--reps 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import time

import torch

from charforge import sampling


def variants(net: torch.nn.Module):
    cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    bf = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    return {
        "fp32 no_grad": (net, torch.no_grad, contextlib.nullcontext),
        "fp32 inference_mode": (net, torch.inference_mode, contextlib.nullcontext),
        "fp32 inference_mode channels_last": (cl, torch.inference_mode, contextlib.nullcontext),
        "bf16 inference_mode channels_last": (cl, torch.inference_mode, bf),
    }


def timed(fn, reps: int) -> float:
    fn()
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    b = sampling.load_generator(args.model)
    z64, c64 = torch.randn(64, b.z_dim), torch.zeros(64, len(b.schema))
    rows = []
    for name, (net, grad_ctx, amp) in variants(b.net).items():

        def run(n, net=net, grad_ctx=grad_ctx, amp=amp):
            with grad_ctx(), amp():
                net(z64[:n], c64[:n])

        rows.append(
            {
                "variant": name,
                "batch64_img_s": 64 / timed(lambda run=run: run(64), args.reps),
                "single_p50_ms": 1000 * timed(lambda run=run: run(1), args.reps * 3),
            }
        )
    tags = sampling.sample_tags(b, None, 64, __import__("numpy").random.default_rng(0))
    api = timed(lambda: sampling.generate(b, tags, seeds=range(64)), args.reps)
    one = timed(lambda: sampling.generate(b, tags[:1], seeds=[0]), args.reps * 3)
    rows.append(
        {
            "variant": "sampling.generate (uint8 out, per-seed noise)",
            "batch64_img_s": 64 / api,
            "single_p50_ms": 1000 * one,
        }
    )
    print(json.dumps({"model": str(b.path), "model_id": b.model_id, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
