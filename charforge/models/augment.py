"""Differentiable augmentation for small datasets (after Zhao et al., DiffAugment), applied in D to real
and fake images alike so G is never taught to produce augmented images. Randomness comes only from the
torch.Generator passed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charforge.errors import UserError

KINDS = ("translation", "cutout", "color", "degrade", "noise")
TRANSLATE_FRAC = 0.125  # max shift, fraction of the image side
CUTOUT_FRAC = 0.5  # cutout square side, fraction of the image side
NOISE_STD = 0.1  # Gaussian pixel noise, in [-1, 1] units (about 13/255)
DEGRADE_SHARE = 0.5  # share of images the "degrade" kind softens (the tagger trains with the same share)


def parse_augment(spec: str) -> tuple[str, ...]:
    kinds = tuple(s.strip() for s in spec.split(",") if s.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise UserError(
            f"augment {spec!r}: unknown kind {bad[0]!r}. Valid kinds: {', '.join(KINDS)}", field="augment"
        )
    return kinds


def _rand(g: torch.Generator, *shape: int, device) -> torch.Tensor:
    return torch.rand(*shape, generator=g).to(device)


def color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random brightness, saturation and contrast per image. x: (B, 3, H, W) in [-1, 1]."""
    b = x.shape[0]
    x = x + (_rand(g, b, 1, 1, 1, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(g, b, 1, 1, 1, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(g, b, 1, 1, 1, device=x.device) + 0.5) + mean


def translation(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shift each image by up to 1/8 of its side with zero padding (via grid_sample, so it is differentiable)."""
    b, _, h, w = x.shape
    shift = (_rand(g, b, 2, device=x.device) * 2 - 1) * TRANSLATE_FRAC * 2  # in normalised [-1,1] units
    shift = (
        (shift * torch.tensor([w, h], device=x.device) / 2).round()
        * 2
        / torch.tensor([w, h], device=x.device)
    )
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Zero a random square of half the image side per image."""
    b, _, h, w = x.shape
    ch, cw = max(1, int(h * CUTOUT_FRAC)), max(1, int(w * CUTOUT_FRAC))
    cy = (_rand(g, b, device=x.device) * (h - ch + 1)).long()  # (B,)
    cx = (_rand(g, b, device=x.device) * (w - cw + 1)).long()
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (
        (ys >= cy.view(b, 1, 1))
        & (ys < (cy + ch).view(b, 1, 1))
        & (xs >= cx.view(b, 1, 1))
        & (xs < (cx + cw).view(b, 1, 1))
    )
    return x * (~inside).unsqueeze(1).to(x.dtype)  # (B, 3, H, W)


def noise(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Add Gaussian pixel noise (instance noise). Unlike colour jitter it keeps every colour tag readable, and it
    hides the faint high-frequency patterns a generator can use to satisfy D's tag head without drawing the tag."""
    return x + NOISE_STD * torch.randn(x.shape, generator=g).to(device=x.device, dtype=x.dtype)


def degrade(x: torch.Tensor, g: torch.Generator, p: float = DEGRADE_SHARE) -> torch.Tensor:
    """For a share p of the images: a blur of random strength, resampling through a random lower resolution
    (x0.5-1) and Gaussian noise (sigma up to 0.08 of the [-1, 1] range). Hues stay, so tags stay true.

    The tagger trains with it so that it reads a tag drawn a little softer or noisier than the creator draws it
    (imported art, generated images) instead of keying on exact pixels. As a D augmentation it does the same
    for D's tag head, and since G's tag loss then goes through a degraded copy of the fake, G cannot satisfy
    the head with faint pixel patterns a blur removes. Differentiable in x. x: (B, 3, S, S) in [-1, 1]."""
    b, _, s, _ = x.shape
    if p <= 0:
        return x
    dtype, x = x.dtype, x.float()  # the resampling has no bf16 kernel on every backend
    on = (_rand(g, b, device=x.device) < p).view(b, 1, 1, 1)
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device)
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    a = _rand(g, b, 1, 1, 1, device=x.device)
    y = x + a * (blurred - x)
    small = max(2, int(round(s * (0.5 + 0.5 * float(torch.rand(1, generator=g))))))
    y = F.interpolate(
        F.interpolate(y, size=(small, small), mode="bilinear", antialias=True, align_corners=False),
        size=(s, s),
        mode="bilinear",
        align_corners=False,
    )
    y = y + _rand(g, b, 1, 1, 1, device=x.device) * 0.08 * torch.randn(x.shape, generator=g).to(x.device)
    return torch.where(on, y.clamp(-1, 1), x).to(dtype)


_FNS = {"color": color, "translation": translation, "cutout": cutout, "degrade": degrade, "noise": noise}


def augment(
    x: torch.Tensor, kinds: tuple[str, ...], g: torch.Generator, p: float | None = None
) -> torch.Tensor:
    """Apply `kinds` in a fixed order. p=None: every kind to every image (DiffAugment). p in [0, 1]: each kind
    to each image with probability p (adaptive augmentation, train.ada); the kind is computed and its
    per-image coin drawn from `g` whatever p is, so the generator's stream does not depend on p."""
    for k in KINDS:  # fixed order regardless of how the user listed them
        if k in kinds:
            y = _FNS[k](x, g)
            if p is None:
                x = y
            else:
                on = (_rand(g, x.shape[0], device=x.device) < p).view(-1, 1, 1, 1)
                x = torch.where(on, y, x)
    return x
