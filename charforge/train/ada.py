"""Adaptive discriminator augmentation (after Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data"): the probability p with which each augmentation kind is applied to D's inputs follows
an overfitting signal, so a small dataset gets as much augmentation as it needs and a large one none.

The signal is r_t = E[sign(D(real))] over the last `interval` steps: near 0 when D cannot tell real from
fake, near 1 when it has memorised the real set. Every `interval` steps p moves by
sign(r_t - target) * (images in those steps) / (kimg * 1000), so p can go from 0 to 1 in `kimg` thousand
images (the paper: target 0.6, 500 kimg; our runs are short, so the default is 100 kimg).

The controller is plain Python floats, updated in a fixed order from values the step computed; its state
is three numbers saved in every checkpoint, so a resumed run continues with the same p, bit for bit.
The augmentations themselves draw from the trainer's per-step torch.Generator (models.augment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

ADA_INTERVAL = 4  # steps between updates of p
ADA_DEFAULT_KINDS = "translation,cutout"  # geometric only: colour jitter would change the colour tags


@dataclass
class AdaptiveAugment:
    target: float = 0.6
    kimg: float = 100.0
    p: float = 0.0
    acc: float = 0.0  # sum of sign(D(real)) means since the last update
    count: int = 0  # steps in acc

    def observe(self, d_sign: float, batch: int) -> None:
        """After a step: add its E[sign(D(real))]; every ADA_INTERVAL steps, move p."""
        if not math.isfinite(d_sign):
            return
        self.acc += float(d_sign)
        self.count += 1
        if self.count >= ADA_INTERVAL:
            r_t = self.acc / self.count
            adjust = (1.0 if r_t > self.target else -1.0 if r_t < self.target else 0.0) * (
                batch * self.count / (self.kimg * 1000.0)
            )
            self.p = min(1.0, max(0.0, self.p + adjust))
            self.acc, self.count = 0.0, 0

    def state(self) -> dict[str, Any]:
        return {"p": self.p, "acc": self.acc, "count": self.count}

    def load(self, state: dict[str, Any] | None) -> None:
        if state:
            self.p, self.acc, self.count = float(state["p"]), float(state["acc"]), int(state["count"])
