"""Colour tables (sRGB 0-255) and per-image colour jitter, computed in numpy float64 (N is small)."""

from __future__ import annotations

import numpy as np

HAIR_RGB = {
    "blonde": (250, 222, 120),
    "brown": (132, 84, 52),
    "black": (44, 40, 54),
    "blue": (58, 98, 212),
    "pink": (248, 146, 190),
    "purple": (138, 84, 192),
    "green": (72, 168, 86),
    "red": (206, 44, 48),
    "silver": (186, 194, 214),
    "white": (246, 246, 248),
    "orange": (244, 136, 44),
    "aqua": (70, 206, 210),
    "gray": (118, 118, 124),
}
EYE_RGB = {
    "blue": (44, 108, 226),
    "red": (214, 34, 40),
    "brown": (132, 78, 36),
    "green": (40, 160, 64),
    "purple": (142, 66, 204),
    "yellow": (236, 196, 30),
    "pink": (244, 104, 170),
    "aqua": (30, 200, 200),
    "black": (40, 34, 46),
    "orange": (248, 128, 24),
}
SKIN_RGB = {
    "porcelain": (255, 238, 228),
    "light": (253, 224, 204),
    "warm": (244, 206, 172),
    "tan": (222, 176, 134),
    "brown": (168, 118, 86),
}
BACKGROUND_RGB = {
    "sky": (160, 204, 242),
    "peach": (252, 212, 186),
    "mint": (182, 232, 204),
    "lavender": (212, 196, 240),
    "cream": (246, 238, 212),
    "slate": (96, 110, 132),
}
CLOTHING_RGB = {
    "navy": (40, 52, 100),
    "black": (36, 36, 42),
    "white": (240, 240, 244),
    "red": (180, 40, 52),
    "green": (46, 110, 70),
    "gray": (128, 130, 140),
}
HAT_RGB = {
    "black": (34, 32, 40),
    "red": (196, 36, 52),
    "navy": (40, 54, 116),
    "brown": (120, 78, 44),
    "white": (244, 244, 246),
}
RIBBON_RGB = {
    "red": (232, 32, 56),
    "pink": (255, 110, 176),
    "blue": (40, 100, 236),
    "yellow": (252, 208, 32),
    "white": (252, 252, 252),
    "green": (40, 184, 80),
}
GLASSES_RGB = {"black": (30, 28, 36), "red": (180, 30, 44), "brown": (110, 64, 34), "blue": (36, 60, 150)}

MIN_RIBBON_CONTRAST = 110.0  # Euclidean sRGB distance below which the bow colour is swapped, 0-255 units


def table(rgb: dict[str, tuple[int, int, int]], names: tuple[str, ...]) -> np.ndarray:
    """(K, 3) float64 in [0, 1] in option order."""
    return np.array([rgb[n] for n in names], dtype=np.float64) / 255.0


# YIQ rotates hue linearly, so hue jitter stays a cheap matrix product.
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def jitter(
    rgb: np.ndarray, hue: np.ndarray, light: np.ndarray, hue_turn: float = 0.03, light_amt: float = 0.12
) -> np.ndarray:
    """(N, 3) colours with hue rotated by hue*hue_turn turns and lightness moved by light*light_amt (both -1..1)."""
    yiq = rgb @ _RGB2YIQ.T
    a = 2 * np.pi * hue_turn * hue
    c, s = np.cos(a), np.sin(a)
    i, q = yiq[:, 1] * c - yiq[:, 2] * s, yiq[:, 1] * s + yiq[:, 2] * c
    out = np.stack([yiq[:, 0], i, q], axis=1) @ _YIQ2RGB.T
    lift = light_amt * light[:, None]
    out = np.where(lift > 0, out + (1 - out) * lift, out * (1 + lift))
    return np.clip(out, 0.0, 1.0)


def contrasting(choice: np.ndarray, palette: np.ndarray, against: np.ndarray) -> np.ndarray:
    """choice (N, 3) unless it is within MIN_RIBBON_CONTRAST of `against`; then the palette colour farthest from it."""
    dist = np.linalg.norm((choice - against) * 255.0, axis=1)
    far = palette[np.linalg.norm((palette[None] - against[:, None]) * 255.0, axis=2).argmax(axis=1)]
    return np.where((dist < MIN_RIBBON_CONTRAST)[:, None], far, choice)
