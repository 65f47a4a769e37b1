"""What does the generic (ImageNet) feature space see that the domain space does not? Issue 14's generic FID gap
(x7.2 of the real-vs-real floor for the sharp model, domain x1.2) tested against cheap explanations: fill texture
(edge-preserving filters on the generated images) and the background (the part reader's background pixels
flattened to a per-row median colour, which keeps vertical gradients). The same filters on held-out real renders
show what each does to real art.

    python bench/generic_fid_filters.py --data DIR [--n 1000] [--models sharp,default]

DIR: a packed dataset of the built-in creator (e.g. `charforge data build --creator builtin --n 20000 --size 64
--seed 0`). Two disjoint halves A and B of n rows; each model draws one image per row of A with A's tags (seeds
0..n-1); FID against A in both spaces, as multiples of B's (the real-vs-real floor). Diagnostic, single run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--models", default="sharp,default")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import cv2
    import torch

    from charforge.data.packed import load_packed
    from charforge.metrics.fid import fid
    from charforge.models.features import domain_features, generic_features
    from charforge.sampling import generate, load_generator
    from charforge.tagger.net import default_tagger_path, load_tagger
    from charforge.tagger.parts import shipped_reader

    torch.set_num_threads(args.threads)
    d = load_packed(args.data)
    idx = np.random.default_rng(0).permutation(len(d.images))
    a, b = np.sort(idx[: args.n]), np.sort(idx[args.n : 2 * args.n])
    real_a, real_b = np.asarray(d.images[a]), np.asarray(d.images[b])
    judge = load_tagger(default_tagger_path())
    reader = shipped_reader()
    ga, da = generic_features(real_a), domain_features(judge, real_a)

    def each(fn):
        return lambda x: np.stack([fn(i) for i in x])

    def flat_background(x: np.ndarray) -> np.ndarray:
        bg = reader.masks(x).argmax(1) == reader.part_index("bg")
        out = x.copy()
        for i in range(len(x)):
            if bg[i].sum() < 10:
                continue
            whole = np.median(x[i][bg[i]], 0)
            for y in range(x.shape[1]):
                row = bg[i, y]
                out[i, y][row] = np.median(x[i, y][row], 0) if row.sum() >= 4 else whole
        return out

    filters = {
        "as drawn": lambda x: x,
        "median 3x3": each(lambda i: cv2.medianBlur(i, 3)),
        "bilateral (5, 30, 3)": each(lambda i: cv2.bilateralFilter(i, 5, 30, 3)),
        "mean shift (3, 20)": each(lambda i: cv2.pyrMeanShiftFiltering(i, 3, 20)),
        "background flattened": flat_background,
    }
    floor_g, floor_d = fid(generic_features(real_b), ga), fid(domain_features(judge, real_b), da)
    print(f"n {args.n}; real-vs-real floor: generic {floor_g:.1f}, domain {floor_d:.1f}")
    print("| images | filter | generic FID (x floor) | domain FID (x floor) |")
    print("|---|---|---:|---:|")
    sets = {"real B (held out)": real_b}
    tags = np.asarray(d.tags[a], np.float32)
    for name in args.models.split(","):
        sets[f"generated: {name}"] = generate(load_generator(name), tags, seeds=range(args.n))
    for label, x in sets.items():
        for fname, f in filters.items():
            if label.startswith("real") and fname == "mean shift (3, 20)":
                continue
            y = f(x)
            g, dd = fid(generic_features(y), ga), fid(domain_features(judge, y), da)
            print(
                f"| {label} | {fname} | {g:.1f} (x{g / floor_g:.2f}) | {dd:.1f} (x{dd / floor_d:.2f}) |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
