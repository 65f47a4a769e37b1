"""Write the foreign training set for the tag estimator: DiceBear styles of training_styles.py (never a test or
validation style) rendered through npm, as 64 px centre squares (what `data import --faces none` stores), with
labels from their options (1 shown, 0 not shown, NaN unknown) in the format `charforge tagger train --extra`
reads. Also writes a contact sheet (first images of each style with their labels) and a licence list.

    python bench/foreign/training_set.py -o /tmp/cf_data/foreign_train.npz --n 600

The images are not committed anywhere: the licences (CC0 1.0 and CC BY 4.0, read from each package's own
metadata into the .json beside the .npz) allow it, but they are rebuilt from the pinned npm packages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

import mapping  # noqa: E402
import run as foreign  # noqa: E402
import training_styles  # noqa: E402


def labels_row(item: dict) -> np.ndarray:
    """mapping.TAGS order; None -> NaN."""
    return np.array([np.nan if item["labels"][t] is None else float(item["labels"][t]) for t in mapping.TAGS])


def build(n: int, seed: int, size: int, styles: list[str]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    cache = foreign.cache_dir()
    images, labels, sources = [], [], []
    for style in styles:
        d = foreign.build_set(f"dicebear-{style}", n, seed, cache)
        manifest = json.loads((d / "manifest.json").read_text())
        items = manifest["items"]
        imgs, _ = foreign.load_set_images(d, items, size=size)
        images.append(imgs)
        labels.append(np.stack([labels_row(it) for it in items]))
        sources.append(
            {
                "style": style,
                "n": len(items),
                "folder": str(d),
                "licence": manifest["licence"],
                "attribution": manifest["attribution"],
                "versions": manifest["versions"],
            }
        )
    return np.concatenate(images), np.concatenate(labels).astype(np.float32), sources


def sheet(path: Path, images: np.ndarray, labels: np.ndarray, per_style: int, n: int, n_styles: int) -> None:
    from PIL import Image, ImageDraw

    cell = 96
    out = Image.new("RGB", (cell * per_style, (cell + 12) * n_styles), "white")
    d = ImageDraw.Draw(out)
    hair = [mapping.TAGS.index(f"{c} hair") for c in mapping.HAIR_COLORS]
    g, h = mapping.TAGS.index("glasses"), mapping.TAGS.index("hat")
    for s in range(n_styles):
        for i in range(per_style):
            k = s * n + i
            out.paste(
                Image.fromarray(images[k]).resize((cell, cell), Image.NEAREST), (i * cell, s * (cell + 12))
            )
            row = labels[k]
            colour = "-" if np.isnan(row[hair]).any() else mapping.HAIR_COLORS[int(np.argmax(row[hair]))]
            mark = lambda v, c: "-" if np.isnan(v) else (c if v else c.lower())  # noqa: E731
            d.text(
                (i * cell + 2, s * (cell + 12) + cell),
                f"{colour} {mark(row[g], 'G')}{mark(row[h], 'H')}",
                fill="black",
            )
    out.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "-o", "--out", type=Path, required=True, help="the .npz to write (a .json and .png beside it)"
    )
    ap.add_argument("--n", type=int, default=600, help="avatars per style")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument(
        "--style",
        action="append",
        choices=sorted(training_styles.STYLES),
        help="default: the seven the shipped files learned from (training_styles.RECIPE_STYLES)",
    )
    args = ap.parse_args(argv)
    styles = args.style or list(training_styles.RECIPE_STYLES)
    images, labels, sources = build(args.n, args.seed, args.size, styles)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(tmp, images=images, labels=labels, tags=np.array(mapping.TAGS))
    tmp.replace(out)
    known = ~np.isnan(labels)
    summary = {
        t: {"known": int(known[:, j].sum()), "shown": int(np.nansum(labels[:, j]))}
        for j, t in enumerate(mapping.TAGS)
    }
    meta = {"command": " ".join(["python", "bench/foreign/training_set.py", *(argv or sys.argv[1:])]),
            "n_images": len(images), "sources": sources, "labels": summary}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    sheet(out.with_suffix(".png"), images, labels, min(14, args.n), args.n, len(styles))
    print(f"{len(images)} images from {len(styles)} styles -> {out} (+ .json, .png)")
    for t in ("hat", "glasses"):
        print(f"  {t}: {summary[t]['shown']} shown of {summary[t]['known']} labelled")
    print(f"  hair colour labelled: {int(known[:, 0].sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
