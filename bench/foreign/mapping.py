"""Ground-truth labels for the foreign-style benchmark sets: colour rule, option -> tag tables, metrics.

Pure Python + numpy (no npm, no torch), so tests/bench/test_foreign_mapping.py runs anywhere.

Labels use charforge's 34 make.girls.moe tags. Each image gets, per tag, 1 (shown), 0 (known not shown)
or None (not applicable: the style cannot show it, or the option does not say; never scored).

Hair colour rule: the style's hair hex -> the nearest of 13 reference colours in CIELAB (CIE76 Delta E).
The reference colours are a frozen copy of the built-in creator's hair palette on 2026-12-01, so the labels
do not move when the creator's palette changes. A hex whose nearest colour of another coarse family is
within AMBIGUOUS_DELTA_E of its nearest is "ambiguous" and is never sampled (a person could name either).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HAIR_COLORS = (
    "blonde",
    "brown",
    "black",
    "blue",
    "pink",
    "purple",
    "green",
    "red",
    "silver",
    "white",
    "orange",
    "aqua",
    "gray",
)
EYE_COLORS = ("blue", "red", "brown", "green", "purple", "yellow", "pink", "aqua", "black", "orange")
INDEPENDENT = (
    "long hair",
    "short hair",
    "twintails",
    "drill hair",
    "ponytail",
    "blush",
    "smile",
    "open mouth",
    "hat",
    "ribbon",
    "glasses",
)
TAGS = tuple(f"{c} hair" for c in HAIR_COLORS) + tuple(f"{c} eyes" for c in EYE_COLORS) + INDEPENDENT

# Frozen copy (sRGB 0-255) of charforge/creators/builtin/palette.py HAIR_RGB as of 2026-12-01.
HAIR_REFERENCE_RGB: dict[str, tuple[int, int, int]] = {
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
HAIR_FAMILIES: dict[str, tuple[str, ...]] = {
    "black/brown": ("black", "brown"),
    "blonde/orange": ("blonde", "orange"),
    "red/pink": ("red", "pink"),
    "blue/aqua/purple": ("blue", "aqua", "purple"),
    "white/grey/silver": ("white", "gray", "silver"),
    "green": ("green",),
}
FAMILY_OF = {c: fam for fam, cs in HAIR_FAMILIES.items() for c in cs}
AMBIGUOUS_DELTA_E = 6.0  # CIE76 units: closer than this to another family's colour = ambiguous
# Hexes the rule names in a way a person looking at the render would not; never sampled (checked by eye
# on the contact sheets).
EXCLUDED_HEX: dict[str, str] = {
    "592454": "dark plum: the rule says black (Delta E 28.7), the render reads as purple",
}


# ---- colour ----------------------------------------------------------------------------------------
def hex_to_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    if len(h) != 6:
        raise ValueError(f"hex colour must have 6 digits: {h!r}")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def srgb_to_lab(rgb: Sequence[float] | np.ndarray) -> np.ndarray:
    """sRGB 0-255 (..., 3) -> CIELAB (..., 3), D65 white."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = (c @ m.T) / np.array([0.95047, 1.0, 1.08883])
    d = 6.0 / 29.0
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4.0 / 29.0)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


_REF_LAB = srgb_to_lab(np.array([HAIR_REFERENCE_RGB[c] for c in HAIR_COLORS]))


@dataclass(frozen=True)
class ColourLabel:
    hex: str
    name: str  # nearest reference colour
    delta_e: float  # distance to it
    other_family: str  # nearest colour of a different family
    margin: float  # its distance minus delta_e

    @property
    def family(self) -> str:
        return FAMILY_OF[self.name]

    @property
    def ambiguous(self) -> bool:
        return self.margin < AMBIGUOUS_DELTA_E


def hair_colour_label(hex_colour: str) -> ColourLabel:
    d = np.linalg.norm(_REF_LAB - srgb_to_lab(hex_to_rgb(hex_colour)), axis=1)
    order = np.argsort(d, kind="stable")
    best = HAIR_COLORS[order[0]]
    other = next(HAIR_COLORS[i] for i in order if FAMILY_OF[HAIR_COLORS[i]] != FAMILY_OF[best])
    d_other = float(d[HAIR_COLORS.index(other)])
    return ColourLabel(
        hex_colour.lstrip("#").lower(), best, float(d[order[0]]), other, d_other - float(d[order[0]])
    )


# ---- the colour a render shows --------------------------------------------------------------------------
FAR_COLOURS = ("00ff00", "ff00ff", "00ffff", "ff0000", "0000ff", "ffff00")  # twin renders' hair colours


def far_colour(hex_colour: str) -> str:
    """The twin colour for a hair option: the one of FAR_COLOURS furthest from it (sum of channel distances)."""
    rgb = np.array(hex_to_rgb(hex_colour), float)
    return FAR_COLOURS[
        int(np.argmax([np.abs(np.array(hex_to_rgb(h), float) - rgb).sum() for h in FAR_COLOURS]))
    ]


DRAWN_MIN_ALPHA = 0.5  # a pixel is hair when at least half of what it shows is the hair colour option
DRAWN_MIN_SHARE = 0.01  # hair colour is "not visible" below this share of the picture
DRAWN_MODE_SHARE = 0.25  # below this the most common hair colour is not "the" colour: the median is used


@dataclass(frozen=True)
class DrawnHair:
    hex: str | None  # the hair colour the picture shows; None where hair is not visible
    share: float  # share of the picture that is hair (alpha >= DRAWN_MIN_ALPHA)
    mode_share: float  # share of those pixels that have the drawn colour exactly


def drawn_hair(a: np.ndarray, b: np.ndarray, hex_a: str, hex_b: str) -> DrawnHair:
    """The hair colour a render shows. `a` is the avatar as labelled (hair option `hex_a`), `b` the same avatar
    with only the hair option changed to `hex_b` (uint8 (H, W, 3)). A style may draw hair translucently over
    the skin or under a white sheen, so the option is not always what is seen. A drawn pixel is
    alpha * option + (1 - alpha) * what lies under or over it, so (a - b) = alpha * (hex_a - hex_b) gives each
    pixel's alpha; pixels with alpha >= DRAWN_MIN_ALPHA are hair, and their most common colour (their median
    when no colour covers DRAWN_MODE_SHARE of them) is what a person sees. Pure numpy."""
    ha, hb = np.array(hex_to_rgb(hex_a), float), np.array(hex_to_rgb(hex_b), float)
    dh = ha - hb
    alpha = ((a.astype(float) - b.astype(float)) @ dh) / float(dh @ dh)
    hair = alpha >= DRAWN_MIN_ALPHA
    share = float(hair.mean())
    if share < DRAWN_MIN_SHARE:
        return DrawnHair(None, share, 0.0)
    px = a[hair].reshape(-1, 3)
    cols, counts = np.unique(px, axis=0, return_counts=True)
    mode_share = float(counts.max() / len(px))
    rgb = cols[counts.argmax()] if mode_share >= DRAWN_MODE_SHARE else np.median(px, 0).round()
    return DrawnHair("".join(f"{int(v):02x}" for v in rgb), share, mode_share)


def relabel_drawn(item: dict[str, Any], drawn: DrawnHair) -> bool:
    """Label an avatar's hair colour by what its render shows (`drawn_hair`), with the same colour rule as the
    option hexes: nearest reference colour, unlabelled when hair is not visible or the colour is ambiguous.
    The option's label is kept as `hair_color_option`. Returns True when the label changed."""
    before = item.get("hair_color")
    colour = None if drawn.hex is None else hair_colour_label(drawn.hex)
    if colour is not None and (colour.ambiguous or colour.hex in EXCLUDED_HEX):
        colour = None
    for c in HAIR_COLORS:
        item["labels"][f"{c} hair"] = None if colour is None else int(c == colour.name)
    item["hair_color_option"] = before
    item["hair_drawn_hex"] = drawn.hex
    item["hair_drawn_share"] = round(drawn.share, 4)
    item["hair_color"] = None if colour is None else colour.name
    item["hair_family"] = None if colour is None else colour.family
    return item["hair_color"] != before


# ---- styles ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    """One value of one DiceBear option, what it passes to DiceBear, and the tags it shows."""

    options: dict[str, Any]
    labels: dict[str, int | None] = field(default_factory=dict)
    weight: float = 1.0
    hides_hair: bool = False  # hair colour is not visible (a hat covers it)


def _c(opts: dict[str, Any], weight: float = 1.0, hides_hair: bool = False, **labels: int | None) -> Choice:
    return Choice(opts, {k.replace("_", " "): v for k, v in labels.items()}, weight, hides_hair)


LENGTH_NA = {"long_hair": None, "short_hair": None}
TAILS_NO = {"twintails": 0, "ponytail": 0, "drill_hair": 0}
LONG = {"long_hair": 1, "short_hair": 0, **TAILS_NO}
SHORT = {"long_hair": 0, "short_hair": 1, **TAILS_NO}


@dataclass(frozen=True)
class StyleSpec:
    name: str  # DiceBear style id
    licence: str
    creator: str
    source: str
    hair_option: str  # DiceBear option holding the hair colour list
    hair_palette: tuple[str, ...]  # the style's own hair colours (hex)
    slots: dict[str, tuple[Choice, ...]]  # option group -> choices (one drawn per avatar)
    known_absent: tuple[str, ...] = ()  # tags the style can never show: always 0
    fixed: dict[str, Any] = field(default_factory=dict)  # options passed to every avatar
    notes: str = ""

    def usable_palette(self) -> tuple[str, ...]:
        return tuple(
            h for h in self.hair_palette if not hair_colour_label(h).ambiguous and h not in EXCLUDED_HEX
        )

    def ambiguous_palette(self) -> tuple[str, ...]:
        return tuple(h for h in self.hair_palette if hair_colour_label(h).ambiguous)


def _adventurer() -> StyleSpec:
    long_loose = ("long04", "long05", "long06", "long07", "long08", "long09")
    other_long = tuple(f"long{i:02d}" for i in range(1, 27) if f"long{i:02d}" not in long_loose)
    hair = (
        [_c({"hair": [h]}, 1.0, **SHORT) for h in (f"short{i:02d}" for i in range(1, 19))]
        + [_c({"hair": [h]}, 1.5, **LONG) for h in long_loose]
        + [_c({"hair": ["long15"]}, 1.5, twintails=1, ponytail=0, drill_hair=0, **LENGTH_NA)]
        + [_c({"hair": ["long14"]}, 1.5, twintails=1, ponytail=0, drill_hair=0, **LENGTH_NA)]
        + [_c({"hair": ["long19"]}, 1.5, twintails=0, ponytail=1, drill_hair=0, **LENGTH_NA)]
        + [_c({"hair": [h]}, 0.5, **LENGTH_NA) for h in other_long if h not in ("long14", "long15", "long19")]
    )
    return StyleSpec(
        "adventurer",
        "CC BY 4.0",
        "Lisa Wischofsky",
        "https://www.figma.com/community/file/1184595184137881796",
        "hairColor",
        (
            "ac6511",
            "cb6820",
            "ab2a18",
            "e5d7a3",
            "b9a05f",
            "796a45",
            "6a4e35",
            "562306",
            "0e0e0e",
            "afafaf",
            "3eac2c",
            "85c2c6",
            "dba3be",
            "592454",
        ),
        {
            "hair": tuple(hair),
            "glasses": (
                _c({"glassesProbability": 0}, 0.6, glasses=0),
                # variant01 is sunglasses: only the four clear frames are drawn
                _c(
                    {
                        "glasses": ["variant02", "variant03", "variant04", "variant05"],
                        "glassesProbability": 100,
                    },
                    0.4,
                    glasses=1,
                ),
            ),
            "blush": (
                _c({"features": ["blush"], "featuresProbability": 0}, 0.7, blush=0),
                _c({"features": ["blush"], "featuresProbability": 100}, 0.3, blush=1),
            ),
        },
        known_absent=("hat",),
        fixed={"earringsProbability": 0},
        notes="Head only, no shoulders: 'long hair' is given only to the six loose styles that fall well below "
        "the chin (long04-long09); short01-short18 are short; long14/long15 are twintails, long19 a ponytail; "
        "the other long* styles (buns, bobs, braids) are not labelled for length. short19 (bald) is not drawn. "
        "glasses variant01 (sunglasses) is not drawn. "
        "No headwear exists in the style, so hat is a known 0 (two hair styles wear flower crowns). "
        "Mouths are unnamed variants: smile/open mouth not labelled.",
    )


def _avataaars() -> StyleSpec:
    hats = ("hat", "winterHat1", "winterHat02", "winterHat03", "winterHat04")
    long_tops = ("bigHair", "curvy", "dreads", "straight01", "straight02", "straightAndStrand", "shavedSides")
    short_tops = (
        "shortCurly",
        "shortFlat",
        "shortRound",
        "shortWaved",
        "theCaesar",
        "theCaesarAndSidePart",
        "frizzle",
        "dreads01",
        "dreads02",
    )
    unlabelled = (
        "bob",
        "bun",
        "curly",
        "fro",
        "froBand",
        "frida",
        "longButNotTooLong",
        "miaWallace",
        "shaggy",
    )
    top = (
        [_c({"top": [t]}, 6.0 / len(hats), True, hat=1, **LENGTH_NA) for t in hats]
        + [_c({"top": [t]}, 1.0, hat=0, **LONG) for t in long_tops]
        + [_c({"top": [t]}, 1.0, hat=0, **SHORT) for t in short_tops]
        + [_c({"top": [t]}, 0.5, hat=0, **LENGTH_NA) for t in unlabelled]
    )
    mouth = (
        _c({"mouth": ["default"]}, smile=1, open_mouth=1),
        _c({"mouth": ["smile"]}, smile=1, open_mouth=1),
        _c({"mouth": ["twinkle"]}, smile=1, open_mouth=0),
        _c({"mouth": ["serious"]}, smile=0, open_mouth=0),
        _c({"mouth": ["sad"]}, smile=0, open_mouth=0),
        _c({"mouth": ["screamOpen"]}, smile=0, open_mouth=1),
        _c({"mouth": ["disbelief"]}, smile=0, open_mouth=1),
    )
    glasses = (
        _c({"accessoriesProbability": 0}, 0.6, glasses=0),
        *[
            _c({"accessories": [a], "accessoriesProbability": 100}, 0.4 / 3, glasses=1)
            for a in ("prescription01", "prescription02", "round")
        ],
    )
    return StyleSpec(
        "avataaars",
        "Free for personal and commercial use (avataaars.com)",
        "Pablo Stanley",
        "https://avataaars.com/",
        "hairColor",
        ("a55728", "2c1b18", "b58143", "d6b370", "724133", "4a312c", "f59797", "ecdcbf", "c93305", "e8e1e1"),
        {"top": tuple(top), "mouth": mouth, "glasses": glasses},
        fixed={"facialHairProbability": 0, "topProbability": 100},
        notes="Hats: hat and the four winter hats (hair colour then not labelled). hijab, turban and sides "
        "(almost bald) are not drawn. Long: past the shoulders; short: above the ears; bob, bun, fro, "
        "miaWallace, ... not labelled for length. Mouth 'default' and 'smile' are open smiles, 'twinkle' a "
        "closed smile; eyepatch, sunglasses, kurt and wayfarers (dark lenses) are not drawn; the three clear-glass frames are glasses.",
    )


def _personas() -> StyleSpec:
    hair = (
        [_c({"hair": [h]}, 1.5, hat=0, **LONG) for h in ("long", "extraLong")]
        + [_c({"hair": ["pigtails"]}, 1.5, hat=0, twintails=1, ponytail=0, drill_hair=0, **LENGTH_NA)]
        + [
            _c({"hair": [h]}, 1.0, hat=0, **SHORT)
            for h in ("buzzcut", "fade", "shortCombover", "shortComboverChops", "curlyHighTop", "mohawk")
        ]
        + [_c({"hair": [h]}, 2.0, True, hat=1, **LENGTH_NA) for h in ("cap", "beanie")]
        + [
            _c({"hair": [h]}, 0.5, hat=0, **LENGTH_NA)
            for h in ("bobCut", "bobBangs", "curly", "curlyBun", "straightBun", "bunUndercut", "sideShave")
        ]
    )
    eyes = (
        *[_c({"eyes": [e]}, 0.15, glasses=0) for e in ("open", "happy", "wink", "sleep")],
        _c({"eyes": ["glasses"]}, 0.4, glasses=1),
    )
    mouth = (
        _c({"mouth": ["smile"]}, smile=1, open_mouth=0),
        _c({"mouth": ["bigSmile"]}, smile=1, open_mouth=1),
        _c({"mouth": ["surprise"]}, smile=0, open_mouth=1),
        _c({"mouth": ["frown"]}, smile=0, open_mouth=0),
        _c({"mouth": ["lips"]}, smile=0, open_mouth=0),
    )
    return StyleSpec(
        "personas",
        "CC BY 4.0",
        "Draftbit (draftbit.com)",
        "https://personas.draftbit.com/",
        "hairColor",
        ("362c47", "6c4545", "e15c66", "e16381", "f27d65", "f29c65", "dee1f5"),
        {"hair": tuple(hair), "eyes": eyes, "mouth": mouth},
        fixed={"facialHairProbability": 0},
        notes="Hats: cap and beanie (drawn in the hair colour; hair colour then not labelled). bald, balding "
        "and sunglasses are not drawn; pacifier and smirk mouths are not drawn. Bobs, buns, curly and "
        "sideShave are not labelled for length; pigtails are twintails.",
    )


STYLES: dict[str, StyleSpec] = {s.name: s for s in (_adventurer(), _avataaars(), _personas())}
BACKGROUNDS = ("#ffffff", "#f3efe6", "#dfe9f5", "#e8f3e0", "#f6e3ea", "#e9e4f5")


def _pick(rng: np.random.Generator, choices: Sequence[Choice]) -> Choice:
    w = np.array([c.weight for c in choices], dtype=np.float64)
    return choices[int(rng.choice(len(choices), p=w / w.sum()))]


def empty_labels() -> dict[str, int | None]:
    return {t: None for t in TAGS}


def sample_avatar(spec: StyleSpec, rng: np.random.Generator, ident: str) -> dict[str, Any]:
    """One avatar: the DiceBear job (options) and its labels (tag -> 1/0/None, hair colour name)."""
    labels = empty_labels()
    for t in spec.known_absent:
        labels[t] = 0
    options: dict[str, Any] = dict(spec.fixed)
    hides = False
    picked = {}
    for slot, choices in spec.slots.items():
        ch = _pick(rng, choices)
        options.update(ch.options)
        labels.update(ch.labels)
        hides = hides or ch.hides_hair
        picked[slot] = next(iter(ch.options.values()))
    palette = spec.usable_palette()
    hex_colour = palette[int(rng.integers(len(palette)))]
    options[spec.hair_option] = [hex_colour]
    colour = None if hides else hair_colour_label(hex_colour)
    for c in HAIR_COLORS:
        labels[f"{c} hair"] = None if colour is None else int(c == colour.name)
    return {
        "file": f"{ident}.png",
        "style": spec.name,
        "seed": ident,
        "background": BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        "options": options,
        "labels": labels,
        "hair_hex": hex_colour,
        "hair_color": None if colour is None else colour.name,
        "hair_family": None if colour is None else colour.family,
    }


def sample_style(style: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    spec = STYLES[style]
    rng = np.random.default_rng([seed, sorted(STYLES).index(style)])
    return [sample_avatar(spec, rng, f"{style}-{seed}-{i:04d}") for i in range(n)]


# ---- metrics -----------------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for k successes in n trials; (nan, nan) when n == 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def _ratio(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {"value": (k / n) if n else None, "k": k, "n": n, "ci95": [lo, hi] if n else None}


def f1_from_counts(tp: int, fp: int, fn: int) -> float | None:
    den = 2 * tp + fp + fn
    return (2 * tp / den) if den else None


def bootstrap_f1(truth: np.ndarray, pred: np.ndarray, reps: int = 1000, seed: int = 0) -> list[float] | None:
    """95 % percentile-bootstrap interval of F1 over images."""
    n = len(truth)
    if n == 0 or truth.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(reps, n))
    t, p = truth[idx], pred[idx]
    tp = (t & p).sum(1)
    den = 2 * tp + (p & ~t).sum(1) + (t & ~p).sum(1)
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), np.nan)
    f1 = f1[~np.isnan(f1)]
    return [float(np.percentile(f1, 2.5)), float(np.percentile(f1, 97.5))] if len(f1) else None


def binary_metrics(truth: Sequence[int | None], pred: Sequence[int]) -> dict[str, Any]:
    """Precision, recall, F1, accuracy (Wilson / bootstrap 95 % CIs) on the images where truth is not None,
    with chance baselines: a guesser that says yes at the base rate p scores precision = recall = F1 = p;
    always-yes scores F1 = 2p / (1 + p); the majority class scores accuracy max(p, 1 - p)."""
    keep = [i for i, t in enumerate(truth) if t is not None]
    t = np.array([bool(truth[i]) for i in keep], dtype=bool)
    p = np.array([bool(pred[i]) for i in keep], dtype=bool)
    n = len(t)
    tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
    tn = n - tp - fp - fn
    base = float(t.mean()) if n else None
    return {
        "n": n,
        "positives": int(t.sum()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "false_positive_rate": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, n),
        "f1": f1_from_counts(tp, fp, fn) if (tp + fn) else None,
        "f1_ci95": bootstrap_f1(t, p),
        "chance": {
            "base_rate": base,
            "f1_random_at_base_rate": base if (base and n) else None,
            "f1_always_yes": (2 * base / (1 + base)) if (base and n) else None,
            "accuracy_majority": max(base, 1 - base) if n else None,
        },
    }


def multiclass_metrics(truth: Sequence[str | None], pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy (Wilson CI) where truth is not None, with chance: majority class and random at the label
    distribution (sum of squared class shares)."""
    pairs = [(t, p) for t, p in zip(truth, pred) if t is not None]
    n = len(pairs)
    k = sum(t == p for t, p in pairs)
    counts: dict[str, int] = {}
    for t, _ in pairs:
        counts[t] = counts.get(t, 0) + 1
    shares = [c / n for c in counts.values()] if n else []
    confusion: dict[str, dict[str, int]] = {}
    for t, p in pairs:
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1
    return {
        "accuracy": _ratio(k, n),
        "chance": {
            "majority": max(shares) if shares else None,
            "random_at_label_distribution": sum(s * s for s in shares) if shares else None,
        },
        "truth_counts": dict(sorted(counts.items())),
        "confusion": confusion,
    }
