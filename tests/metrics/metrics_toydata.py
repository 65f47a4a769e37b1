"""Synthetic tagged images for the metrics tests: colours and marks that encode the tags.

Background colour = "hair color" group, centre square colour = "eye color" group, a white bar on top = "hat",
a dark bar at the bottom = "smile". A tiny tagger learns these in seconds.
"""

from __future__ import annotations

import numpy as np

from charforge.core.tags import TagGroup, TagSchema
from charforge.data.packed import write_packed

HAIR = {"red hair": (220, 40, 40), "green hair": (40, 200, 60), "blue hair": (40, 70, 220)}
EYES = {"yellow eyes": (240, 220, 30), "purple eyes": (150, 40, 180)}


def toy_schema() -> TagSchema:
    return TagSchema(
        groups=[TagGroup("hair color", tuple(HAIR)), TagGroup("eye color", tuple(EYES))],
        independent=["hat", "smile"],
        train_p=0.4,
    )


def render_toy(tags: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(N, T) 0/1 tags -> (N, size, size, 3) uint8 images with a little noise."""
    schema = toy_schema()
    n, s = len(tags), size
    img = np.zeros((n, s, s, 3), np.float32)
    hair, eyes = list(HAIR.values()), list(EYES.values())
    gs = schema.group_slices()
    for i in range(n):
        img[i] = hair[int(tags[i, gs[0]].argmax())]
        q = s // 4
        img[i, q : s - q, q : s - q] = eyes[int(tags[i, gs[1]].argmax())]
        if tags[i, schema.index("hat")]:
            img[i, : s // 4] = 250
        if tags[i, schema.index("smile")]:
            img[i, s - s // 4 :] = 20
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_toy_dataset(root, n: int = 120, size: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    schema = toy_schema()
    tags = schema.sample_training(n, rng).astype(np.uint8)
    return write_packed(root, render_toy(tags, size, rng), tags, schema)


class ToyGenerator:
    """A fake generator: draws the toy picture for the requested tags (a 'perfect' conditional generator)."""

    def __init__(self, size: int = 16, collapse: bool = False):
        self.size, self.collapse = size, collapse

    def __call__(self, tags: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(int(seeds[0]) if len(seeds) else 0)
        imgs = render_toy(np.asarray(tags), self.size, rng)
        return np.repeat(imgs[:1], len(imgs), axis=0) if self.collapse else imgs
