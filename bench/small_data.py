"""The DCGAN study's small-data case (seed 001): a few hundred images of one character.

Builds the dataset the documented recipe trains on (docs/own_art.md, "From scratch on a few hundred images"):
280 renders of one built-in character whose expression, blush, background, head pose and brows vary, as a
packed dataset with its derived tags.

    python bench/small_data.py -o data/one280 [--n 280]
    charforge train --data data/one280 --preset dcgan-64 --epochs 400 --set augment=translation,cutout --out runs/one
"""

from __future__ import annotations

import argparse

import numpy as np

from charforge.creators import get_creator
from charforge.data.packed import write_packed

CHARACTER = dict(
    hair_color="pink",
    eye_color="blue",
    hair_length="long",
    hair_extra="twintails",
    hat="none",
    glasses="none",
    ribbon="on",
)
VARY = (
    ("head_tilt", -8, 8),
    ("head_x", -0.05, 0.05),
    ("head_scale", 0.95, 1.05),
    ("brow_angle", -15, 15),
    ("eye_tilt", -6, 6),
    ("bg_gradient", 0, 1),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--n", type=int, default=280)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    c = get_creator("builtin")
    rng = np.random.default_rng(0)
    base = c.space.to_dicts(c.space.sample(1, np.random.default_rng(11)))[0] | CHARACTER
    rows = []
    for _ in range(a.n):
        d = dict(base)
        d["mouth"] = ["closed", "smile", "open", "open_smile"][rng.integers(4)]
        d["blush"] = ["off", "on"][rng.integers(2)]
        d["background"] = ["sky", "peach", "mint", "lavender", "cream", "slate"][rng.integers(6)]
        for k, lo, hi in VARY:
            d[k] = float(rng.uniform(lo, hi))
        rows.append(d)
    batch = c.space.from_dicts(rows)
    images = c.render(batch, a.size)
    write_packed(
        a.out,
        images,
        c.derive_tags(batch).astype(np.uint8),
        c.schema,
        params=c.space.encode(batch).astype(np.float32),
        space=c.space,
    )
    print(f"wrote {a.out}: {images.shape[0]} images of {a.size} px")


if __name__ == "__main__":
    main()
