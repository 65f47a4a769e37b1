"""A few of your labels against the estimator alone: `data import --tags PART.csv --estimate-tags`, where the tags file
labels only some images, learns the folder's own hats and glasses (charforge.tagger.fewshot). This measures it as a
user would meet it: K images of a set are labelled (drawn at random, `--seeds` repeats the draw), the rest are
estimated, and hat / glasses are scored on the rest only, with and without learning, beside chance.

    python bench/foreign/fewshot.py --set SETDIR --k 16,32,64 --seeds 0,1,2 --out results.md

SETDIR is a built set in the foreign cache (bench/foreign/run.py builds them; its manifest.json holds the labels).
Images are what `data import --faces none` stores (run.load_set_images).
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


def f1(truth: np.ndarray, said: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, said, zero_division=0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--set", type=Path, action="append", required=True, help="a built set folder (repeatable)"
    )
    ap.add_argument("--k", default="16,32,64", help="labelled images per draw")
    ap.add_argument("--seeds", default="0,1,2", help="draws of the labelled images")
    ap.add_argument("--tags", default="hat,glasses")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--size", type=int, default=None, help="px the probe reads each band at (default: fewshot.SIZE)"
    )
    ap.add_argument(
        "--pick",
        choices=("random", "suggested"),
        default="random",
        help="which images are labelled: at random, or those fewshot.suggest proposes",
    )
    ap.add_argument("--out", type=Path, help="write the table (markdown) and a .json beside it")
    args = ap.parse_args(argv)

    import run as foreign
    import torch

    from charforge.tagger import fewshot
    from charforge.tagger.net import estimate_tagger_path, load_tagger

    torch.set_num_threads(args.threads)
    if args.size:
        fewshot.SIZE = args.size
    tagger = load_tagger(estimate_tagger_path())
    tags = args.tags.split(",")
    cols = [list(tagger.schema.tags).index(t) for t in tags]
    ks = [int(v) for v in args.k.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    rows, lines = [], []
    lines.append("| set | tag | n (with) | K labelled | estimator F1 / bal. acc. | with learning F1 / bal. acc. | "
                 "learned in | always-yes F1 |")  # fmt: skip
    lines.append("|---|---|---|---|---|---|---|---|")
    for set_dir in args.set:
        items = json.loads((set_dir / "manifest.json").read_text())["items"]
        for tag, col in zip(tags, cols):
            known = [it for it in items if it["labels"].get(tag) is not None]
            truth_all = np.array([int(it["labels"][tag]) for it in known])
            if len(known) < 20 or truth_all.sum() < 4:
                continue
            images, _ = foreign.load_set_images(set_dir, known)
            est = np.asarray(tagger.predict_tags(images))[:, col].astype(bool)
            feats = fewshot.features(images, desc=f"{set_dir.name} features")
            for k in ks:
                if k >= len(known) - 10:
                    continue
                per = []
                for seed in seeds:
                    if args.pick == "random":
                        lab = np.sort(np.random.default_rng([seed, k]).choice(len(known), k, replace=False))
                    else:
                        lab = fewshot.suggest(feats, k, seed=seed)
                    rest = np.setdiff1d(np.arange(len(known)), lab)
                    res = fewshot.learn([tag], feats[lab], truth_all[lab, None], est[lab, None], feats[rest])[
                        0
                    ]
                    truth = truth_all[rest].astype(bool)
                    said = (res.proba >= 0.5) if res.used else est[rest]
                    per.append(
                        {
                            "seed": seed,
                            "used": res.used,
                            "why": res.why,
                            "est_f1": f1(truth, est[rest]),
                            "est_bal": fewshot.balanced_accuracy(truth, est[rest]),
                            "f1": f1(truth, said),
                            "bal": fewshot.balanced_accuracy(truth, said),
                            "always_yes_f1": f1(truth, np.ones_like(truth)),
                        }
                    )
                m = {
                    key: float(np.mean([p[key] for p in per]))
                    for key in ("est_f1", "est_bal", "f1", "bal", "always_yes_f1")
                }
                used = sum(p["used"] for p in per)
                rows.append({"set": set_dir.name, "tag": tag, "n": len(known), "positives": int(truth_all.sum()),
                             "k": k, "draws": per, **m})  # fmt: skip
                lines.append(
                    f"| {set_dir.name} | {tag} | {len(known)} ({int(truth_all.sum())}) | {k} | "
                    f"{m['est_f1']:.2f} / {m['est_bal']:.2f} | {m['f1']:.2f} / {m['bal']:.2f} | "
                    f"{used} of {len(per)} draws | {m['always_yes_f1']:.2f} |"
                )
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
