"""DCGAN baseline from the character-face study (seed 001), optionally tag-conditioned.

G: [z ++ tags] -> dense -> (8W, 8, 8), ReLU -> transposed convs 4x4/2 halving width, ReLU each
   (8 -> 16 -> 32 -> 64 for 64px, widths 512/256/128/64 with W=64) -> conv 3x3 -> tanh.
D: conv 4x4/2 widths W, 2W, 2W each with BN + LeakyReLU -> flatten -> dropout -> dense logit.
Tag conditioning: G concatenates the tag vector to z; D gets an extra dense tag-classifier head
(AC-GAN style), so the same classification loss as the acgan family applies.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charforge.models.blocks import assert_shape, init_normal


class DCGANGenerator(nn.Module):
    def __init__(self, *, z_dim: int, n_tags: int, image_size: int, width: int = 64):
        super().__init__()
        n_up = int(math.log2(image_size // 8))
        if image_size < 16 or 8 * 2**n_up != image_size:
            raise ValueError(f"dcgan needs an image size of 8 * 2**k >= 16, got {image_size}")
        self.z_dim, self.n_tags, self.image_size = z_dim, n_tags, image_size
        self.c0 = width * 2**n_up  # 512 for 64px with width 64
        self.dense = nn.Linear(z_dim + n_tags, self.c0 * 8 * 8)
        ups: list[nn.Module] = []
        ch = self.c0
        for _ in range(n_up):
            ups += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
            ch //= 2
        self.up = nn.Sequential(*ups)
        self.out = nn.Conv2d(ch, 3, 3, padding=1)
        init_normal(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        assert_shape(z, (None, self.z_dim), "z")
        h = torch.cat([z, c.to(z.dtype)], dim=1) if self.n_tags else z  # (B, Z+T)
        h = torch.relu(self.dense(h)).view(-1, self.c0, 8, 8)  # (B, 8W, 8, 8)
        x = torch.tanh(self.out(self.up(h)))  # (B, 3, S, S)
        assert_shape(x, (z.shape[0], 3, self.image_size, self.image_size), "G output")
        return x


class DCGANDiscriminator(nn.Module):
    def __init__(
        self, *, n_tags: int, image_size: int, width: int = 64, dropout: float = 0.3, slope: float = 0.2
    ):
        super().__init__()
        self.n_tags, self.image_size = n_tags, image_size
        chans = [3, width, width * 2, width * 2]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.BatchNorm2d(b), nn.LeakyReLU(slope)]
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout))
        flat = chans[-1] * (image_size // 8) ** 2
        self.adv = nn.Linear(flat, 1)
        self.cls = nn.Linear(flat, n_tags) if n_tags else None
        init_normal(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert_shape(x, (None, 3, self.image_size, self.image_size), "D input")
        h = self.features(x)  # (B, 2W * (S/8)^2)
        return self.adv(h).squeeze(1), (self.cls(h) if self.cls is not None else None)  # (B,), (B, T)
