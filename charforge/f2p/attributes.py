"""The attribute path: a photo of a person -> a stylised creator's parameters, without any embedding.

dlib's 68 landmarks and colour sampling estimate hair, eye and skin colour, glasses, smile, open mouth, hair
length and face-shape ratios; `attributes_to_params` maps them onto a creator's parameter space by name
(colour options by nearest RGB prototype, the rest by simple rules). Landmark indices follow the iBUG 68-point
layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner lips 60-67.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from charforge.f2p.faces import FaceBox, find_face, landmarks68

# RGB prototypes of colour option names (anime palettes drawn toward how they look in photos)
COLOUR_RGB = {
    "black": (30, 25, 25),
    "brown": (100, 65, 40),
    "blonde": (215, 180, 110),
    "red": (160, 50, 35),
    "orange": (210, 110, 40),
    "silver": (190, 190, 200),
    "white": (235, 235, 235),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "blue": (60, 90, 170),
    "aqua": (80, 190, 200),
    "green": (60, 130, 70),
    "purple": (120, 70, 150),
    "pink": (230, 140, 170),
    "yellow": (220, 200, 60),
    "navy": (30, 40, 90),
}
SKIN_RGB = {
    "porcelain": (245, 225, 215),
    "light": (230, 195, 170),
    "warm": (215, 170, 130),
    "tan": (180, 130, 95),
    "brown": (115, 75, 50),
}
GLASSES_EDGE = 0.05  # mean |vertical gradient| (0-1 gray) on the nose bridge above which glasses are assumed
SMILE_LIFT = 0.06  # corner lift (fraction of mouth width) above which the mouth counts as smiling
OPEN_GAP = 0.08  # inner-lip gap (fraction of mouth width) above which the mouth counts as open


@dataclass
class FaceAttributes:
    hair_rgb: tuple[int, int, int]
    eye_rgb: tuple[int, int, int]
    skin_rgb: tuple[int, int, int]
    glasses_score: float  # nose-bridge edge energy
    smile_score: float  # mouth-corner lift / mouth width
    open_score: float  # inner-lip gap / mouth width
    hair_length_score: float  # 0 = nothing hair-coloured beside the jaw, 1 = hair down both sides
    face_ratio: float  # jaw width / face height (brows to chin)
    eye_spacing: float  # eye-centre distance / jaw width
    n_faces: int

    @property
    def glasses(self) -> bool:
        return self.glasses_score > GLASSES_EDGE

    @property
    def smile(self) -> bool:
        return self.smile_score > SMILE_LIFT

    @property
    def mouth_open(self) -> bool:
        return self.open_score > OPEN_GAP

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "glasses": self.glasses, "smile": self.smile, "mouth_open": self.mouth_open}


def _median_rgb(image: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    h, w = image.shape[:2]
    xa, xb = int(np.clip(min(x0, x1), 0, w - 1)), int(np.clip(max(x0, x1), 1, w))
    ya, yb = int(np.clip(min(y0, y1), 0, h - 1)), int(np.clip(max(y0, y1), 1, h))
    patch = image[ya : max(yb, ya + 1), xa : max(xb, xa + 1)].reshape(-1, 3).astype(np.float32)
    return np.median(patch, axis=0)


def _eye_rgb(image: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Mean colour of the darker half of the pixels inside the eye's landmark box (the iris, not the white)."""
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    cx, cy = pts.mean(0)
    rx, ry = max((x1 - x0) * 0.3, 1), max((y1 - y0) * 0.5, 1)
    patch = (
        image[int(cy - ry) : int(cy + ry) + 1, int(cx - rx) : int(cx + rx) + 1]
        .reshape(-1, 3)
        .astype(np.float32)
    )
    light = patch.mean(1)
    return patch[light <= np.median(light)].mean(0)


def _bridge_edges(image: np.ndarray, lm: np.ndarray) -> float:
    """Mean |d gray / dy| in a patch on the nose bridge between the inner eye corners."""
    gray = image.astype(np.float32).mean(2) / 255.0
    span = float(np.linalg.norm(lm[42] - lm[39]))
    cx, cy = (lm[39] + lm[42]) / 2
    patch = gray[
        int(cy - 0.35 * span) : int(cy + 0.15 * span) + 1, int(cx - 0.25 * span) : int(cx + 0.25 * span) + 1
    ]
    return float(np.abs(np.diff(patch, axis=0)).mean()) if patch.shape[0] > 1 and patch.shape[1] > 0 else 0.0


def _hair_length(image: np.ndarray, lm: np.ndarray, hair: np.ndarray, face_w: float) -> float:
    """Share of the two patches beside the lower jaw whose colour is close to the hair colour."""
    hits = 0.0
    for side, corner in ((-1, lm[4]), (1, lm[12])):
        x = corner[0] + side * 0.25 * face_w
        rgb = _median_rgb(image, x - 0.1 * face_w, corner[1], x + 0.1 * face_w, corner[1] + 0.3 * face_w)
        hits += float(np.linalg.norm(rgb - hair) < 60.0)  # 60: RGB distance counted as "the same colour"
    return hits / 2


def estimate_attributes(image: np.ndarray, *, detect: bool = True, source: str = "image") -> FaceAttributes:
    """Attributes of the largest face in an (H, W, 3) uint8 photo."""
    box: FaceBox = find_face(image, detect=detect, source=source)
    lm = landmarks68(image, box)  # (68, 2)
    face_w = float(np.linalg.norm(lm[14] - lm[2]))
    brow_y = float(lm[17:27, 1].mean())
    face_h = max(float(lm[8, 1] - brow_y), 1.0)
    top = min(box.top, brow_y - 0.25 * face_h)
    hair = _median_rgb(image, lm[19, 0], top - 0.35 * face_h, lm[24, 0], top - 0.05 * face_h)
    eye = (_eye_rgb(image, lm[36:42]) + _eye_rgb(image, lm[42:48])) / 2
    skin = (
        _median_rgb(image, *(lm[2] * 0.6 + lm[31] * 0.4 - 3), *(lm[2] * 0.6 + lm[31] * 0.4 + 3))
        + _median_rgb(image, *(lm[14] * 0.6 + lm[35] * 0.4 - 3), *(lm[14] * 0.6 + lm[35] * 0.4 + 3))
    ) / 2
    mouth_w = max(float(np.linalg.norm(lm[54] - lm[48])), 1.0)
    centre_y = (lm[51, 1] + lm[57, 1]) / 2
    return FaceAttributes(
        hair_rgb=tuple(int(v) for v in hair),
        eye_rgb=tuple(int(v) for v in eye),
        skin_rgb=tuple(int(v) for v in skin),
        glasses_score=_bridge_edges(image, lm),
        smile_score=float((centre_y - (lm[48, 1] + lm[54, 1]) / 2) / mouth_w),
        open_score=float((lm[66, 1] - lm[62, 1]) / mouth_w),
        hair_length_score=_hair_length(image, lm, hair, face_w),
        face_ratio=face_w / face_h,
        eye_spacing=float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)) / face_w),
        n_faces=box.n_found,
    )


def _nearest_option(
    options: tuple[str, ...], rgb: tuple[int, int, int], table: dict[str, tuple[int, int, int]]
) -> str | None:
    known = [o for o in options if o in table]
    if not known:
        return None
    return min(known, key=lambda o: colour_distance(table[o], rgb))


def colour_distance(a, b) -> float:
    """Lightness difference plus 3x the chromaticity difference: hue and saturation count more than shading."""
    a, b = np.asarray(a, np.float32) + 1.0, np.asarray(b, np.float32) + 1.0
    return float(abs(a.mean() - b.mean()) / 255.0 + 3.0 * np.linalg.norm(a / a.sum() - b / b.sum()))


def _pick(options: tuple[str, ...], wanted: list[str]) -> str | None:
    return next((w for w in wanted if w in options), None)


def _categorical_choice(name: str, options: tuple[str, ...], a: FaceAttributes) -> str | None:
    """The option a photo attribute implies for one categorical parameter, or None (keep the default)."""
    if "hair" in name and "color" in name:
        return _nearest_option(options, a.hair_rgb, COLOUR_RGB)
    if "eye" in name and "color" in name:
        return _nearest_option(options, a.eye_rgb, COLOUR_RGB)
    if name in ("skin_tone", "skin"):
        return _nearest_option(options, a.skin_rgb, SKIN_RGB)
    if name == "glasses":
        return (
            _pick(options, ["round", "square", "on", "yes"])
            if a.glasses
            else _pick(options, ["none", "off", "no"])
        )
    if name == "mouth":
        wanted = {
            (True, True): "open_smile",
            (True, False): "smile",
            (False, True): "open",
            (False, False): "closed",
        }
        return _pick(options, [wanted[(a.smile, a.mouth_open)], "smile" if a.smile else "closed"])
    if name == "hair_length":
        return _pick(
            options,
            ["short"]
            if a.hair_length_score < 0.25
            else ["medium"]
            if a.hair_length_score < 0.75
            else ["long"],
        )
    if name == "face_shape":
        return _pick(
            options, ["round"] if a.face_ratio > 0.95 else ["oval"] if a.face_ratio > 0.85 else ["pointed"]
        )
    return None


def _lightness(rgb: tuple[int, int, int]) -> float:
    """-1 (dark) .. 1 (light), from mean RGB."""
    return float(np.clip(np.mean(rgb) / 127.5 - 1.0, -1.0, 1.0))


def _continuous_value(name: str, lo: float, hi: float, a: FaceAttributes) -> float | None:
    def span(x: float, x_lo: float, x_hi: float) -> float:  # map a human range linearly onto [lo, hi]
        return float(lo + np.clip((x - x_lo) / (x_hi - x_lo), 0.0, 1.0) * (hi - lo))

    rules = {
        "face_width": lambda: span(
            a.face_ratio, 0.8, 1.05
        ),  # typical jaw width / brow-to-chin height of adults
        "eye_spacing": lambda: span(a.eye_spacing, 0.40, 0.52),  # typical eye-centre distance / jaw width
        "hair_lightness": lambda: span(_lightness(a.hair_rgb), -0.8, 0.6),
        "eye_lightness": lambda: span(_lightness(a.eye_rgb), -0.8, 0.4),
        "skin_lightness": lambda: span(_lightness(a.skin_rgb), -0.4, 0.9),
    }
    return rules[name]() if name in rules else None


def attributes_to_params(attrs: FaceAttributes, space) -> dict[str, Any]:
    """A full, validated parameter dict for `space`: attribute-driven where a rule applies, defaults elsewhere."""
    out: dict[str, Any] = {}
    for p in space.categorical:
        choice = _categorical_choice(p.name, p.options, attrs)
        if choice is not None:
            out[p.name] = choice
    for p in space.continuous:
        value = _continuous_value(p.name, p.lo, p.hi, attrs)
        if value is not None:
            out[p.name] = round(value, 6)
    return space.validate(out, source="attribute mapping")


def average_attributes(items: list[FaceAttributes]) -> FaceAttributes:
    """Several photos of one person -> one set of attributes (means of every measurement)."""
    if len(items) == 1:
        return items[0]
    d = {k: np.mean([np.asarray(getattr(a, k), np.float32) for a in items], axis=0) for k in asdict(items[0])}
    rgb = {k: tuple(int(v) for v in d[k]) for k in ("hair_rgb", "eye_rgb", "skin_rgb")}
    rest = {k: float(v) for k, v in d.items() if k not in rgb and k != "n_faces"}
    return FaceAttributes(**rgb, **rest, n_faces=max(a.n_faces for a in items))
