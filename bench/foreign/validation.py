"""Validation sets: foreign styles used to *choose* settings (a rule, a threshold, a weighting), never reported
as results. The test sets of mapping.py stay untouched by such choices; a setting chosen here is then measured
once on them.

Kept apart from mapping.STYLES on purpose: mapping.sample_style seeds each style by its rank among
mapping.STYLES, and the sets' folder names carry a digest of mapping.py, so adding a style there would change
the test sets. Labels follow mapping.py's rules (hair colour: nearest frozen creator colour in CIELAB,
ambiguous hexes never sampled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mapping import SHORT, StyleSpec, _c, sample_avatar

LENGTH_NA = {"long_hair": None, "short_hair": None, "twintails": 0, "ponytail": 0, "drill_hair": 0}


def _micah() -> StyleSpec:
    hair = (
        [_c({"hair": [h]}, 1.0, hat=0, **SHORT) for h in ("fonze", "mrT", "dannyPhantom", "pixie")]
        # dougFunny is a bald head with a few curls on top: too few hair pixels to name a colour
        + [_c({"hair": ["dougFunny"]}, 0.5, True, hat=0, **LENGTH_NA)]
        + [_c({"hair": ["full"]}, 1.5, hat=0, **LENGTH_NA)]
        + [_c({"hair": ["turban"]}, 0.6, True, hat=1, **LENGTH_NA)]
    )
    glasses = (
        _c({"glassesProbability": 0}, 0.6, glasses=0),
        _c({"glassesProbability": 100, "glasses": ["round"]}, 0.2, glasses=1),
        _c({"glassesProbability": 100, "glasses": ["square"]}, 0.2, glasses=1),
    )
    return StyleSpec(
        "micah",
        "CC BY 4.0",
        "Micah Lanier",
        "https://www.figma.com/community/file/829741575478342595",
        "hairColor",
        (
            "f9c9b6",
            "d2eff3",
            "000000",
            "e0ddff",
            "f4d150",
            "ac6651",
            "9287ff",
            "ffeba4",
            "fc909f",
            "ffedef",
            "6bd9e9",
            "77311d",
            "ffffff",
        ),  # fmt: skip
        {"hair": tuple(hair), "glasses": glasses},
        fixed={"facialHairProbability": 0, "earringsProbability": 0},
        notes="Validation only. Turban is a hat that hides the hair; dougFunny (a few curls) has no hair colour "
        "label; mrClean (bald) is not drawn; 'full' is not labelled for length.",
    )


STYLES: dict[str, StyleSpec] = {s.name: s for s in (_micah(),)}


def sample_style(style: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    spec = STYLES[style]
    rng = np.random.default_rng([seed, 1000 + sorted(STYLES).index(style)])
    return [sample_avatar(spec, rng, f"{style}-{seed}-{i:04d}") for i in range(n)]
