"""What the part reader and the probe cost the tag estimator: predict_proba with and without each, side by side in
one process, on the same images (the creator's own renders at 64 px, the size `data import` stores).

    python bench/bench_parts.py [--n 400] [--repeats 5] [--threads 1] [--out bench/results/parts.md] \
        [--also NAME=TAGGER.safetensors ...]

`--also` times other estimator files (e.g. a candidate) in the same process, interleaved with the rest.

Reports the median images/s of each over the repeats, their ratio, the machine and its SIMD flags.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        help="NAME=PATH[@READER]: another estimator file to time (with that part reader file)",
    )
    args = ap.parse_args(argv)

    import torch
    from bench_train import cpu_simd_flags

    from charforge.creators.builtin import BuiltinCreator
    from charforge.tagger.net import estimate_tagger_path, load_tagger

    torch.set_num_threads(args.threads)
    creator = BuiltinCreator()
    images = creator.render(creator.sample(args.n, np.random.default_rng(0)), 64)
    net_only, reader, full = (
        load_tagger(estimate_tagger_path(), parts=False),
        load_tagger(estimate_tagger_path()),
        load_tagger(estimate_tagger_path()),
    )
    # since session 11 the file also holds a probe (hat, glasses), since session 12 a familiarity model that reads
    # the probe's features
    net_only.probe = reader.probe = None
    net_only.familiarity = reader.familiarity = None
    taggers = {"network only": net_only, "with the part reader": reader}
    if full.probe is not None:
        taggers["the shipped file: reader + probe + familiarity (3 EfficientNet-Lite0 passes)"] = full
    for spec in args.also:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise SystemExit(f"--also {spec!r}: give NAME=PATH or NAME=PATH@READER")
        path, _, reader = path.partition("@")  # a part reader file other than the shipped one
        taggers[name] = load_tagger(path, parts=reader or None)
    rates: dict[str, list[float]] = {k: [] for k in taggers}
    for t in taggers.values():  # warm-up
        t.predict_proba(images[:32])
    for _ in range(args.repeats):  # interleaved, so drift in load hits both alike
        for k, t in taggers.items():
            t0 = time.perf_counter()
            t.predict_proba(images)
            rates[k].append(args.n / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = med["network only"]
    lines = [
        "## Tag estimator with the part reader and the probe: speed (bench/bench_parts.py)",
        "",
        f"- {time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, {args.threads} thread(s); "
        f"SIMD flags: {cpu_simd_flags()}; torch {torch.__version__}",
        f"- {args.n} creator renders at 64 px, `predict_proba`, median of {args.repeats} interleaved repeats",
        "",
        "| estimator | images/s (median) | ratio to network only | repeats |",
        "|---|---:|---:|---|",
    ]
    for k, v in med.items():
        lines.append(f"| {k} | {v:.0f} | {v / base:.2f} | {', '.join(f'{x:.0f}' for x in rates[k])} |")
    md = "\n".join(lines) + "\n"
    print(md)
    if args.out:
        args.out.write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
