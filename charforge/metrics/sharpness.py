"""Sharpness: the variance of the Laplacian of the grey image (0-255 scale), per image.

A blur lowers it, crisp outlines raise it; the fidelity goals compare it between generated (or upscaled) images
and real renders of the same size, as a ratio (1 = as sharp as the renders)."""

from __future__ import annotations

import numpy as np


def laplacian_variance(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) or (H, W, 3) -> (N,) float64 variance of the 4-neighbour Laplacian of the luma."""
    import cv2

    a = np.asarray(images)
    a = a[None] if a.ndim == 3 else a
    out = np.empty(len(a))
    for i, im in enumerate(a):
        grey = cv2.cvtColor(np.ascontiguousarray(im[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float64)
        out[i] = cv2.Laplacian(grey, cv2.CV_64F, ksize=1).var()
    return out


def sharpness_ratio(images: np.ndarray, reference: np.ndarray) -> float:
    """Mean Laplacian variance of `images` over that of `reference` (same size, e.g. real renders)."""
    return float(laplacian_variance(images).mean() / max(1e-12, laplacian_variance(reference).mean()))


def sharpness(ctx) -> dict:
    """Eval metric: Laplacian variance of run 1's generated images (the FID runs' tags and seeds) over that of
    the real images whose tags they were drawn with; the other real half gives the real-vs-real ratio."""
    a, b = ctx.split(0)
    seeds = np.random.default_rng([ctx.seed, 0, 29]).integers(0, 2**31 - 1, size=len(a))  # run 0's seeds
    gen = ctx.generate_images(np.asarray(ctx.data.tags[a], np.float32), seeds, desc="generate (sharpness)")
    real_a, real_b = np.asarray(ctx.data.images[a]), np.asarray(ctx.data.images[b])
    if gen.shape[1:] != real_a.shape[1:]:
        return {"note": f"generated {gen.shape[1]} px vs data {real_a.shape[1]} px: not comparable"}
    g, ra, rb = (
        laplacian_variance(gen).mean(),
        laplacian_variance(real_a).mean(),
        laplacian_variance(real_b).mean(),
    )
    return {
        "samples": len(gen),
        "generated": float(g),
        "real": float(ra),
        "ratio": float(g / max(ra, 1e-12)),
        "real_vs_real": float(rb / max(ra, 1e-12)),
    }
