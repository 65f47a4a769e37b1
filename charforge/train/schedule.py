"""The learning-rate schedule the tagger, part-reader and upscaler trainers share: a linear warm-up, then a cosine
down to a floor. A function of the step alone, so a resumed run gets exactly the rate an unbroken one had."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, lr: float, *, max_warmup: int, floor: float) -> float:
    """The rate at optimiser step `step` (0-based) of `total`: warm-up over min(max_warmup, total // 20) steps
    (at least 1), then lr * (floor + (1 - floor) * (1 + cos(pi t)) / 2) with t going 0 -> 1, held at the floor
    past `total`."""
    warm = max(1, min(max_warmup, total // 20))
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
