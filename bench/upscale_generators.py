"""Issue 17's sharpness goal on several generators side by side: Laplacian energy of each generator's 64 px outputs
and of the shipped upscaler's x4 of them, against creator renders at 64 and 256 px (the protocol of
`bench_upscale.py tags`: 200 images, one request per tag, seeds 10,000 x (tag index + 1); renders seed 4242).

    python bench/upscale_generators.py --models default,sharp
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default,sharp", help="comma list of shipped names or files")
    ap.add_argument("--upscaler", default=None, help="default: the shipped upscaler")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import bench_upscale as bu
    import torch

    from charforge import sampling
    from charforge.metrics.sharpness import laplacian_variance
    from charforge.sr import load_upscaler

    torch.set_num_threads(args.threads)
    up = load_upscaler(args.upscaler)
    ref = {s: bu.renders(200, s, 4242) for s in (64, 256)}
    lap = lambda a: float(laplacian_variance(a).mean())  # noqa: E731
    print(f"upscaler {up.model_id}; machine: {bu.machine()}")
    print("| generator | 64 px output / 64 px renders | upscaler x4 / 256 px renders (goal >= 0.8) |")
    print("|---|---|---|")
    for name in args.models.split(","):
        b = sampling.load_generator(name, device="cpu")
        tags = list(b.schema.tags)
        per = 200 // len(tags) + 1
        gen = np.concatenate(
            [
                sampling.characters_for_request(b, t, per, 10_000 * (i + 1), source="bench")[0]
                for i, t in enumerate(tags)
            ]
        )[:200]
        print(
            f"| {b.model_id} | {lap(gen) / lap(ref[64]):.3f} | {lap(up.upscale(gen, 4)) / lap(ref[256]):.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
