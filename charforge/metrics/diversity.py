"""Diversity: are generated images as different from each other as real ones?

Mean pairwise Euclidean feature distance among generated images, divided by the same among the real images
whose tag vectors they were drawn with (run 1 of the FID runs). Conditioning is shared, so the ratio
isolates what the noise adds. A collapsed generator (one picture for many codes) scores near 0; the
default flag threshold of 0.5 means "generated images are on average less than half as far apart as real
images with the same tags", which real GAN collapse falls well below and healthy models stay above.
"""

from __future__ import annotations

import numpy as np

from charforge.metrics.registry import EvalContext

MAX_PAIRS_ROWS = 1000  # rows used for the pairwise mean (1000 -> about 500k pairs)


def mean_pairwise_distance(feats: np.ndarray, *, max_rows: int = MAX_PAIRS_ROWS, seed: int = 0) -> float:
    """Mean Euclidean distance over all distinct pairs of rows (a random subset when there are many)."""
    f = np.asarray(feats, np.float64)
    if len(f) > max_rows:
        f = f[np.sort(np.random.default_rng(seed).choice(len(f), max_rows, replace=False))]
    if len(f) < 2:
        return 0.0
    sq = (f * f).sum(axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * f @ f.T, 0.0, None)
    iu = np.triu_indices(len(f), k=1)
    return float(np.sqrt(d2[iu]).mean())


def diversity(ctx: EvalContext) -> dict:
    space = ctx.auto_space
    a, _ = ctx.split(0)
    gen = ctx.run_features(space, 0)
    real = ctx.real_features(space, a)
    d_gen, d_real = mean_pairwise_distance(gen, seed=ctx.seed), mean_pairwise_distance(real, seed=ctx.seed)
    ratio = d_gen / d_real if d_real > 0 else float("nan")
    return {
        "space": space,
        "samples": len(gen),
        "generated_mean_distance": d_gen,
        "real_mean_distance": d_real,
        "ratio": ratio,
        "threshold": ctx.collapse_threshold,
        "mode_collapse": bool(not np.isfinite(ratio) or ratio < ctx.collapse_threshold),
    }
