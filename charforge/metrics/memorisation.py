"""Memorisation: does the model copy its training images?

For each generated image, its nearest training image in feature space and in pixels (32 px RGB, RMS
difference in 0-255 units). The reference distribution is the same for real images (half B of the
data) against the other real images (half A), so "closer than real images are to each other" is visible.
Outputs a histogram PNG and a PNG of the 16 closest generated/training pairs for a person to look at.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from charforge.metrics.registry import EvalContext
from charforge.utils.io import save_figure

PIXEL_SIZE = 32  # px: images are compared at this size
PAIRS_SHOWN = 16  # closest pairs drawn in the PNG
COPY_FRACTION = (
    0.1  # a generated image closer than this share of the real median NN distance counts as a near copy
)


def small_pixels(images: np.ndarray, size: int = PIXEL_SIZE) -> np.ndarray:
    """uint8 (N, S, S, 3) -> float32 (N, size*size*3) in 0-255 units."""
    x = (
        torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).float()
    )  # (N, 3, S, S)
    if x.shape[-1] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size
        )
    return x.reshape(len(x), -1).numpy()  # (N, 3*size*size)


def nearest(query: np.ndarray, ref: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For each query row: (Euclidean distance to, index of) its nearest `ref` row. Chunked, float64."""
    q, r = np.asarray(query, np.float64), np.asarray(ref, np.float64)
    r_sq = (r * r).sum(axis=1)
    dist, idx = np.empty(len(q)), np.empty(len(q), np.int64)
    for s in range(0, len(q), chunk):
        qc = q[s : s + chunk]
        d2 = (qc * qc).sum(axis=1)[:, None] + r_sq[None, :] - 2.0 * qc @ r.T
        j = d2.argmin(axis=1)
        idx[s : s + chunk] = j
        dist[s : s + chunk] = np.sqrt(np.clip(d2[np.arange(len(qc)), j], 0.0, None))
    return dist, idx


def _pixel_nn(ctx: EvalContext, gen: np.ndarray, ref_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.concatenate(
        [
            small_pixels(np.asarray(ctx.data.images[ref_idx[s : s + 1024]]))
            for s in range(0, len(ref_idx), 1024)
        ]
    )
    d, j = nearest(small_pixels(gen), ref)
    return d / np.sqrt(ref.shape[1]), j  # RMS per channel value


def memorisation(ctx: EvalContext) -> dict:
    space = ctx.auto_space
    a, b = ctx.split(0)
    k = min(ctx.sample_n, len(a))
    rng = np.random.default_rng([ctx.seed, 41])
    tags = np.asarray(ctx.data.tags[a[:k]], np.float32)
    gen = ctx.generate_images(tags, rng.integers(0, 2**31 - 1, size=k), desc="generate (memorisation)")
    train = np.arange(len(ctx.data))  # every dataset image is a training image
    f_dist, f_idx = nearest(ctx.embed(space, gen), ctx.real_features(space, train))
    p_dist, p_idx = _pixel_nn(ctx, gen, train)
    # reference: real half B against real half A (never itself)
    rb = b[:k]
    r_dist, _ = nearest(ctx.real_features(space, rb), ctx.real_features(space, a))
    rp_dist, _ = _pixel_nn(ctx, np.asarray(ctx.data.images[rb]), a)
    order = np.argsort(f_dist)[:PAIRS_SHOWN]
    pairs = [(gen[i], np.asarray(ctx.data.images[train[f_idx[i]]]), float(f_dist[i])) for i in order]
    ctx.out.mkdir(parents=True, exist_ok=True)
    plot_pairs(pairs, ctx.out / "memorisation_pairs.png")
    plot_histograms(f_dist, r_dist, p_dist, rp_dist, space, ctx.out / "memorisation_hist.png")
    copy_cut = COPY_FRACTION * float(np.median(r_dist))
    capped = (
        f"{k} generated images, not the {ctx.sample_n} asked for: the check is capped at the real pool's half "
        f"({len(a)} images of {len(ctx.data)}) so generated and real reference counts match"
        if k < ctx.sample_n
        else ""
    )
    return {
        "space": space,
        "generated": k,
        "requested": ctx.sample_n,
        "note": capped,
        "training_images": len(train),
        "feature": _stats(f_dist) | {"real_reference": _stats(r_dist)},
        "pixel_rms": _stats(p_dist) | {"real_reference": _stats(rp_dist)},
        "near_copies": int((f_dist <= copy_cut).sum()),
        "near_copy_cutoff": copy_cut,
        "closest_pairs": [
            {
                "generated": int(i),
                "training_index": int(train[f_idx[i]]),
                "feature_distance": float(f_dist[i]),
                "pixel_rms": float(p_dist[i]),
            }
            for i in order
        ],
        "plots": {"pairs": "memorisation_pairs.png", "histogram": "memorisation_hist.png"},
    }


def _stats(d: np.ndarray) -> dict:
    return {
        "min": float(d.min()),
        "p5": float(np.percentile(d, 5)),
        "median": float(np.median(d)),
        "mean": float(d.mean()),
    }


def plot_pairs(pairs: list[tuple[np.ndarray, np.ndarray, float]], path) -> None:
    """A grid of (generated | nearest training image) pairs, closest first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = max(1, (len(pairs) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.4, rows * 1.4), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (g, t, d) in zip(axes.flat, pairs):
        size = max(g.shape[0], t.shape[0])
        g2 = g if g.shape[0] == size else _resize(g, size)
        t2 = t if t.shape[0] == size else _resize(t, size)
        ax.imshow(np.concatenate([g2, np.full((size, 2, 3), 255, np.uint8), t2], axis=1))
        ax.set_title(f"d={d:.3g}", fontsize=7)
    fig.suptitle("closest pairs: generated (left) | nearest training image (right)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def plot_histograms(f_gen, f_real, p_gen, p_real, space: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    for ax, gen, real, label in (
        (axes[0], f_gen, f_real, f"{space} feature distance"),
        (axes[1], p_gen, p_real, "pixel RMS distance (32 px, 0-255)"),
    ):
        bins = np.linspace(0, max(gen.max(), real.max()) * 1.05 + 1e-9, 40)
        ax.hist(real, bins=bins, alpha=0.55, label="real vs other real", color="tab:gray")
        ax.hist(gen, bins=bins, alpha=0.65, label="generated vs training", color="tab:orange")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("images", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("nearest-training-neighbour distances (lower = closer to a copy)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
