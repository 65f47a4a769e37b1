"""The pixel work of the render styles (see styles.py): shading colours, and post-processing of the finished
picture with fixed-order adds, multiplies, floors and square roots, so a pixel never depends on the batch."""

from __future__ import annotations

import numpy as np
import torch

from charforge.creators.builtin.styles import RULES, SHADOW_COLOURS, pixel_cell


def adjust_colours(c: dict[str, torch.Tensor], style: str) -> None:
    """In place, after the look is prepared: shading strength and background."""
    rule = RULES[style]
    if rule.shade != 1.0:
        for shadow, base in SHADOW_COLOURS.items():
            c[shadow] = c[base] + (c[shadow] - c[base]) * rule.shade
    if style == "flat":  # no outlines, so the features keep a softer ink
        c["skin_line"] = c["skin"] * 0.7
    if rule.paper:
        c["bg_top"] = torch.full_like(c["bg_top"], 0.97)
        c["bg_delta"] = torch.zeros_like(c["bg_delta"])


# ---- post-processing on the finished (N, 3, S, S) float image --------------------------------------------
def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img moved by (dy, dx) pixels with edge replication."""
    s = img.shape[-1]
    rows = torch.arange(s).sub(dy).clamp(0, s - 1)
    cols = torch.arange(s).sub(dx).clamp(0, s - 1)
    return img[:, :, rows][:, :, :, cols]


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur as a fixed-order sum of shifted copies (no conv algorithm choice)."""
    r = max(1, int(np.ceil(2.5 * sigma)))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w = (w / w.sum()).astype(np.float32)
    out = img
    for axis in (0, 1):
        acc = torch.zeros_like(out)
        for k, wk in zip(range(-r, r + 1), w):
            acc += float(wk) * (_shift(out, k, 0) if axis == 0 else _shift(out, 0, k))
        out = acc
    return out


def _coords(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    return g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)  # x (1,1,1,S), y (1,1,S,1)


def _painterly(img: torch.Tensor) -> torch.Tensor:
    s = img.shape[-1]
    out = _blur(img, 0.55 * s / 64)
    x, y = _coords(s)
    light = 1.07 - 0.07 * (x + y)  # brighter towards the upper left
    # brush texture: two slanted triangle waves about 5 strokes per 64 px, +-3 % lightness
    a = (x * 0.8 + y * 0.6) * 6.0
    b = (x * -0.5 + y * 0.87) * 9.0
    tri = lambda t: (t - torch.floor(t) - 0.5).abs() * 2.0 - 0.5  # noqa: E731  in [-0.5, 0.5]
    tex = 1.0 + 0.06 * tri(a) + 0.04 * tri(b)
    return (out * light * tex).clamp(0.0, 1.0)


def _manga(img: torch.Tensor) -> torch.Tensor:
    """Halftone dots (45 degree grid) whose size follows the tone; paper between them, ink untouched."""
    s = img.shape[-1]
    lum = img[:, 0:1] * 0.299 + img[:, 1:2] * 0.587 + img[:, 2:3] * 0.114  # (N, 1, S, S)
    period = max(3.0, s / 21.0) * (2.0 / s)  # frame units between dot centres
    x, y = _coords(s)
    a, b = (x + y) / period, (y - x) / period
    fa, fb = a - torch.floor(a) - 0.5, b - torch.floor(b) - 0.5
    dist = torch.sqrt(fa * fa + fb * fb)  # 0 at a dot centre, ~0.71 at a cell corner
    tone = ((0.86 - lum) / 0.62).clamp(0.0, 1.0)  # 0 = paper (light skin stays white), 1 = full tone
    radius = torch.sqrt(tone) * 0.62
    px = (2.0 / s) / period  # one pixel in cell units, for anti-aliased dots
    dot = ((radius - dist) / px + 0.5).clamp(0.0, 1.0) * (tone * 8.0).clamp(0.0, 1.0)
    paper = img + (1.0 - img) * 0.72  # the colour, printed thin
    ink = img * 0.62  # the colour, printed dense
    out = paper + (ink - paper) * dot
    keep = ((0.3 - lum) / 0.1).clamp(0.0, 1.0)  # ink lines and very dark areas stay solid
    return out + (img * 0.8 - out) * keep


def _pixel(img: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of each cell (a fixed-order sum), snapped to 8 levels per channel (512 colours), cells scaled up."""
    cell = pixel_cell(size)
    n, ch, s, _ = img.shape
    g = s // cell
    blocks = img.clamp(0.0, 1.0).reshape(n, ch, g, cell, g, cell)
    acc = torch.zeros((n, ch, g, g), dtype=img.dtype)
    for i in range(cell):
        for j in range(cell):
            acc += blocks[:, :, :, i, :, j]
    q = torch.floor(acc * (7.0 / (cell * cell)) + 0.5) / 7.0
    q = q.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)
    return q[:, :, :size, :size]


def post(img: torch.Tensor, style: str, size: int) -> torch.Tensor:
    """The finished picture of a style at the output size, (N, 3, size, size) float in [0, 1]."""
    if style == "painterly":
        return _painterly(img)
    if style == "manga":
        return _manga(img)
    if style == "pixel":
        return _pixel(img, size)
    return img
