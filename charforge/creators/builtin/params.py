"""The built-in creator's parameter space, its sampling distribution and its parameter -> tag table.

Units: the portrait lives on a normalised square [-1, 1] x [-1, 1] (x right, y down). Head parts use a
head frame with the face centre at (0, 0); lengths below are in those units unless a doc says otherwise.
"""

from __future__ import annotations

from charforge.core.space import Categorical, Continuous, ParamSpace
from charforge.core.tags import EYE_COLORS, HAIR_COLORS

SKIN_TONES = ("porcelain", "light", "warm", "tan", "brown")
BACKGROUNDS = ("sky", "peach", "mint", "lavender", "cream", "slate")
CLOTHING_COLORS = ("navy", "black", "white", "red", "green", "gray")
HAT_COLORS = ("black", "red", "navy", "brown", "white")
RIBBON_COLORS = ("red", "pink", "blue", "yellow", "white", "green")
GLASSES_COLORS = ("black", "red", "brown", "blue")

CATEGORICAL = [
    Categorical("hair_color", HAIR_COLORS, "brown", "hair colour (one of the 13 hair-colour tags)"),
    Categorical("eye_color", EYE_COLORS, "blue", "iris colour (one of the 10 eye-colour tags)"),
    Categorical(
        "hair_length",
        ("short", "medium", "long"),
        "medium",
        "short: jaw, medium: shoulders, long: past the chest",
    ),
    Categorical("hair_extra", ("none", "twintails", "ponytail", "drill"), "none", "tied or curled hair"),
    Categorical("bangs_style", ("straight", "swept", "parted", "choppy"), "straight", "fringe shape"),
    Categorical("face_shape", ("round", "oval", "pointed"), "oval", "jaw line"),
    Categorical("eye_shape", ("round", "almond", "droopy", "sharp"), "round", "eye outline"),
    Categorical("mouth", ("closed", "smile", "open", "open_smile"), "closed", "mouth expression"),
    Categorical("blush", ("off", "on"), "off", "pink cheeks"),
    Categorical("hat", ("none", "beret", "witch", "cap"), "none", "headwear"),
    Categorical("hat_color", HAT_COLORS, "black", "headwear colour"),
    Categorical("ribbon", ("off", "on"), "off", "a bow in the hair"),
    Categorical(
        "ribbon_color",
        RIBBON_COLORS,
        "red",
        "bow colour (swapped for a contrasting one if too close to the hair)",
    ),
    Categorical("glasses", ("none", "round", "square"), "none", "glasses frame shape"),
    Categorical("glasses_color", GLASSES_COLORS, "black", "frame colour"),
    Categorical("skin_tone", SKIN_TONES, "light", "skin colour"),
    Categorical("background", BACKGROUNDS, "sky", "background colour"),
    Categorical("clothing_style", ("sailor", "shirt", "sweater"), "sailor", "collar and top"),
    Categorical("clothing_color", CLOTHING_COLORS, "navy", "top colour"),
    Categorical("ahoge", ("off", "on"), "off", "a single antenna strand on top of the head"),
]

CONTINUOUS = [
    Continuous("eye_size", 0.85, 1.2, 1.0, "scale of both eyes (1 = 0.2 wide)"),
    Continuous("eye_spacing", 0.17, 0.23, 0.2, "eye centre distance from the face centre line"),
    Continuous("eye_height", 0.0, 0.07, 0.04, "eye centre below the face centre"),
    Continuous("eye_tilt", -10.0, 10.0, 0.0, "extra eye tilt in degrees, + raises the outer corner"),
    Continuous("iris_size", 0.78, 0.95, 0.86, "iris width as a fraction of the eye width"),
    Continuous("pupil_size", 0.3, 0.55, 0.42, "pupil size as a fraction of the iris"),
    Continuous("highlight_size", 0.7, 1.3, 1.0, "eye highlight scale"),
    Continuous("face_width", 0.33, 0.39, 0.36, "half width of the face at the cheeks"),
    Continuous("chin_length", 0.34, 0.44, 0.39, "distance from the cheek line down to the chin"),
    Continuous("mouth_width", 0.8, 1.25, 1.0, "mouth scale"),
    Continuous("mouth_height", 0.23, 0.27, 0.25, "mouth position below the face centre"),
    Continuous("nose_size", 0.6, 1.4, 1.0, "nose scale"),
    Continuous("brow_angle", -15.0, 15.0, 0.0, "brow angle in degrees, + raises the inner end"),
    Continuous("brow_height", 0.0, 0.05, 0.025, "gap between the eye top and the brow"),
    Continuous("bangs_length", -0.1, 0.05, -0.02, "fringe edge offset, + covers more forehead"),
    Continuous("hair_length_fine", -1.0, 1.0, 0.0, "fine-tunes the length within the length class"),
    Continuous("hair_volume", 0.0, 1.0, 0.5, "how far the hair puffs out around the head"),
    Continuous("tail_length", 0.7, 1.0, 0.85, "length of twintails, ponytail or drills, relative"),
    Continuous("head_tilt", -8.0, 8.0, 0.0, "head roll in degrees, + tilts to the viewer's right"),
    Continuous("head_x", -0.05, 0.05, 0.0, "horizontal head offset"),
    Continuous("head_scale", 0.93, 1.05, 1.0, "head size relative to the frame"),
    Continuous("hair_hue", -1.0, 1.0, 0.0, "hair hue jitter (-1..1 = -/+ 0.03 turn)"),
    Continuous("hair_lightness", -1.0, 1.0, 0.0, "hair lightness jitter (-1..1 = darker..lighter)"),
    Continuous("eye_hue", -1.0, 1.0, 0.0, "iris hue jitter (-1..1 = -/+ 0.03 turn)"),
    Continuous("eye_lightness", -1.0, 1.0, 0.0, "iris lightness jitter"),
    Continuous("skin_lightness", -1.0, 1.0, 0.0, "skin lightness jitter"),
    Continuous("blush_strength", 0.65, 1.0, 0.85, "blush opacity when blush is on"),
    Continuous("neck_width", 0.085, 0.115, 0.1, "half width of the neck"),
    Continuous("shoulder_width", 0.66, 0.86, 0.76, "half width of the shoulders"),
    Continuous("bg_gradient", 0.0, 1.0, 0.5, "strength of the vertical background gradient"),
]


def make_space(styles: tuple[str, ...] | None = None) -> ParamSpace:
    """The builtin space; with `styles`, one more categorical, `style`, at the end (space "builtin-styles")."""
    if styles is None:
        return ParamSpace(list(CATEGORICAL), list(CONTINUOUS), name="builtin")
    from charforge.creators.builtin.styles import STYLE_HELP

    style = Categorical(
        "style",
        tuple(styles),
        styles[0],
        "render style: " + "; ".join(f"{s}: {STYLE_HELP[s]}" for s in styles),
    )
    return ParamSpace([*CATEGORICAL, style], list(CONTINUOUS), name="builtin-styles")


# Sampling probabilities of the dataset distribution; parameters not listed are uniform.
# Chosen so each independent tag is on for roughly 25-35 % of samples.
SAMPLE_PROBS: dict[str, tuple[float, ...]] = {
    "hair_length": (0.3, 0.4, 0.3),
    "hair_extra": (0.25, 0.25, 0.25, 0.25),
    "mouth": (0.5, 0.2, 0.2, 0.1),
    "blush": (0.7, 0.3),
    "hat": (0.7, 0.1, 0.1, 0.1),
    "ribbon": (0.7, 0.3),
    "glasses": (0.7, 0.15, 0.15),
    "ahoge": (0.8, 0.2),
}

# Which tags each option of a tag-bearing categorical parameter shows.
OPTION_TAGS: dict[str, dict[str, tuple[str, ...]]] = {
    "hair_color": {c: (f"{c} hair",) for c in HAIR_COLORS},
    "eye_color": {c: (f"{c} eyes",) for c in EYE_COLORS},
    "hair_length": {"short": ("short hair",), "medium": (), "long": ("long hair",)},
    "hair_extra": {
        "none": (),
        "twintails": ("twintails",),
        "ponytail": ("ponytail",),
        "drill": ("drill hair",),
    },
    "mouth": {
        "closed": (),
        "smile": ("smile",),
        "open": ("open mouth",),
        "open_smile": ("smile", "open mouth"),
    },
    "blush": {"off": (), "on": ("blush",)},
    "hat": {"none": (), "beret": ("hat",), "witch": ("hat",), "cap": ("hat",)},
    "ribbon": {"off": (), "on": ("ribbon",)},
    "glasses": {"none": (), "round": ("glasses",), "square": ("glasses",)},
}
