"""A tiny creator for f2p tests: coloured ellipses on a plain background, rendered with numpy.

Importable as `tests.f2p.f2p_toy:make` (pytest rootdir is the repo root).
"""

from __future__ import annotations

import numpy as np

from charforge.core.space import Categorical, Continuous, ParamBatch, ParamSpace
from charforge.creators.base import Creator

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230), "yellow": (240, 220, 40)}
BACKGROUNDS = {"white": (250, 250, 250), "black": (15, 15, 15)}


def toy_space() -> ParamSpace:
    return ParamSpace(
        categorical=[
            Categorical("face_color", tuple(COLOURS), "red"),
            Categorical("background", tuple(BACKGROUNDS), "white"),
            Categorical("eyes", ("none", "dots"), "dots"),
        ],
        continuous=[
            Continuous("width", 0.3, 0.9, 0.6),
            Continuous("height", 0.3, 0.9, 0.6),
            Continuous("x", -0.2, 0.2, 0.0),
        ],
        name="toy",
    )


class ToyCreator(Creator):
    name = "toy"

    def __init__(self):
        self.space = toy_space()

    def render(self, batch: ParamBatch, size: int) -> np.ndarray:
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) * 2 - 1  # (S, S) in [-1, 1]
        out = np.empty((len(batch), size, size, 3), np.uint8)
        face_names, bg_names = list(COLOURS), list(BACKGROUNDS)
        for i in range(len(batch)):
            c, b, e = (int(v) for v in batch.cat[i])
            w, h, x0 = (float(v) for v in batch.cont[i])
            img = np.empty((size, size, 3), np.uint8)
            img[:] = BACKGROUNDS[bg_names[b]]
            inside = ((xs - x0) / w) ** 2 + (ys / h) ** 2 <= 1.0
            img[inside] = COLOURS[face_names[c]]
            if e == 1:
                for ex in (-0.35, 0.35):
                    eye = ((xs - x0 - ex * w) ** 2 + (ys + 0.2 * h) ** 2) <= (0.12 * min(w, h)) ** 2
                    img[eye] = (20, 20, 20) if b == 0 else (240, 240, 240)
            out[i] = img
        return out


def make() -> ToyCreator:
    return ToyCreator()
