"""A tiny creator for tests of the creator-independent machinery: one coloured disc on a background."""

from __future__ import annotations

import numpy as np

from charforge.core.space import Categorical, Continuous, ParamBatch, ParamSpace
from charforge.core.tags import TagGroup, TagSchema
from charforge.creators.base import Creator

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


class ToyCreator(Creator):
    name = "toy"

    def __init__(self):
        self.space = ParamSpace(
            [Categorical("color", tuple(COLOURS), "red"), Categorical("ring", ("no", "yes"), "no")],
            [Continuous("radius", 0.1, 0.45, 0.3), Continuous("x", 0.3, 0.7, 0.5)],
            name="toy",
        )
        self.schema = TagSchema([TagGroup("color", tuple(f"{c} disc" for c in COLOURS))], ["ring"])

    def render(self, batch: ParamBatch, size: int) -> np.ndarray:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        out = np.full((len(batch), size, size, 3), 240, np.uint8)
        for i in range(len(batch)):
            r, x = batch.cont[i]
            d = np.sqrt((xx - x) ** 2 + (yy - 0.5) ** 2)
            out[i][d < r] = COLOURS[self.space.categorical[0].options[batch.cat[i, 0]]]
            if batch.cat[i, 1]:
                out[i][(d > r) & (d < r + 0.05)] = 0
        return out

    def derive_tags(self, batch: ParamBatch) -> np.ndarray:
        tags = np.zeros((len(batch), 4), np.float32)
        tags[np.arange(len(batch)), batch.cat[:, 0]] = 1
        tags[:, 3] = batch.cat[:, 1]
        return tags


def make() -> ToyCreator:
    return ToyCreator()
