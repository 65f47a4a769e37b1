"""Leave one training style out: does the tag estimator's probe (charforge/tagger/probe.py) carry a tag from the
drawing styles it was fitted on to one it has not seen?

For each training style that shows the tag, the probe's logistic regression (scikit-learn, L2, classes balanced,
standardised features) is fitted on the other training styles plus the creator's renders and scored on the
held-out style: ROC AUC, and recall / false-positive rate / F1 at the regression's own decision point. Only the
training styles are used (bench/foreign/training_styles.py): no validation or test image.

    python bench/foreign/training_set.py -o /tmp/foreign_train7.npz --n 600 --seed 0
    charforge data build --styles all --n 3000 --seed 555 --size 64 -o /tmp/probe_styles
    python bench/foreign/probe_loso.py --train /tmp/foreign_train7.npz --creator /tmp/probe_styles

Features come from charforge's content cache (the same as `charforge tagger probe`), so a second run is fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

CROP_SETS = (("full",), ("top",), ("full", "top"), ("full", "top", "eyes"))
CS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def styles_of(train_npz: Path) -> list[str]:
    """Per-image style names, from the .json training_set.py writes beside the .npz."""
    meta = json.loads(train_npz.with_suffix(".json").read_text())
    return [s["style"] for s in meta["sources"] for _ in range(s["n"])]


def held_out_scores(x, y, style, held, c):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score

    known = ~np.isnan(y)
    fit, test = known & (style != held), known & (style == held)
    mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-6
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    model.fit((x[fit] - mu) / sd, y[fit])
    z, truth = model.decision_function((x[test] - mu) / sd), y[test]
    said = z >= 0
    return {
        "n": int(test.sum()),
        "positives": int(truth.sum()),
        "auc": float(roc_auc_score(truth, z)),
        "f1": float(f1_score(truth, said)),
        "recall": float(said[truth == 1].mean()),
        "fpr": float(said[truth == 0].mean()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True, help="training_set.py's .npz (its .json beside it)")
    ap.add_argument("--creator", type=Path, required=True, help="a packed dataset of creator renders")
    ap.add_argument("--tags", default="hat,glasses")
    ap.add_argument("--min-positives", type=int, default=20, help="a style is held out only with this many")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)

    from charforge.core.tags import make_girls_moe_schema
    from charforge.tagger.probe import probe_features
    from charforge.train.thresholds import load_labelled

    schema = make_girls_moe_schema()
    train, creator = load_labelled(args.train, schema), load_labelled(args.creator, schema)
    style = np.array(styles_of(args.train) + ["creator"] * len(creator.images))
    if len(style) != len(train.images) + len(creator.images):
        raise SystemExit(f"{args.train}: its .json lists {len(style) - len(creator.images)} images, the .npz holds "
                         f"{len(train.images)}; rebuild both with training_set.py")  # fmt: skip
    labels = np.concatenate([train.labels, creator.labels])
    feats = {
        c: np.concatenate([probe_features(s.images, (c,), cache=True, desc=f"{s.name} {c}") for s in (train, creator)])
        for c in sorted({c for cs in CROP_SETS for c in cs})
    }  # fmt: skip
    rows = []
    for tag in args.tags.split(","):
        y = labels[:, schema.index(tag)]
        held = [
            s
            for s in dict.fromkeys(style[: len(train.images)])
            if np.nansum(y[style == s]) >= args.min_positives
        ]
        for crops in CROP_SETS:
            x = np.concatenate([feats[c] for c in crops], axis=1)
            for c in CS:
                per = {h: held_out_scores(x, y, style, h, c) for h in held}
                row = {"tag": tag, "crops": "+".join(crops), "C": c, "per_style": per,
                       "mean_auc": float(np.mean([r["auc"] for r in per.values()])),
                       "mean_f1": float(np.mean([r["f1"] for r in per.values()]))}  # fmt: skip
                rows.append(row)
                cells = " ".join(f"{h}: AUC {r['auc']:.2f} F1 {r['f1']:.2f}" for h, r in per.items())
                print(f"{tag:8s} {row['crops']:15s} C {c:<7g} mean AUC {row['mean_auc']:.3f} F1 {row['mean_f1']:.3f} | {cells}", flush=True)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
