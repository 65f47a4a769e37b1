"""The attribute path: a photo of a person -> a stylised creator's parameters, without any embedding.

dlib's 68 landmarks and colour sampling estimate hair, eye and skin colour, glasses, smile, open mouth, hair
length and face-shape ratios; `attributes_to_params` maps them onto a creator's parameter space by name
(colour options by nearest RGB prototype, the rest by simple rules). Landmark indices follow the iBUG 68-point
layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner lips 60-67.
"""

from __future__ import annotations

import functools
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
GLASSES_EDGE = (
    0.04  # mean |vertical gradient| (0-1 gray) of the nose bridge and the lower rims above which glasses
)
# are assumed (measured: astronaut 0.02, Grace Hopper's glasses 0.06, frames drawn on the astronaut 0.08-0.11)
SMILE_LIFT = 0.06  # corner lift (fraction of mouth width) above which the mouth counts as smiling
OPEN_GAP = 0.08  # inner-lip gap (fraction of mouth width) above which the mouth counts as open


HAT_DARKER = 0.6  # a crown this much darker than the hair beside the temples (lightness ratio) reads as a hat
HAT_CHROMA = 0.35  # ... or a crown this saturated (max - min of RGB, 0-1) where the side hair is not
SAME_COLOUR = 0.3  # colour_distance below which two samples count as the same colour (skin, background)
EYE_MIN_PX = 18  # eye width in pixels below which the iris colour is not estimated ("not visible")

# Coarse hair-colour families: what a photo can tell apart reliably, and the creator options each one allows.
HAIR_FAMILIES = {
    "black": ("black",),
    "brown": ("brown",),
    "blonde": ("blonde",),
    "red": ("red", "orange"),
    "grey/white": ("silver", "white", "gray", "grey"),
    "blue": ("blue", "aqua", "navy"),
    "green": ("green",),
    "purple/pink": ("purple", "pink"),
}
NATURAL_HAIR = ("black", "brown", "blonde", "red", "grey/white")
EYE_FAMILIES = {
    "dark": ("brown", "black"),
    "blue": ("blue", "aqua"),
    "green": ("green",),
}


def _hsl(rgb) -> tuple[float, float, float]:
    """(hue in degrees, chroma 0-1, lightness 0-1 as the RGB mean) of an RGB triple."""
    r, g, b = (float(v) / 255.0 for v in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    c = mx - mn
    if c < 1e-6:
        h = 0.0
    elif mx == r:
        h = 60.0 * (((g - b) / c) % 6)
    elif mx == g:
        h = 60.0 * ((b - r) / c + 2)
    else:
        h = 60.0 * ((r - g) / c + 4)
    return h, c, (r + g + b) / 3


SKIN_REF = (224, 172, 140)  # the skin chromaticity of a neutrally balanced photo (lightness does not matter)


def skin_balance(skin) -> tuple[float, float, float]:
    """Per-channel gains that bring the sampled skin to SKIN_REF's chromaticity (a skin-referenced white balance:
    a warm or cool cast shifts hair and skin alike), each clipped to 0.75-1.33."""
    s = np.asarray(skin, np.float32) + 1.0
    r = np.asarray(SKIN_REF, np.float32) + 1.0
    gains = (r / r.sum()) / (s / s.sum())
    return tuple(float(g) for g in np.clip(gains, 0.75, 1.33))


def balanced(rgb, gains) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) * np.asarray(gains, np.float32), 0, 255)


def hair_family(rgb) -> str:
    """The coarse family of a hair colour sample (photos or drawings)."""
    h, c, lum = _hsl(rgb)
    if c < 0.12 or (
        lum > 0.45 and c < 0.16
    ):  # grey-ish (photos add a warm cast to grey): black, or grey / white
        return "black" if lum < 0.3 else "grey/white"
    if lum < 0.18:
        return "black"
    if h >= 345 or h < 20:
        return "red" if c > 0.3 else "brown"
    if h < 50:
        if c > 0.45 and lum > 0.3:
            return "red"  # ginger / orange
        return "blonde" if lum > 0.55 else "brown"
    if h < 70:
        return "blonde" if lum > 0.45 else "brown"
    if h < 170:
        return "green"
    if h < 255:
        return "blue"
    return "purple/pink"


def eye_family(rgb) -> str | None:
    """dark / blue / green, or None when the sample does not say clearly."""
    h, c, lum = _hsl(rgb)
    if lum < 0.3 or (c > 0.1 and 10 <= h < 60 and lum < 0.5):
        return "dark"
    if c > 0.08 and 170 <= h < 260:
        return "blue"
    if c > 0.08 and 70 <= h < 170:
        return "green"
    return None


@dataclass
class FaceAttributes:
    hair_rgb: tuple[int, int, int]
    eye_rgb: tuple[int, int, int]
    skin_rgb: tuple[int, int, int]
    glasses_score: float  # mean of the nose-bridge and lower-rim edge energies
    smile_score: float  # mouth-corner lift / mouth width
    open_score: float  # inner-lip gap / mouth width
    hair_length_score: float  # 0 = nothing hair-coloured beside the jaw, 1 = hair down both sides
    face_ratio: float  # jaw width / face height (brows to chin)
    eye_spacing: float  # eye-centre distance / jaw width
    n_faces: int
    balance: tuple[float, float, float] = (
        1.0,
        1.0,
        1.0,
    )  # skin-referenced white-balance gains (skin_balance)
    hat_score: float = (
        0.0  # > 1 = a hat: crown darker or more saturated than the side hair (see estimate_attributes)
    )
    eye_px: float = 0.0  # mean eye width in pixels (the iris colour is trusted from EYE_MIN_PX)

    @property
    def glasses(self) -> bool:
        return self.glasses_score > GLASSES_EDGE

    @property
    def hat(self) -> bool:
        return self.hat_score > 1.0

    @property
    def smile(self) -> bool:
        return self.smile_score > SMILE_LIFT

    @property
    def mouth_open(self) -> bool:
        return self.open_score > OPEN_GAP

    @property
    def hair_family(self) -> str:
        return hair_family(balanced(self.hair_rgb, self.balance))

    @property
    def eye_family(self) -> str | None:
        return eye_family(balanced(self.eye_rgb, self.balance)) if self.eye_px >= EYE_MIN_PX else None

    @property
    def hair_length(self) -> str:
        return (
            "short"
            if self.hair_length_score < 0.25
            else "medium"
            if self.hair_length_score < 0.75
            else "long"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "glasses": self.glasses,
            "hat": self.hat,
            "smile": self.smile,
            "mouth_open": self.mouth_open,
            "hair_family": self.hair_family,
            "eye_family": self.eye_family,
            "hair_length": self.hair_length,
        }


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


def _mean_dy(gray: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> float:
    """Mean |d gray / dy| (gray in 0-1) in a box; 0 for an empty box."""
    h, w = gray.shape
    xa, xb = int(np.clip(x0, 0, w)), int(np.clip(x1, 0, w))
    ya, yb = int(np.clip(y0, 0, h)), int(np.clip(y1, 0, h))
    patch = gray[ya : yb + 1, xa:xb]
    return float(np.abs(np.diff(patch, axis=0)).mean()) if patch.shape[0] > 1 and patch.shape[1] > 0 else 0.0


def _bridge_edges(image: np.ndarray, lm: np.ndarray) -> float:
    """Edge energy where glasses frames run: the nose bridge between the inner eye corners, and a strip under each
    eye (the lower rims; bare cheeks are smooth there). Mean |d gray / dy| of the two, 0-1 gray."""
    gray = image.astype(np.float32).mean(2) / 255.0
    span = float(np.linalg.norm(lm[42] - lm[39]))
    cx, cy = (lm[39] + lm[42]) / 2
    bridge = _mean_dy(gray, cx - 0.25 * span, cy - 0.35 * span, cx + 0.25 * span, cy + 0.15 * span)
    rims = []
    for eye in (lm[36:42], lm[42:48]):
        x0, x1 = float(eye[:, 0].min()), float(eye[:, 0].max())
        ew, yb = x1 - x0, float(eye[:, 1].max())
        rims.append(_mean_dy(gray, x0, yb + 0.2 * ew, x1, yb + 0.75 * ew))
    return (bridge + float(np.mean(rims))) / 2


def _hair_length(image: np.ndarray, lm: np.ndarray, hair: np.ndarray, face_w: float) -> float:
    """Share of the two patches beside the lower jaw whose colour is close to the hair colour."""
    hits = 0.0
    for side, corner in ((-1, lm[4]), (1, lm[12])):
        x = corner[0] + side * 0.25 * face_w
        rgb = _median_rgb(image, x - 0.1 * face_w, corner[1], x + 0.1 * face_w, corner[1] + 0.3 * face_w)
        hits += float(np.linalg.norm(rgb - hair) < 60.0)  # 60: RGB distance counted as "the same colour"
    return hits / 2


def _distances(pixels: np.ndarray, ref) -> np.ndarray:
    """colour_distance of every row of (N, 3) `pixels` to one RGB `ref`."""
    p = np.asarray(pixels, np.float32) + 1.0
    r = np.asarray(ref, np.float32) + 1.0
    light = np.abs(p.mean(1) - r.mean()) / 255.0
    return light + 3.0 * np.linalg.norm(p / p.sum(1, keepdims=True) - r / r.sum(), axis=1)


def _patch(image: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    h, w = image.shape[:2]
    xa, xb = int(np.clip(x0, 0, w - 1)), int(np.clip(x1, 1, w))
    ya, yb = int(np.clip(y0, 0, h - 1)), int(np.clip(y1, 1, h))
    return image[ya : max(yb, ya + 1), xa : max(xb, xa + 1)].reshape(-1, 3).astype(np.float32)


def _side_hair(image, lm, brow_y, face_w, skin, backgrounds, gains) -> np.ndarray | None:
    """Median colour of the hair beside the cheeks (what a hat leaves visible): the pixels of two patches just
    just outside the jaw line at ear to cheek height, that are like neither the skin nor the background; None when
    fewer than a quarter of them are (short hair, ears)."""
    pix = np.concatenate(
        [
            _patch(image, lm[2, 0] - 0.14 * face_w, lm[1, 1], lm[2, 0] - 0.02 * face_w, lm[3, 1]),
            _patch(image, lm[14, 0] + 0.02 * face_w, lm[15, 1], lm[14, 0] + 0.14 * face_w, lm[13, 1]),
        ]
    )
    chroma = (pix.max(1) - pix.min(1)) / 255.0
    keep = (_distances(pix, skin) > SAME_COLOUR) & (
        chroma < 0.55
    )  # vivid props (flags, tassels) are rarely hair
    for bg in backgrounds:
        keep &= _distances(pix, bg) > SAME_COLOUR
    if keep.mean() < 0.25:
        return None
    kept = pix[keep]
    # the patches mix hair with ears, glasses arms and backdrop: vote over natural hair families (sky and props
    # supply the vivid ones)
    fams = np.array([hair_family(p) for p in balanced(kept, gains)])
    natural = np.isin(fams, NATURAL_HAIR)
    if natural.mean() < 0.1:
        return None
    kept, fams = kept[natural], fams[natural]
    names, counts = np.unique(fams, return_counts=True)
    return np.median(kept[fams == names[int(np.argmax(counts))]], axis=0)


def _hat_score(crown: np.ndarray, side: np.ndarray | None, skin, backgrounds) -> float:
    """> 1 when the crown above the forehead looks like headwear rather than the hair seen beside the temples:
    much darker than that hair (hair on the crown is lit from above, so it is rarely the darker part), or saturated
    where that hair is not. 0 when no side hair is visible, or the crown shows skin or background."""
    if side is None or colour_distance(crown, skin) < SAME_COLOUR:
        return 0.0
    if any(colour_distance(crown, bg) < SAME_COLOUR for bg in backgrounds):
        return 0.0
    _, c_crown, l_crown = _hsl(crown)
    _, c_side, l_side = _hsl(side)
    darker = (1.0 - l_crown / max(l_side, 1e-3)) / (1.0 - HAT_DARKER)  # 1 at the HAT_DARKER ratio
    vivid = c_crown / HAT_CHROMA if c_side < HAT_CHROMA * 0.6 else 0.0
    return float(max(darker, vivid, 0.0))


def estimate_attributes(image: np.ndarray, *, detect: bool = True, source: str = "image") -> FaceAttributes:
    """Attributes of the largest face in an (H, W, 3) uint8 photo."""
    box: FaceBox = find_face(image, detect=detect, source=source)
    return attributes_from_box(image, box)


def attributes_from_box(image: np.ndarray, box: FaceBox) -> FaceAttributes:
    """Attributes of the face in `box` (68 landmarks, then colour and edge sampling around them)."""
    lm = landmarks68(image, box)  # (68, 2)
    h, w = image.shape[:2]
    face_w = float(np.linalg.norm(lm[14] - lm[2]))
    brow_y = float(lm[17:27, 1].mean())
    face_h = max(float(lm[8, 1] - brow_y), 1.0)
    skin = (
        _median_rgb(image, *(lm[2] * 0.6 + lm[31] * 0.4 - 3), *(lm[2] * 0.6 + lm[31] * 0.4 + 3))
        + _median_rgb(image, *(lm[14] * 0.6 + lm[35] * 0.4 - 3), *(lm[14] * 0.6 + lm[35] * 0.4 + 3))
    ) / 2
    backgrounds = [_median_rgb(image, 0, 0, 0.08 * w, 0.08 * h), _median_rgb(image, 0.92 * w, 0, w, 0.08 * h)]
    crown = _median_rgb(image, lm[19, 0], brow_y - 0.55 * face_h, lm[24, 0], brow_y - 0.3 * face_h)
    gains = skin_balance(skin)
    side = _side_hair(image, lm, brow_y, face_w, skin, backgrounds, gains)
    hat_score = _hat_score(crown, side, skin, backgrounds)
    if hat_score > 1.0 and side is not None:
        hair = side  # the hat hides the crown: the hair colour is what shows beside the temples
    else:
        top = min(box.top, brow_y - 0.25 * face_h)
        hair = _median_rgb(image, lm[19, 0], top - 0.35 * face_h, lm[24, 0], top - 0.05 * face_h)
    eye = (_eye_rgb(image, lm[36:42]) + _eye_rgb(image, lm[42:48])) / 2
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
        balance=gains,
        hat_score=hat_score,
        eye_px=float((np.linalg.norm(lm[39] - lm[36]) + np.linalg.norm(lm[45] - lm[42])) / 2),
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
        family = tuple(o for o in options if o in HAIR_FAMILIES[a.hair_family])
        return _nearest_option(family or options, a.hair_rgb, COLOUR_RGB)
    if name in ("hat", "headwear"):
        allowed = _yes_no(options, a.hat)
        return allowed[0] if allowed else None
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
    rest = {k: float(v) for k, v in d.items() if k not in rgb and k not in ("n_faces", "balance")}
    balance = tuple(float(v) for v in d["balance"])
    return FaceAttributes(**rgb, **rest, balance=balance, n_faces=max(a.n_faces for a in items))


NONE_NAMES = ("none", "off", "no")


def _yes_no(options: tuple[str, ...], on: bool) -> tuple[str, ...]:
    off = tuple(o for o in options if o in NONE_NAMES)
    if not off:
        return ()
    return tuple(o for o in options if o not in off) if on else off[:1]


def attribute_constraints(attrs: FaceAttributes, space) -> dict[str, tuple[str, ...]]:
    """The options a visible attribute allows, per categorical parameter of `space` (matched by name; parameters
    no attribute speaks for are absent): hair colour within its family, eye colour within its family when the eyes
    are large enough to see, glasses and hat on or off, hair length, no tails beside short hair, the two skin tones
    nearest the sampled skin. The search and the translator's answer are kept inside these."""
    out: dict[str, tuple[str, ...]] = {}
    for p in space.categorical:
        name, opts = p.name, tuple(p.options)
        allowed: tuple[str, ...] = ()
        if "hair" in name and "color" in name:
            allowed = tuple(o for o in opts if o in HAIR_FAMILIES[attrs.hair_family])
        elif "eye" in name and "color" in name and attrs.eye_family is not None:
            allowed = tuple(o for o in opts if o in EYE_FAMILIES[attrs.eye_family])
        elif name == "glasses":
            allowed = _yes_no(opts, attrs.glasses)
        elif name in ("hat", "headwear"):
            allowed = _yes_no(opts, attrs.hat)
        elif name == "hair_length":
            allowed = tuple(o for o in opts if o == attrs.hair_length)
        elif name == "hair_extra" and attrs.hair_length == "short":
            allowed = tuple(o for o in opts if o in ("none", "ponytail"))
        elif name in ("skin_tone", "skin"):
            known = sorted(
                (o for o in opts if o in SKIN_RGB), key=lambda o: colour_distance(SKIN_RGB[o], attrs.skin_rgb)
            )
            allowed = tuple(o for o in opts if o in known[:2])
        if allowed:
            out[name] = allowed
    return out


def agreement(params: dict[str, Any], constraints: dict[str, tuple[str, ...]]) -> dict[str, bool]:
    """Per constrained parameter: does the fitted value lie within what the input shows?"""
    return {name: params.get(name) in allowed for name, allowed in constraints.items()}


DRAWING_SIDE = 128  # px a drawing is reduced to for the layout-based estimate


def _colour_codes(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) codes of a 8x8x8 RGB quantisation."""
    q = np.asarray(image, np.int32) // 32
    return q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]


def _mode(codes: np.ndarray, exclude: tuple[int, ...] = ()) -> int | None:
    vals, counts = np.unique(codes.ravel(), return_counts=True)
    keep = ~np.isin(vals, exclude)
    return int(vals[keep][np.argmax(counts[keep])]) if keep.any() else None


def drawing_hair_rgb(image: np.ndarray) -> tuple[int, int, int] | None:
    """Hair colour of a drawn portrait with no detectable face, from the layout alone: the background is the
    commonest colour of the border, the skin the commonest other colour at the image centre, and the hair the
    commonest remaining colour above the face centre (flat fills make these modes clean). None when nothing is
    left. A heuristic for head-and-shoulders drawings: a hat counts as hair."""
    from PIL import Image

    im = np.asarray(
        Image.fromarray(np.asarray(image)).resize((DRAWING_SIDE, DRAWING_SIDE), Image.Resampling.NEAREST)
    )
    codes = _colour_codes(im)
    h, w = codes.shape
    border = np.concatenate([codes[0], codes[-1], codes[:, 0], codes[:, -1]])
    bg = _mode(border)
    skin = _mode(codes[int(0.42 * h) : int(0.6 * h), int(0.4 * w) : int(0.6 * w)], (bg,))
    upper = codes[: int(0.45 * h)]
    hair = _mode(upper, tuple(c for c in (bg, skin) if c is not None))
    if hair is None:
        return None
    return tuple(int(v) for v in np.median(im[: int(0.45 * h)][upper == hair], axis=0))


# A drawing's hair colour (read by the part reader) allows the palette colours within this many CIE76 units of
# the nearest one (the tag estimator's HAIR_READER_SCALE): a colour between two palette colours keeps both.
DRAWING_HAIR_DELTA_E = 8.0
# The part reader's glasses share (fraction of the picture) above which a drawing wears glasses, below
# DRAWING_NO_GLASSES it does not, between them the search decides. Rims are thin: 0.4 % of a 64 px picture is
# 16 pixels.
DRAWING_GLASSES = 0.004
DRAWING_NO_GLASSES = 0.0005


def _read_drawings(images: list[np.ndarray]):
    """(HairReading per drawing or None, glasses share per drawing or None) from the shipped part reader."""
    from charforge.tagger.parts import shipped_reader

    reader = shipped_reader()
    if reader is None:
        return [None] * len(images), [None] * len(images)
    from charforge.creators.builtin import palette

    readings, glasses = [], []
    for im in images:
        x = np.asarray(im, np.uint8)[None]
        masks = reader.masks(x)
        readings.append(reader.hair_colour(x, palette.HAIR_RGB, masks=masks))
        g = reader.part_share(x, "glasses", masks=masks)
        glasses.append(None if g is None else float(g[0]))
    return readings, glasses


@functools.cache
def _shipped_estimator():
    from charforge.tagger.net import estimate_tagger_path, load_tagger

    path = estimate_tagger_path()
    return None if path is None else load_tagger(path)


def _estimator_glasses(images: list[np.ndarray]) -> list[bool] | None:
    """The shipped tag estimator's forced glasses decision (its fitted threshold) per drawing, or None where there
    is no estimator or it finds any drawing unlike the art it learned from (its familiarity check: there its
    answers are guesses, and import leaves them unknown too)."""
    t = _shipped_estimator() if images else None
    if t is None:
        return None
    k = list(t.schema.tags).index("glasses")
    out = []
    for im in images:
        seen = t.read(np.asarray(im, np.uint8)[None])  # per call, nothing kept: the studio's threads share t
        if seen.unfamiliar is not None and bool(seen.unfamiliar[0]):
            return None
        out.append(bool(t.tags_of(seen)[0, k]))
    return out


def drawing_constraints(images: list[np.ndarray], space) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """(summary, constraints) for drawings (no photo face found, or an image that looks drawn: `fit.prepare_inputs`).

    - Hair colour: where the shipped part reader sees the hair in every drawing, the palette colours within
      DRAWING_HAIR_DELTA_E of the nearest to each drawing's modal hair colour, in every drawing (none in
      common: unconstrained); otherwise the hair-colour family from the layout when every drawing agrees.
    - No hat: a hat is fitted only where one is seen, and the layout cannot see one (on 90 DiceBear avatars the
      unconstrained search put a hat on 47 % of the hatless ones).
    - Glasses: the shipped tag estimator's forced decision, "glasses" only where it says so on every drawing
      (session 15, rule D: it reads the thin line-art rims the reader misses, and the reader takes some styles'
      dark eyes for rims). Where the estimator finds a drawing unfamiliar (its answer would be a guess): on where
      the reader marks rims on every drawing, off where it marks none on any, else left to the search."""
    from charforge.core.colour import srgb_to_lab
    from charforge.creators.builtin import palette

    out: dict[str, tuple[str, ...]] = {}
    summary: dict[str, Any] = {"source": "drawing layout (no photo face used)", "hat": False}
    readings, glasses = _read_drawings(images)
    read = all(r is not None and r.known[0] for r in readings) and bool(readings)
    rgbs = (
        [tuple(int(v) for v in r.rgb[0]) for r in readings]
        if read
        else [drawing_hair_rgb(im) for im in images]
    )
    fams = {hair_family(rgb) for rgb in rgbs if rgb is not None}
    fam = fams.pop() if len(fams) == 1 and None not in rgbs else None
    wears, est = None, _estimator_glasses(images)
    if est is not None:
        wears = all(est)  # the estimator reads rims the reader misses and is not fooled by dark eyes (rule D)
    elif glasses and all(g is not None for g in glasses):
        if all(g >= DRAWING_GLASSES for g in glasses):
            wears = True
        elif all(g < DRAWING_NO_GLASSES for g in glasses):
            wears = False
    for p in space.categorical:
        allowed: tuple[str, ...] = ()
        if "hair" in p.name and "color" in p.name:
            known = [o for o in p.options if o in palette.HAIR_RGB]
            if read and known:  # the colours every drawing allows (none in common: no constraint)
                ref = srgb_to_lab(np.array([palette.HAIR_RGB[o] for o in known], np.float64) / 255.0)
                ok = np.ones(len(known), bool)
                for rgb in rgbs:
                    d = np.linalg.norm(ref - srgb_to_lab(np.array(rgb, np.float64) / 255.0), axis=1)
                    ok &= d <= d.min() + DRAWING_HAIR_DELTA_E
                allowed = tuple(o for o, k in zip(known, ok) if k)
            elif fam is not None:
                allowed = tuple(o for o in p.options if o in HAIR_FAMILIES[fam])
        elif p.name in ("hat", "headwear"):
            allowed = _yes_no(tuple(p.options), False)
        elif p.name == "glasses" and wears is not None:
            allowed = _yes_no(tuple(p.options), wears)
        if allowed:
            out[p.name] = allowed
    if read:
        summary.update(source="part reader (hair pixels; no photo face used)", hair_rgb=rgbs[0])
    if fam is not None:
        summary.update(hair_family=fam, hair_rgb=rgbs[0])
    if wears is not None:
        summary["glasses"] = wears
    return summary, out
