"""Sheets of a multi-style generator: one row per requested style (same seeds, so the same noise in every
row), and a row that interpolates the style tokens from cel shading to pixel art.

    python bench/styles_sheet.py --model runs/styles_ft -o docs/styles/generated.png

Uses the library's own sampling (`charforge.sampling.generate` and `interpolate`), as `charforge generate
--tags "<style tag>"` and `charforge interpolate --tags-a ... --tags-b ...` do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", default="", help="tags fixed in every row too, e.g. 'blonde hair'")
    args = ap.parse_args()

    from PIL import Image

    from charforge.creators.builtin.styles import STYLE_TAGS, STYLES
    from charforge.sampling import characters_for_request, interpolate, load_generator, sample_tags_for_seeds

    bundle = load_generator(args.model)
    rows = []
    for style in STYLES:
        tags = ", ".join(t for t in (STYLE_TAGS[style], args.extra) if t)
        images, _, _ = characters_for_request(bundle, tags, args.n, args.seed)  # same seeds in every row
        rows.append(np.concatenate(list(images), axis=1))
    ends = []
    for t in ("cel shading", "pixel art"):
        tags = ", ".join(x for x in (t, args.extra) if x)
        ends.append((args.seed, sample_tags_for_seeds(bundle, bundle.schema.parse(tags), [args.seed])[0]))
    frames = interpolate(bundle, ends[0], ends[1], args.n)
    rows.append(np.concatenate(list(frames), axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"wrote {args.out}: rows {', '.join(STYLES)}, then cel shading -> pixel art (seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
