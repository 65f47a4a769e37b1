"""Where do copies and different characters fall in the duplicate check's measures? (charforge.data.dedupe)

Copies: built-in renders (128 px, flat and gradient backgrounds) re-encoded, resized and re-graded the ways a
picture is copied: JPEG q20/q50/q85, 0.4x/0.75x/1.5x round trips, brightness +-20, contrast 0.8/1.2, gamma
0.8/1.25. A person calls every one of them the same picture.
Different characters: every pair of pictures in the given folders whose perceptual hashes are within the import's
threshold (the candidates the patch check has to confirm). In a DiceBear set rendered from distinct seeds, two
pictures are the same picture only when every option is the same; the script lists those with the largest patch
difference 0 apart.

Prints, per group, the share that `same_picture` calls the same, and the spread of each measure; writes a JSON
with every pair's measures.
Usage: PYTHONPATH=. python bench/dedupe_calibration.py [FOLDER ...] [--n 40] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from charforge.core.images import load_image
from charforge.data.dedupe import (
    DEFAULT_THRESHOLD,
    coarse_difference,
    detail_thumb,
    hamming_to_many,
    patch_differences,
    phash,
    same_picture,
)


def measures(a: np.ndarray, b: np.ndarray) -> dict:
    p = patch_differences(a, b)
    return {
        "same": bool(same_picture(a, b)[0]),
        "top": round(float(p.max()), 2),
        "p50": round(float(np.percentile(p, 50)), 2),
        "p90": round(float(np.percentile(p, 90)), 2),
        "coarse": round(coarse_difference(a, b), 2),
    }


def copies(img: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    pil = Image.fromarray(img)
    for q in (20, 50, 85):
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=q)
        out[f"jpeg{q}"] = np.asarray(Image.open(buf).convert("RGB"))
    h, w = img.shape[:2]
    for s in (0.4, 0.75, 1.5):
        small = pil.resize((max(8, int(w * s)), max(8, int(h * s))), Image.Resampling.BICUBIC)
        out[f"resize{s}"] = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC))
    f = img.astype(np.float32)
    for d in (-20, 20):
        out[f"bright{d:+d}"] = np.clip(f + d, 0, 255).astype(np.uint8)
    for c in (0.8, 1.2):
        out[f"contrast{c}"] = np.clip((f - 128) * c + 128, 0, 255).astype(np.uint8)
    for g in (0.8, 1.25):
        out[f"gamma{g}"] = np.clip(255 * (f / 255) ** g, 0, 255).astype(np.uint8)
    return out


def renders(n: int, seed: int = 0) -> list[np.ndarray]:
    from charforge.creators import get_creator

    creator = get_creator("builtin")
    return list(creator.render(creator.sample(n, np.random.default_rng(seed)), 128))


def folder_pairs(folder: Path, threshold: int) -> list[dict]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    imgs = [load_image(p) for p in files]
    hashes = np.array([phash(im) for im in imgs], dtype=np.uint64)
    thumbs = [detail_thumb(im) for im in imgs]
    rows = []
    for i in range(1, len(files)):
        d = hamming_to_many(int(hashes[i]), hashes[:i])
        for j in np.flatnonzero(d <= threshold):
            rows.append(
                {
                    "a": str(files[i].relative_to(folder)),
                    "b": str(files[int(j)].relative_to(folder)),
                    "distance": int(d[j]),
                    **measures(thumbs[i], thumbs[int(j)]),
                }
            )
    return rows


def summary(name: str, rows: list[dict]) -> str:
    if not rows:
        return f"{name}: no pairs"
    same = sum(r["same"] for r in rows)
    parts = [f"{name}: {len(rows)} pairs, called the same picture {same} ({same / len(rows):.0%})"]
    for k in ("top", "p50", "p90", "coarse"):
        v = np.array([r[k] for r in rows])
        parts.append(
            f"  {k:6s} min {v.min():6.1f}  5% {np.percentile(v, 5):6.1f}  median {np.median(v):6.1f}"
            f"  95% {np.percentile(v, 95):6.1f}  max {v.max():6.1f}"
        )
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", type=Path)
    ap.add_argument("--n", type=int, default=40, help="built-in renders to copy (default 40)")
    ap.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    result = {"copies": [], "folders": {}}
    for i, img in enumerate(renders(a.n)):
        t = detail_thumb(img)
        for kind, c in copies(img).items():
            result["copies"].append({"render": i, "kind": kind, **measures(detail_thumb(c), t)})
    print(summary("copies of built-in renders", result["copies"]))
    for kind in sorted({r["kind"] for r in result["copies"]}):
        rows = [r for r in result["copies"] if r["kind"] == kind]
        bad = [r["render"] for r in rows if not r["same"]]
        if bad:
            print(f"  {kind}: not called the same for renders {bad}")
    for folder in a.folders:
        rows = folder_pairs(folder, a.threshold)
        result["folders"][str(folder)] = rows
        print(summary(f"hash-close pairs in {folder.name}", rows))
        ident = [r for r in rows if r["top"] == 0]
        print(f"  identical pictures (largest patch difference 0): {len(ident)}")
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
