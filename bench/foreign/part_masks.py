"""Pixel masks of hair and glasses on the foreign *training* styles, for the part reader (issue 13).

    python bench/foreign/part_masks.py -o /tmp/foreign_masks.npz --n 300 --seed 0

The part reader (charforge/tagger/parts.py) learned where hair and glasses are from the built-in creator's part
renders: two renders that differ in one colour option mark that part's pixels. DiceBear gives the same for free:
every avatar of bench/foreign/training_styles.py is rendered three times from the same seed,
  1. as sampled,
  2. with its hair colour option set to a far-away colour: the pixels that change are the hair,
  3. (wearers only) with the glasses turned off: the pixels that change are the glasses.
DiceBear draws each part from the seed in a fixed order, so changing one option leaves the rest of the drawing
as it was (checked on the sheet this writes). Where a style ties another part to the hair colour (an eyebrow),
that part is marked as hair too; open-peeps never gets a hair mask (its colour option tints only accents), and
a style without glasses has a known all-empty glasses mask.

Writes FILE.npz: `images` uint8 (N, S, S, 3) (the centre square at S px, as `data import --faces none`
stores), `masks` uint8 (N, 2, S, S) with 1 part / 0 not / 255 unknown, `parts` ["hair", "glasses"]; FILE.json
(licences, counts) and FILE.png (a sheet: image, hair mask, glasses mask). Training data only: never a test set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import mapping  # noqa: E402
import run as foreign  # noqa: E402
import training_styles  # noqa: E402

PARTS = ("hair", "glasses")
RENDER = 256  # px the avatars are drawn at; masks are found there and reduced
DIFF = 30  # a pixel belongs to the changed part when a channel moves by more than this (0-255)
KEEP = {"hair": 0.5, "glasses": 0.25}  # share of a reduced pixel that must be marked (glasses are thin lines)
UNKNOWN = 255
# styles whose hair colour option does not colour the hair (open-peeps tints accents; notionists has no such
# option, so its twin is the same picture): their hair masks stay unknown, never "known: no hair"
NO_HAIR_MASK = ("open-peeps", "notionists")


def _glasses_off(style: str) -> dict[str, int] | None:
    """The option that turns this style's glasses off (its probability key at 0), or None: no glasses slot."""
    spec = training_styles.STYLES[style]
    for ch in spec.slots.get("glasses", ()):
        if ch.labels.get("glasses") == 1:
            key = next(k for k in ch.options if k.endswith("Probability"))
            return {key: 0}
    return None


def jobs_for(style: str, n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(avatars as sampled, render jobs: each avatar, its hair-recoloured twin, its glasses-off twin)."""
    spec = training_styles.STYLES[style]
    items = training_styles.sample_style(style, n, seed)
    off = _glasses_off(style)
    jobs = []
    for it in items:
        base = {k: it[k] for k in ("style", "seed", "background", "options")}
        stem = it["file"].removesuffix(".png")
        jobs.append({**base, "file": f"{stem}.png"})
        if style not in NO_HAIR_MASK:
            opts = {**it["options"], spec.hair_option: [mapping.far_colour(it["hair_hex"])]}
            jobs.append({**base, "options": opts, "file": f"{stem}-hair.png"})
        if off is not None and it["labels"].get("glasses") == 1:
            jobs.append({**base, "options": {**it["options"], **off}, "file": f"{stem}-noglasses.png"})
    return items, jobs


def _reduce(mask: np.ndarray, size: int, keep: float) -> np.ndarray:
    k = mask.shape[0] // size
    return (mask.reshape(size, k, size, k).mean(axis=(1, 3)) > keep).astype(np.uint8)


def masks_of(img_dir: Path, item: dict, style: str, size: int) -> np.ndarray:
    """(2, size, size) uint8 masks for one avatar: 1 / 0 / UNKNOWN."""
    from charforge.core.images import load_image

    stem = item["file"].removesuffix(".png")
    base = load_image(img_dir / f"{stem}.png").astype(np.int16)
    out = np.full((2, size, size), UNKNOWN, np.uint8)
    hair = img_dir / f"{stem}-hair.png"
    if hair.is_file():
        changed = np.abs(load_image(hair).astype(np.int16) - base).max(axis=-1) > DIFF
        out[0] = _reduce(changed, size, KEEP["hair"])
    nog = img_dir / f"{stem}-noglasses.png"
    if nog.is_file():
        changed = np.abs(load_image(nog).astype(np.int16) - base).max(axis=-1) > DIFF
        out[1] = _reduce(changed, size, KEEP["glasses"])
    elif item["labels"].get("glasses") == 0:
        out[1] = 0  # known: no glasses drawn
    return out


def build(n: int, seed: int, size: int, styles: list[str]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    npm_dir = foreign.ensure_npm(foreign.cache_dir())
    images, masks, sources = [], [], []
    for style in styles:
        items, jobs = jobs_for(style, n, seed)
        with tempfile.TemporaryDirectory() as tmp:
            img_dir = Path(tmp) / "images"
            (Path(tmp) / "jobs.json").write_text(json.dumps({"size": RENDER, "jobs": jobs}))
            subprocess.run(
                ["node", str(npm_dir / "dicebear.mjs"), str(Path(tmp) / "jobs.json"), str(img_dir)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            meta = json.loads((img_dir / "styles.json").read_text())
            imgs, _ = foreign.load_set_images(img_dir.parent, items, size=size)
            images.append(imgs)
            masks.append(np.stack([masks_of(img_dir, it, style, size) for it in items]))
        spec = training_styles.STYLES[style]
        m = meta["styles"].get(style, {})
        sources.append(
            {
                "style": style,
                "n": len(items),
                "licence": (m.get("license") or {}).get("name", spec.licence),
                "creator": m.get("creator", spec.creator),
                "versions": meta["versions"],
            }
        )
        print(f"  {style}: {len(items)} avatars, {len(jobs)} renders", flush=True)
    return np.concatenate(images), np.concatenate(masks), sources


def sheet(path: Path, images: np.ndarray, masks: np.ndarray, per_style: int, n: int, n_styles: int) -> None:
    from PIL import Image

    s = images.shape[1]
    rows = [i * n + k for i in range(n_styles) for k in range(per_style)]
    canvas = Image.new("RGB", (3 * s * 6, s * -(-len(rows) // 6)), "white")
    for j, r in enumerate(rows):
        x0, y0 = (j % 6) * 3 * s, (j // 6) * s
        canvas.paste(Image.fromarray(images[r]), (x0, y0))
        for p in range(2):
            m = masks[r, p]
            rgb = np.where(m[..., None] == UNKNOWN, [128, 128, 128], np.where(m[..., None] == 1, 255, 0))
            canvas.paste(Image.fromarray(rgb.astype(np.uint8)), (x0 + (p + 1) * s, y0))
    canvas.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, required=True, help="the .npz to write (.json and .png beside)")
    ap.add_argument("--n", type=int, default=300, help="avatars per style")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument(
        "--style",
        action="append",
        choices=sorted(training_styles.STYLES),
        help="default: the seven the shipped files learned from (training_styles.RECIPE_STYLES)",
    )
    args = ap.parse_args(argv)
    if shutil.which("node") is None:
        print(
            "part_masks: node is not installed (npm's DiceBear renders the avatars); install nodejs",
            file=sys.stderr,
        )
        return 2
    styles = args.style or list(training_styles.RECIPE_STYLES)
    images, masks, sources = build(args.n, args.seed, args.size, styles)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(tmp, images=images, masks=masks, parts=np.array(PARTS))
    tmp.replace(out)
    summary = {
        p: {
            "known": int((masks[:, k, 0, 0] != UNKNOWN).sum()),
            "with_pixels": int(((masks[:, k] == 1).reshape(len(masks), -1).any(axis=1)).sum()),
            "mean_share_where_present": float(
                np.mean([(m == 1).mean() for m in masks[:, k] if (m == 1).any()] or [0.0])
            ),
        }
        for k, p in enumerate(PARTS)
    }
    meta = {"command": " ".join(["python", "bench/foreign/part_masks.py", *(argv or sys.argv[1:])]),
            "n_images": len(images), "sources": sources, "masks": summary}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    sheet(out.with_suffix(".png"), images, masks, min(6, args.n), args.n, len(styles))
    print(f"{len(images)} images from {len(styles)} styles -> {out} (+ .json, .png)")
    for p, v in summary.items():
        print(
            f"  {p}: known on {v['known']}, drawn on {v['with_pixels']}, mean share {v['mean_share_where_present']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
