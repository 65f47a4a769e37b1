"""Render styles of the built-in creator (names, rules and proportions; the pixel work is in restyle.py): the same character drawn as cel, flat, painterly, screentone,
pixel art or chibi.

A style changes how the layers are drawn (outline weight, shading colours, proportions) and what happens to
the finished picture (blur, halftone, pixel grid), never which tags the character shows: every style draws
hair and eye colour, hair style, expression and accessories, so the 34 tags stay true. Post-processing uses
only fixed-order adds, multiplies, floors and square roots per pixel, so a pixel still never depends on the
rest of the batch.

`cel` is the creator's original look and goes through exactly the original code path (bit-identical pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STYLES = ("cel", "flat", "painterly", "manga", "pixel", "chibi")
STYLE_TAGS = {  # option -> the tag of the "style" group (image-board names where one exists)
    "cel": "cel shading",
    "flat": "flat color",
    "painterly": "painterly",
    "manga": "screentones",
    "pixel": "pixel art",
    "chibi": "chibi",
}
STYLE_HELP = {
    "cel": "the original look: ink outlines, two-tone cel shading",
    "flat": "flat colour fields, no outlines, weak shading",
    "painterly": "soft edges, thin lines, light from the upper left, brush texture",
    "manga": "heavy ink, paper-white background, halftone screentone shading that keeps each colour's hue",
    "pixel": "a coarse pixel grid (2 px cells at 64 px), a 512-colour palette, 1-cell outlines",
    "chibi": "super-deformed proportions: big head and eyes, small body, tiny nose and mouth",
}


@dataclass(frozen=True)
class StyleRule:
    line: float = 1.0  # outline width factor (0: no outlines)
    shade: float = 1.0  # how far shadow colours stay from the base colour (0: flat)
    paper: bool = False  # background turns to paper white


RULES = {
    "cel": StyleRule(),
    "flat": StyleRule(line=0.0, shade=0.35),
    "painterly": StyleRule(line=0.45, shade=0.8),
    "manga": StyleRule(line=1.7, shade=1.0, paper=True),
    "pixel": StyleRule(line=1.0, shade=0.8),
    "chibi": StyleRule(line=1.15),
}
OUTLINE_REF = 0.012  # the creator's usual outline width, frame units: pixel art widens it to one grid cell
SHADOW_COLOURS = {  # shading colour -> its base colour
    "hair_shadow": "hair",
    "hair_dark": "hair",
    "skin_shadow": "skin",
    "cloth_dark": "cloth",
    "hat_shadow": "hat",
    "ribbon_dark": "ribbon",
    "iris_dark": "iris",
}
CHIBI = {  # parameter -> (scale, offset): super-deformed proportions
    "head_scale": (1.13, 0.0),
    "eye_size": (1.14, 0.0),
    "face_width": (1.06, 0.0),
    "chin_length": (0.72, 0.0),
    "mouth_width": (0.75, 0.0),
    "nose_size": (0.45, 0.0),
    "neck_width": (0.75, 0.0),
    "shoulder_width": (0.62, 0.0),
    "eye_height": (1.0, 0.035),
}


def check_style(style: str) -> str:
    from charforge.errors import UserError

    s = style.strip().lower()
    for opt, tag in STYLE_TAGS.items():
        if s in (opt, tag):
            return opt
    raise UserError(
        f"unknown style {style!r}. Valid: {', '.join(STYLES)} (or their tags: {', '.join(STYLE_TAGS.values())})",
        field="style",
    )


PIXEL_CELLS = 32  # pixel art is one 32-cell sprite, whatever the size it is rendered at


def pixel_cell(size: int) -> int:
    """Pixel-art cell size in output pixels: 2 at 64 px, 4 at 128 px, 8 at 256 px.

    The grid has PIXEL_CELLS cells across at every multiple of 32 px (other sizes round the cell and crop), so a
    larger render is the same sprite with bigger cells, as a game scales its sprites, and (64 px, 256 px) pairs
    are exact x4 enlargements up to the palette's rounding. Never under 2 px."""
    return max(2, int(round(size / PIXEL_CELLS)))


def render_size(style: str, size: int) -> int:
    """The canvas size a style draws at: pixel art draws on whole cells (then crops to `size`)."""
    if style == "pixel":
        return -(-size // pixel_cell(size)) * pixel_cell(size)
    return size


def line_factor(style: str, canvas_size: int) -> float:
    if style == "pixel":  # about 0.6 of a cell, so an outline survives the mosaic as one dark cell
        return 0.6 * pixel_cell(canvas_size) * (2.0 / canvas_size) / OUTLINE_REF
    return RULES[style].line


def adjust_numbers(num: dict[str, np.ndarray], style: str) -> None:
    """In place, before the look is prepared: proportions."""
    if style != "chibi":
        return
    for name, (scale, offset) in CHIBI.items():
        num[name] = num[name] * scale + offset
