"""Synthetic test portraits for watermark tests: smooth colour fields, a flat white margin, hard edges, noise."""

from __future__ import annotations

import numpy as np
from PIL import Image


def synthetic_images(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(base).resize((size, size), Image.BICUBIC), dtype=np.float64).copy()
        img[:, : size // 4] = 255.0  # flat white background, where clipping fights the embedder
        yy, xx = np.mgrid[:size, :size]
        disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
        img[disc] = rng.uniform(0, 255, 3)  # a flat disc with hard edges
        img += rng.normal(0, 2.0, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out
