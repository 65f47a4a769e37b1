"""Does a part reader find hats it never saw as masks? (issue 13, rule P in results/session15/rule.txt)

For each reader (a parts .safetensors, or "shipped"), the share of the picture it marks hat is scored against the
hat labels of the validation sets: DiceBear micah (bench/foreign/validation.py) and the fresh seed-1 slices of the
training styles that draw hats (pixel-art, open-peeps, notionists, bigheads). No reader has had any of these hats
as a mask (part_masks.py marks hair and glasses only); the no-hat styles (big-smile, lorelei, miniavs, toon-head)
and held-out creator renders give the false-positive side. No test set is read.

    python bench/foreign/hat_reader.py shipped=shipped S1=/tmp/reader_S1/parts.safetensors \
        [--creator /tmp/styles64] [--out results.json]

Images are what `data import --faces none` stores (the centre square, or a standing sprite's head square), at
64 px, as bench/tagger_foreign.py reads them. Writes a Markdown table to stdout: ROC AUC per family and pooled,
and recall / false-positive rate at share thresholds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

HAT_FAMILIES = {  # set name -> (style, n, seed)
    "micah": ("micah", 200, 0),
    "pixel-art": ("pixel-art", 100, 1),
    "open-peeps": ("open-peeps", 100, 1),
    "notionists": ("notionists", 100, 1),
    "bigheads": ("bigheads", 100, 1),
}
NO_HAT = {s: (s, 100, 1) for s in ("big-smile", "lorelei", "miniavs", "toon-head")}
THRESHOLDS = (0.001, 0.003, 0.01, 0.02, 0.04, 0.08)


def load_family(style: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 64, 64, 3) uint8, hat labels (N,) float with NaN unknown) of one cached DiceBear set."""
    import run as foreign

    set_dir = foreign.build_dicebear(style, n, seed, foreign.cache_dir())
    items = json.loads((set_dir / "manifest.json").read_text())["items"]
    images, _ = foreign.load_set_images(set_dir, items, 64)
    y = np.array([np.nan if it["labels"].get("hat") is None else it["labels"]["hat"] for it in items], float)
    return images, y


def load_creator(path: Path, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Held-out creator renders (the tag estimator's seed-0 split) and their hat labels."""
    from charforge.data.packed import load_packed
    from charforge.train.tagger import split_indices

    data = load_packed(path)
    _, held = split_indices(len(data), 0.1, 0)
    held = np.sort(held[:n])
    col = list(data.schema.tags).index("hat")
    return np.asarray(data.images[held]), data.tags[held, col].astype(float)


def auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    k = ~np.isnan(y)
    if len(set(y[k].tolist())) < 2:
        return None
    return float(roc_auc_score(y[k], s[k]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("readers", nargs="+", help="NAME=PATH (PATH 'shipped' = charforge/weights/parts_default)")
    ap.add_argument("--creator", type=Path, help="a packed builtin-styles dataset (held-out renders scored)")
    ap.add_argument("--out", type=Path, help="write per-image shares and labels here (.npz)")
    args = ap.parse_args(argv)

    from charforge.tagger.parts import default_parts_path, load_partseg

    sets = {**HAT_FAMILIES, **NO_HAT}
    data = {name: load_family(*spec) for name, spec in sets.items()}
    if args.creator:
        data["creator"] = load_creator(args.creator)
    saved = {}
    for spec in args.readers:
        name, _, path = spec.partition("=")
        reader = load_partseg(default_parts_path() if path in ("", "shipped") else path)
        shares = {k: reader.hat(imgs) for k, (imgs, _) in data.items()}
        print(f"\n## {name} ({path or 'shipped'})\n")
        print(
            "| set | n | hats | AUC | " + " | ".join(f"share >= {t}: recall / FPR" for t in THRESHOLDS) + " |"
        )
        print("|---|---|---|---|" + "---|" * len(THRESHOLDS))
        pooled_y, pooled_s = [], []
        for k, (_, y) in data.items():
            s = shares[k]
            known = ~np.isnan(y)
            if k in HAT_FAMILIES:
                pooled_y.append(y[known])
                pooled_s.append(s[known])
            a = auc(y, s)
            cells = []
            for t in THRESHOLDS:
                said = s[known] >= t
                pos, neg = y[known] == 1, y[known] == 0
                rec = f"{said[pos].mean():.2f}" if pos.any() else "-"
                cells.append(f"{rec} / {said[neg].mean():.2f}")
            print(f"| {k} | {known.sum()} | {int(np.nansum(y))} | {'-' if a is None else f'{a:.3f}'} | "
                  + " | ".join(cells) + " |")  # fmt: skip
            saved[f"{name}/{k}/share"], saved[f"{name}/{k}/y"] = s, y
        py, ps = np.concatenate(pooled_y), np.concatenate(pooled_s)
        print(
            f"\npooled over the five hat families: n {len(py)}, hats {int(py.sum())}, AUC {auc(py, ps):.3f}"
        )
    if args.out:
        np.savez_compressed(args.out, **saved)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
