"""Built-in creator render speed: batched renders/s at 64 and 128 px against a one-image-at-a-time baseline.

    python bench/bench_creator.py [--threads 2 1] [--repeats 5] [--batch 256] [-o bench/results/creator.md]

Both variants run side by side in this process on the same parameters; each figure is the median of
`--repeats` timed runs after one warm-up. Writes a markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from charforge.core.device import cpu_name as cpu_model  # noqa: E402
from charforge.creators.builtin import BuiltinCreator


def rate(fn, n_images: int, repeats: int) -> float:
    """Median images/s over `repeats` timed calls of fn (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def bench_size(
    creator: BuiltinCreator, size: int, batch_n: int, single_n: int, repeats: int
) -> dict[str, float]:
    batch = creator.sample(batch_n, np.random.default_rng(0))
    singles = [batch[i] for i in range(single_n)]
    batched = rate(lambda: creator.render(batch, size), batch_n, repeats)
    one_by_one = rate(lambda: [creator.render(b, size) for b in singles], single_n, repeats)
    return {"size": size, "batched": batched, "single": one_by_one, "ratio": batched / one_by_one}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="torch intra-op thread counts to measure"
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median reported)")
    ap.add_argument("--batch", type=int, default=256, help="images per batched render call")
    ap.add_argument("--single", type=int, default=32, help="images rendered one at a time for the baseline")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("-o", "--output", type=Path, default=Path("bench/results/creator.md"))
    ap.add_argument("--append", action="store_true", help="add the table to --output instead of replacing it")
    args = ap.parse_args()
    creator = BuiltinCreator()
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size in args.sizes:
            r = bench_size(creator, size, args.batch, args.single, args.repeats) | {"threads": threads}
            rows.append(r)
            print(
                f"{threads} thr {size:4d} px: batched {r['batched']:8.1f} img/s | one at a time {r['single']:7.1f} img/s | ratio {r['ratio']:.1f}x"
            )
    lines = [
        "## Built-in creator render speed",
        "",
        f"- machine: {cpu_model()} ({os.cpu_count()} cores, shared with other jobs while measured; load average "
        f"{os.getloadavg()[0]:.1f} at the end), torch {torch.__version__}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}",
        f"- date: {datetime.date.today().isoformat()}; command: `python bench/bench_creator.py --threads {' '.join(map(str, args.threads))}`",
        f"- median of {args.repeats} runs; batched = {args.batch} images per `render` call, baseline = the same renderer "
        f"called on one image at a time ({args.single} images), both in the same process",
        "",
        "| torch threads | size | batched img/s | one-at-a-time img/s | speed-up |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {r['threads']} | {r['size']} px | {r['batched']:.0f} | {r['single']:.0f} | {r['ratio']:.1f}x |"
            for r in rows
        ],
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    old = args.output.read_text() + "\n" if args.append and args.output.exists() else ""
    args.output.write_text(old + "\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
