"""Training styles: foreign avatar styles the tag estimator may *learn from* (issue 13: "holds on styles it has
not seen" needs drawings that are not the creator's). Never scored as results.

Three roles, kept apart (each has its own module, so adding a style here changes no test or validation set):
  mapping.py            test sets (adventurer, avataaars, personas): numbers only, never trained on or tuned on
  validation.py         micah: choosing settings (a threshold, a weighting, which candidate ships)
  training_styles.py    these: training data only

What these give that the creator does not: hats that are not the creator's beret, witch hat and cap (pixel-art's
ten hats, open-peeps' beanie, hip hat, turban and hijab), flat or line-art hair that is *not* a hat, and more
glasses frames. Hair colour is drawn from TRAINING_HAIR_HEX, a seeded spread over the colour wheel rather than
each style's own palette, so the labels cover all 13 colours; hexes whose nearest creator colour is within
mapping.AMBIGUOUS_DELTA_E of another family's are left out (mapping.StyleSpec.usable_palette).

Honest limits: every style here is drawn by DiceBear and rasterised by resvg like the three DiceBear test sets,
and open-peeps is by the artist of avataaars (Pablo Stanley); Wesnoth portraits and photos are the test sets
outside that family. docs/foreign_benchmarks.md reports both groups apart.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterator
from typing import Any

import numpy as np
from mapping import HAIR_COLORS, LENGTH_NA, LONG, SHORT, StyleSpec, _c, hair_colour_label, sample_avatar


def _spread_hex(per_colour: int, seed: int) -> tuple[str, ...]:
    """`per_colour` unambiguous hexes for each of the 13 reference colours, drawn (seeded) from a spread over
    hue, saturation and value plus greys and near-whites, so every colour label is about equally common."""
    buckets: dict[str, list[str]] = {c: [] for c in HAIR_COLORS}
    for h in _candidates(20000, seed):
        lab = hair_colour_label(h)
        if not lab.ambiguous and len(buckets[lab.name]) < per_colour:
            buckets[lab.name].append(h)
            if all(len(b) == per_colour for b in buckets.values()):
                break  # the rest would be skipped anyway: stop drawing
    return tuple(h for c in HAIR_COLORS for h in buckets[c])


def _candidates(n: int, seed: int) -> Iterator[str]:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, s, v = rng.random(), rng.uniform(0.25, 1.0), rng.uniform(0.25, 1.0)
        if rng.random() < 0.2:  # greys, whites and near-blacks: silver, white, gray and black hair
            s, v = rng.uniform(0.0, 0.12), rng.uniform(0.1, 1.0)
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        yield f"{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


TRAINING_HAIR_HEX = _spread_hex(12, 20261206)


def _glasses(
    variants: tuple[str, ...], option: str = "glasses", prob: str = "glassesProbability", share: float = 0.4
) -> tuple:
    """The glasses slot: none with probability 1 - share, else one of `variants` (clear frames) equally."""
    off = _c({prob: 0}, 1.0 - share, glasses=0)
    return (off, *[_c({option: [v], prob: 100}, share / len(variants), glasses=1) for v in variants])


def _pixel_art() -> StyleSpec:
    hair = [_c({"hair": [f"short{i:02d}"]}, 1.0, hat=0, **SHORT) for i in range(1, 25)] + [
        _c({"hair": [f"long{i:02d}"]}, 1.0, hat=0, **LONG) for i in range(1, 22)
    ]
    hats = tuple(
        _c({"hat": [f"variant{i:02d}"], "hatProbability": 100}, 0.03, True, hat=1) for i in range(1, 11)
    )  # 30 % wear one of the ten hats
    return StyleSpec(
        "pixel-art",
        "CC0 1.0",
        "DiceBear",
        "https://www.dicebear.com/styles/pixel-art/",
        "hairColor",
        TRAINING_HAIR_HEX,
        {
            "hair": tuple(hair),
            "hat": (_c({"hatProbability": 0}, 0.7, hat=0), *hats),
            # light01-07 are clear frames; dark01-07 (sunglasses) are not drawn
            "glasses": _glasses(tuple(f"light{i:02d}" for i in range(1, 8)), share=0.35),
        },
        fixed={"beardProbability": 0, "accessoriesProbability": 0},
        notes="Training only. Ten hats (hair colour then not labelled: the brim hides most of it); clear "
        "glasses light01-07; short*/long* hair as named.",
    )


def _open_peeps() -> StyleSpec:
    hats = ("hatBeanie", "hatHip", "turban", "hijab")
    # not drawn: noHair1-3 and shaved1-3 (no hair to name), grayBun/grayMedium/grayShort (grey whatever the
    # colour option says), bear (a hood)
    long_heads = ("long", "longAfro", "longBangs", "longCurly", "flatTopLong")
    short_heads = ("short1", "short2", "short3", "short4", "short5", "flatTop", "pomp", "mohawk", "mohawk2")
    other = (
        "afro", "bangs", "bangs2", "bantuKnots", "bun", "bun2", "buns", "cornrows", "cornrows2",
        "dreads1", "dreads2", "medium1", "medium2", "medium3", "mediumBangs", "mediumBangs2", "mediumBangs3",
        "mediumStraight", "twists", "twists2",
    )  # fmt: skip
    # headContrastColor fills only some heads' accents, most hair stays black whatever it says (checked on the
    # contact sheet): no head gets a hair colour label (hides_hair=True on every choice)
    head = (
        [_c({"head": [h]}, 6.0 / len(hats), True, hat=1, **LENGTH_NA) for h in hats]
        + [_c({"head": [h]}, 1.0, True, hat=0, **LONG) for h in long_heads]
        + [_c({"head": [h]}, 1.0, True, hat=0, **SHORT) for h in short_heads]
        + [_c({"head": [h]}, 0.5, True, hat=0, **LENGTH_NA) for h in other]
    )
    glasses = _glasses(
        ("glasses", "glasses2", "glasses3", "glasses4", "glasses5"), "accessories", "accessoriesProbability"
    )
    return StyleSpec(
        "open-peeps",
        "CC0 1.0",
        "Pablo Stanley",
        "https://www.openpeeps.com/",
        "headContrastColor",
        TRAINING_HAIR_HEX,
        {"head": tuple(head), "glasses": glasses},
        fixed={"facialHairProbability": 0, "maskProbability": 0},
        notes="Training only. Hand-drawn line art; hair colour is never labelled (headContrastColor colours only "
        "some heads' accents). Hats: beanie, hip hat, turban, hijab. The bear hood, bald and grey-haired "
        "heads, sunglasses and the eyepatch are not drawn.",
    )


def _big_smile() -> StyleSpec:
    hair = [
        _c({"hair": [h]}, 1.0)
        for h in (
            "shortHair", "mohawk", "wavyBob", "bowlCutHair", "curlyBob", "straightHair", "braids", "bunHair",
            "froBun", "bangs", "halfShavedHead", "curlyShortHair",
        )
    ]  # fmt: skip
    return StyleSpec(
        "big-smile",
        "CC BY 4.0",
        "Ashley Seo",
        "https://www.figma.com/community/file/881358461963645496",
        "hairColor",
        TRAINING_HAIR_HEX,
        {
            "hair": tuple(hair),
            "glasses": _glasses(("glasses",), "accessories", "accessoriesProbability"),
        },
        known_absent=("hat",),
        notes="Training only. No headwear (cat ears and the crown are not drawn): hat is a known 0.",
    )


def _lorelei() -> StyleSpec:
    return StyleSpec(
        "lorelei",
        "CC0 1.0",
        "Lisa Wischofsky",
        "https://www.figma.com/community/file/1198749693280469639",
        "hairColor",
        TRAINING_HAIR_HEX,
        {
            "glasses": _glasses(tuple(f"variant{i:02d}" for i in range(1, 6))),
        },
        known_absent=("hat",),
        fixed={"beardProbability": 0, "hairAccessoriesProbability": 0, "earringsProbability": 0},
        notes="Training only. Line art with a hair fill; no headwear: hat is a known 0.",
    )


def _miniavs() -> StyleSpec:
    hair = [
        _c({"hair": [h]}, 1.0)
        for h in ("slaughter", "ponyTail", "long", "curly", "stylish", "elvis", "classic02", "classic01")
    ]
    return StyleSpec(
        "miniavs",
        "CC BY 4.0",
        "Webpixels",
        "https://www.figma.com/community/file/923211396597067458",
        "hairColor",
        TRAINING_HAIR_HEX,
        {
            "hair": tuple(hair),
            "glasses": _glasses(("normal",)),
        },
        known_absent=("hat",),
        fixed={"mustacheProbability": 0},
        notes="Training only. No headwear: hat is a known 0. 'balndess' (bald) is not drawn.",
    )


def _toon_head() -> StyleSpec:
    return StyleSpec(
        "toon-head",
        "CC BY 4.0",
        "Johan Melin",
        "https://www.figma.com/community/file/1451239026325149870",
        "hairColor",
        TRAINING_HAIR_HEX,
        {"hair": tuple(_c({"hair": [h]}, 1.0) for h in ("sideComed", "undercut", "spiky", "bun"))},
        known_absent=("hat", "glasses"),
        fixed={"beardProbability": 0, "hairProbability": 100},
        notes="Training only. Neither headwear nor glasses exist in the style: both known 0.",
    )


def _notionists() -> StyleSpec:
    # thin black line art, the nearest thing to micah's outline glasses among the styles no set uses; no hair
    # colour option exists, so hair colour is never labelled (hides_hair=True on every choice)
    hair = [_c({"hair": [f"variant{i:02d}"]}, 1.0, True, hat=0, **LENGTH_NA) for i in range(1, 64)]
    hat = _c({"hair": ["hat"]}, 63 * 0.12 / 0.88, True, hat=1, **LENGTH_NA)  # 12 % wear the style's one hat
    return StyleSpec(
        "notionists",
        "CC0 1.0",
        "Zoish",
        "https://heyzoish.gumroad.com/l/notionists",
        "hairColor",  # not an option of this style: DiceBear ignores it (checked: identical PNG)
        TRAINING_HAIR_HEX,
        {
            "hair": (*hair, hat),
            # variant03, 08, 11 are clear thin frames; the other eight have dark lenses and are not drawn
            "glasses": _glasses(("variant03", "variant08", "variant11")),
        },
        fixed={"beardProbability": 0, "gestureProbability": 0, "bodyIconProbability": 0},
        notes="Training only. Black line art: hair colour is never labelled. Hair 'hat' is a hat; clear glasses "
        "variant03/08/11 (the other variants have dark lenses and are not drawn).",
    )


_BH_CLOTH = ("white", "blue", "black", "green", "red")  # Big Heads' clothing palette, used for hats too


def _bigheads() -> StyleSpec:
    """Big Heads (npm @bigheads/core, MIT, Robert Broersma): React SVG avatars, drawn by bench/foreign/dicebear.mjs
    through react-dom/server. Not DiceBear: a second drawing family, with a knit beanie and a turban, the two hat
    shapes the test and validation sets show most (avataaars' winter hats, micah's turbans). Big Heads has no
    seed: every prop is drawn here."""
    lengths = {
        "long": LONG,
        "bob": LENGTH_NA,
        "bun": LENGTH_NA,
        "pixie": SHORT,
        "short": SHORT,
        "afro": LENGTH_NA,
    }
    hair = [_c({"hair": h}, 1.0, **lab) for h, lab in lengths.items()]
    # a hat replaces the hair's top: the hair prop still picks what shows below it (hair colour not labelled)
    hats = [
        _c({"hat": h, "hatColor": c}, 0.3 / 10, True, hat=1) for h in ("beanie", "turban") for c in _BH_CLOTH
    ]
    glasses = (
        _c({"accessory": "none"}, 0.6, glasses=0),
        _c({"accessory": "roundGlasses"}, 0.2, glasses=1),
        _c({"accessory": "tinyGlasses"}, 0.2, glasses=1),
    )  # "shades" (dark lenses) is not drawn
    mouths = (
        _c({"mouth": "grin"}, smile=1, open_mouth=None),  # teeth showing: open or not is a matter of taste
        _c({"mouth": "openSmile"}, smile=1, open_mouth=1),
        _c({"mouth": "open"}, smile=0, open_mouth=1),
        _c({"mouth": "serious"}, smile=0, open_mouth=0),
        _c({"mouth": "sad"}, smile=0, open_mouth=0),
        _c({"mouth": "lips"}, smile=0, open_mouth=0),
    )  # "tongue" is not drawn
    free = {
        "eyes": ("normal", "leftTwitch", "happy", "content", "squint", "simple", "dizzy", "wink", "heart"),
        "eyebrows": ("raised", "leftLowered", "serious", "angry", "concerned"),
        "skinTone": ("light", "yellow", "brown", "dark", "red", "black"),
        "body": ("chest", "breasts"),
        "clothing": ("naked", "shirt", "dressShirt", "vneck", "tankTop", "dress"),
        "clothingColor": _BH_CLOTH,
        "graphic": ("none", "redwood", "gatsby", "vue", "react", "graphQL"),
        "lashes": (False, True),
        "mask": (False, False, True),  # a third on the style's round backdrop
        "circleColor": ("blue",),
    }
    slots = {k: tuple(_c({k: v}) for v in vs) for k, vs in free.items()}
    return StyleSpec(
        "bigheads",
        "MIT",
        "Robert Broersma",
        "https://bigheads.io/",
        "hairColor",
        TRAINING_HAIR_HEX,
        {
            "hair": tuple(hair),
            "hat": (_c({"hat": "none"}, 0.7, hat=0), *hats),
            "glasses": glasses,
            "mouth": mouths,
            **slots,
        },  # fmt: skip
        known_absent=("twintails", "drill hair", "ponytail", "ribbon", "blush"),
        fixed={"facialHair": "none", "faceMask": False},
        notes="Training only (not DiceBear; rendered with React). Beanie and turban (30 %; hair colour then not "
        "labelled); round and tiny clear glasses; shades and the tongue mouth are not drawn.",
    )


STYLES: dict[str, StyleSpec] = {
    s.name: s
    for s in (
        _pixel_art(), _open_peeps(), _big_smile(), _lorelei(), _miniavs(), _toon_head(), _notionists(), _bigheads(),
    )
}  # fmt: skip
# The seven styles the shipped estimator and part reader learned from (their recipes' default). Each style's
# sampling seed is its rank among these, so a style added later (bigheads) changes no earlier style's avatars.
RECIPE_STYLES = ("pixel-art", "open-peeps", "big-smile", "lorelei", "miniavs", "toon-head", "notionists")
_SEED_RANK = {name: i for i, name in enumerate(sorted(RECIPE_STYLES))} | {"bigheads": len(RECIPE_STYLES)}


def sample_style(style: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    spec = STYLES[style]
    rng = np.random.default_rng([seed, 2000 + _SEED_RANK[style]])
    return [sample_avatar(spec, rng, f"{style}-{seed}-{i:04d}") for i in range(n)]
