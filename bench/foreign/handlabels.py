"""Hand labels for the sets that no generator labels: photos shipped by PyPI packages, Wesnoth portraits and the
Ren'Py visual-novel sprites.

Each entry: tag -> 1/0 (tags not given are not applicable, never scored), plus optional "hair color"
(one of the 13 charforge colours) and "hair family" (when only the coarse family is certain).
Labelled by looking at each picture (2026-12-01). "hat" counts any headwear that covers the top of the
head (hats, caps, helmets, mail coifs); hoods are left unlabelled.
"""

from __future__ import annotations

from typing import Any

# ---- photos from packages --------------------------------------------------------------------------
# skimage.data.astronaut(): Eileen Collins, NASA portrait, public domain.
# matplotlib sample grace_hopper.jpg: Rear Admiral Grace Hopper, US Navy portrait, public domain.
# skimage.data.chelsea(): a cat (Stefan van der Walt, public domain per skimage's data README); no face.
PHOTOS: dict[str, dict[str, Any]] = {
    "astronaut": {
        "hair color": "brown",  # light brown / dark blonde: family black/brown as the brief says
        "long hair": 0,
        "short hair": 1,
        "glasses": 0,
        "hat": 0,
        "smile": 1,
        "face": 1,
    },
    "grace_hopper": {
        "hair family": "white/grey/silver",  # grey-white hair under the cap: white, gray or silver
        "glasses": 1,
        "hat": 1,
        "long hair": 0,
        "face": 1,
    },
    "chelsea": {"face": 0},  # a cat: import should find no human or anime face
}
PHOTO_LICENCES = {
    "astronaut": "public domain (NASA), shipped in scikit-image",
    "grace_hopper": "public domain (US Navy), shipped in matplotlib",
    "chelsea": "public domain (scikit-image data), shipped in scikit-image",
}

# ---- Battle for Wesnoth unit portraits (Debian wesnoth-1.16-data, GPL-2+) -------------------------------
# Painted busts/figures of fantasy units, 400x400 RGBA; faces are small in the frame. Path relative to
# data/core/images/portraits/. Glasses: none of these wear glasses (0 for all listed).
_H, _E = "humans/", "elves/"
WESNOTH: dict[str, dict[str, Any]] = {
    _H + "bowman.png": {"hat": 1},
    _H + "duelist.png": {"hat": 1},
    _H + "fencer.png": {"hair color": "blonde", "long hair": 1, "short hair": 0, "hat": 0},
    _H + "footpad+female.png": {"hair color": "brown", "hat": 0},
    _H + "footpad.png": {"hair color": "brown", "short hair": 1, "long hair": 0, "hat": 0},
    _H + "general.png": {"hat": 1},
    _H + "halberdier.png": {"hat": 1},
    _H + "javelineer.png": {"hat": 1},
    _H + "lieutenant.png": {"hat": 1},
    _H + "longbowman.png": {"hat": 1},
    _H + "mage-arch+female.png": {"hair color": "brown", "hat": 0},
    _H + "mage-light+female.png": {"hat": 1},
    _H + "mage-light.png": {"hat": 1},
    _H + "mage-red.png": {"hair color": "brown", "short hair": 1, "long hair": 0, "hat": 0},
    _H + "mage-silver+female.png": {"hair color": "brown", "short hair": 1, "long hair": 0, "hat": 0},
    _H + "mage-silver.png": {"hat": 0},
    _H + "mage-white+female.png": {"hair color": "blonde", "hat": 0},
    _H + "marshal.png": {"hat": 1},
    _H + "master-at-arms.png": {"hat": 1},
    _H + "master-bowman.png": {"hat": 1},
    _H + "necromancer+female.png": {"hair color": "purple", "long hair": 1, "short hair": 0, "hat": 0},
    _H + "necromancer.png": {"hair family": "white/grey/silver", "hat": 0},
    _H + "peasant.png": {"hat": 1},
    _H + "pikeman.png": {"hat": 1},
    _H + "ruffian.png": {"hair color": "brown", "short hair": 1, "long hair": 0, "hat": 0},
    _H + "sergeant.png": {"hat": 1},
    _H + "spearman.png": {"hat": 1},
    _H + "swordsman.png": {"hat": 1},
    _H + "thief+female.png": {"hair family": "white/grey/silver", "long hair": 1, "short hair": 0, "hat": 0},
    _H + "thief.png": {"hair family": "white/grey/silver", "hat": 0},
    _H + "thug.png": {"hair color": "brown", "short hair": 1, "long hair": 0, "hat": 0},
    _H + "trapper.png": {"hat": 1},
    _E + "archer+female.png": {"hair color": "blonde", "hat": 1},
    _E + "archer.png": {"hat": 1},
    _E + "captain.png": {"hair color": "blonde", "hat": 0},
    _E + "druid.png": {"hair color": "blonde", "long hair": 1, "short hair": 0, "hat": 0},
    _E + "high-lord.png": {"hair color": "blonde", "hat": 0},
    _E + "lady.png": {"hair color": "blonde", "long hair": 1, "short hair": 0, "hat": 0},
    _E + "lord.png": {"hair color": "blonde", "long hair": 1, "short hair": 0, "hat": 0},
    _E + "marksman+female.png": {"hair color": "blonde", "long hair": 1, "short hair": 0, "hat": 0},
    _E + "ranger.png": {"hat": 1},
    _E + "sorceress.png": {"hair color": "blonde", "long hair": 1, "short hair": 0, "hat": 0},
}
WESNOTH_LICENCE = "GPL-2+ (Battle for Wesnoth art, Debian package wesnoth-1.16-data 1:1.16.9-1)"
WESNOTH_PACKAGE = "wesnoth-1.16-data"
WESNOTH_PORTRAITS = "usr/share/games/wesnoth/1.16/data/core/images/portraits"


# ---- Ren'Py visual-novel sprites (human-drawn anime art) ------------------------------------------------------
# The character sprites of Debian's renpy-demo (Eileen, Lucy) and renpy-thequestion (Sylvie): tall RGBA sprites cut
# at the thigh, 3 characters in 13 expressions and outfits, so 13 pictures but only 3 independent heads of hair.
# Labelled 2026-12-07 by looking at each sprite. Eileen's salmon-red bob sits between red and pink, Sylvie's
# orange-to-auburn gradient between orange and brown: only the family is given where a person could name either.
# Hairbands are not hats and not ribbons; Sylvie's collar ribbon and neckerchief are not hair ribbons (unlabelled).
RENPY_PACKAGES = ("renpy-demo", "renpy-thequestion")
RENPY_LICENCE = (
    "Expat (Ren'Py, Tom Rothamel; the Debian packages' copyright files list no other terms for the art)"
)
_EILEEN = {"hair family": "red/pink", "short hair": 1, "long hair": 0, "glasses": 0, "hat": 0}
_LUCY = {"hair color": "black", "long hair": 1, "short hair": 0, "glasses": 1, "hat": 0}
_SYLVIE = {"hair family": "blonde/orange", "long hair": 1, "short hair": 0, "glasses": 0, "hat": 0}
RENPY: dict[str, dict[str, Any]] = {
    "eileen_concerned.png": {**_EILEEN, "smile": 0, "open mouth": 0},
    "eileen_happy.png": {**_EILEEN, "smile": 1, "open mouth": 0},
    "eileen_vhappy.png": {**_EILEEN, "smile": 1, "open mouth": 1},
    "lucy_happy.png": {**_LUCY, "open mouth": 0},
    "lucy_mad.png": {**_LUCY, "smile": 0, "open mouth": 1},
    "sylvie_blue_giggle.png": {**_SYLVIE, "smile": 1},
    "sylvie_blue_normal.png": {**_SYLVIE, "open mouth": 0},
    "sylvie_blue_smile.png": {**_SYLVIE, "smile": 1, "open mouth": 1},
    "sylvie_blue_surprised.png": {**_SYLVIE, "smile": 0, "open mouth": 1},
    "sylvie_green_giggle.png": {**_SYLVIE, "smile": 1},
    "sylvie_green_normal.png": {**_SYLVIE, "open mouth": 0},
    "sylvie_green_smile.png": {**_SYLVIE, "smile": 1, "open mouth": 1},
    "sylvie_green_surprised.png": {**_SYLVIE, "smile": 0, "open mouth": 1},
}
