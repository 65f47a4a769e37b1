"""Side-by-side sheets for the fidelity work: real renders and two or more generators, same tags and seeds.

    python bench/sharpness_sheet.py --data data/builtin64 --models default,runs/X/checkpoints/generator-N.safetensors \
        --labels "shipped;candidate" -o docs/generator_sheets/session7

One PNG per tag set (the issue's accessory checks: hat, ribbon, glasses with a visible eye colour, and a plain
portrait). Row 1: real renders from the data with those tags; then one row per model, the same 8 characters
(tags and noise from seeds 0-7). Pixels are enlarged x3 (nearest neighbour) so outlines can be judged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charforge import sampling  # noqa: E402
from charforge.data.packed import load_packed  # noqa: E402
from charforge.metrics.sharpness import laplacian_variance  # noqa: E402

SETS = [
    "silver hair, red eyes, hat",
    "aqua hair, yellow eyes, ribbon",
    "black hair, purple eyes, glasses",
    "blonde hair, green eyes, glasses",
    "pink hair, blue eyes",
]


def _row(images: np.ndarray, scale: int) -> np.ndarray:
    big = images.repeat(scale, axis=1).repeat(scale, axis=2)  # (N, sS, sS, 3)
    pad = np.full((len(big), big.shape[1], 2, 3), 255, np.uint8)
    return np.concatenate([np.concatenate([b, p], axis=1) for b, p in zip(big, pad)], axis=1)


def _label(row: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (row.shape[1], 14), "white")
    ImageDraw.Draw(band).text((2, 1), text, fill="black")
    return np.concatenate([np.asarray(band), row], axis=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", required=True, help="comma list: shipped names or generator files")
    ap.add_argument("--labels", default="", help="row labels separated by ; (default: the model ids)")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--scale", type=int, default=3)
    a = ap.parse_args(argv)
    from PIL import Image

    data = load_packed(a.data)
    bundles = [sampling.load_generator(m.strip()) for m in a.models.split(",")]
    labels = [s.strip() for s in a.labels.split(";")] if a.labels else [b.model_id for b in bundles]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    schema = bundles[0].schema
    tags_all = np.asarray(data.tags)
    for spec in SETS:
        want = [schema.tags.index(t.strip()) for t in spec.split(",")]
        rows_idx = np.flatnonzero(tags_all[:, want].all(axis=1))[: a.n]
        real = np.asarray(data.images[np.sort(rows_idx)])
        rows = [
            _label(_row(real, a.scale), f"real renders (sharpness {laplacian_variance(real).mean():.0f})")
        ]
        for b, lab in zip(bundles, labels):
            imgs, _, _ = sampling.characters_for_request(b, spec, a.n, 0)
            rows.append(
                _label(_row(imgs, a.scale), f"{lab} (sharpness {laplacian_variance(imgs).mean():.0f})")
            )
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        path = out / (spec.replace(", ", "_").replace(" ", "_") + ".png")
        Image.fromarray(np.concatenate(rows, axis=0)).save(path)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
