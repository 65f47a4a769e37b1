"""Per-style tag accuracy of taggers on fresh multi-style renders (issue 16 point 5).

    python bench/styles_tagger.py styles=charforge/weights/tagger_styles.safetensors \\
        cel_only=charforge/weights/tagger_default.safetensors --n 600 --seed 99

Renders `--n` characters per style from a seed no training set used (datasets are built from seed 0), and
scores each tagger per style by tag name (a 34-tag tagger simply has no style column): hair colour and eye
colour accuracy, the mean precision and recall of the 11 independent tags (over tags with at least 10
positives), and for a tagger with the style group, style accuracy. A uniform guess is the chance line:
1/13 hair colours, 1/10 eye colours, 1/6 styles.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_flags() -> str:
    from charforge.core.device import cpu_flags as flags
    from charforge.core.device import cpu_name

    keep = sorted(f for f in flags() if f.startswith(("avx", "amx", "fma", "sse4")))
    return f"{cpu_name()}; {' '.join(keep)}"


def score_style(tagger, images: np.ndarray, truth: np.ndarray, schema) -> dict:
    from charforge.tagger.net import decide_tags

    proba = np.asarray(tagger.predict_proba(images))
    tags = list(tagger.schema.tags)
    pred = decide_tags(proba, tagger.schema)
    out: dict[str, float | None] = {}
    for group in ("hair color", "eye color", "style"):
        g = next((gr for gr in schema.groups if gr.name == group), None)
        tg = next((gr for gr in tagger.schema.groups if gr.name == group), None)
        if g is None or tg is None:
            out[group + " acc"] = None
            continue
        cols = [tags.index(t) for t in g.tags]
        true = truth[:, [schema.index(t) for t in g.tags]].argmax(1)
        out[group + " acc"] = float((proba[:, cols].argmax(1) == true).mean())
    precisions, recalls = [], []
    for t in schema.independent:
        if t not in tags or truth[:, schema.index(t)].sum() < 10:
            continue
        y, p = truth[:, schema.index(t)] > 0, pred[:, tags.index(t)] > 0
        recalls.append(float((y & p).sum() / y.sum()))
        if p.sum():
            precisions.append(float((y & p).sum() / p.sum()))
    out["independent precision"] = float(np.mean(precisions)) if precisions else None
    out["independent recall"] = float(np.mean(recalls)) if recalls else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("taggers", nargs="+", help="name=path.safetensors")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="writes styles_tagger.md and .json here"
    )
    args = ap.parse_args()

    from charforge.creators.builtin import BuiltinCreator
    from charforge.creators.builtin.styles import STYLES
    from charforge.tagger.net import load_tagger

    multi = BuiltinCreator(styles=STYLES)
    base = BuiltinCreator()
    params = base.sample(args.n, np.random.default_rng(args.seed))
    taggers = {}
    for spec in args.taggers:
        name, _, path = spec.partition("=")
        taggers[name] = load_tagger(path)
    rows = []
    t0 = time.time()
    for style in STYLES:
        images = BuiltinCreator(style=style).render(params, args.size)
        j = multi.space.cat_index("style")
        cat = np.insert(params.cat, j, STYLES.index(style), axis=1)
        from charforge.core.space import ParamBatch

        truth = multi.derive_tags(ParamBatch(cat, params.cont))
        for name, tg in taggers.items():
            rows.append({"style": style, "tagger": name, **score_style(tg, images, truth, multi.schema)})
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_flags(),
        "n_per_style": args.n,
        "seed": args.seed,
        "size": args.size,
        "seconds": round(time.time() - t0, 1),
        "taggers": {n: str(p.partition("=")[2]) for n, p in zip(taggers, args.taggers)},
    }
    (args.out / "styles_tagger.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        f"## Taggers per render style (fresh renders, seed {args.seed}, {args.n} per style, {args.size} px)",
        "",
        f"{meta['date']}, {meta['cpu']}. Chance: hair colour 0.077, eye colour 0.100, style 0.167.",
        "",
        "| style | tagger | hair colour acc | eye colour acc | style acc | independent precision | independent recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['style']} | {r['tagger']} | {fmt(r['hair color acc'])} | {fmt(r['eye color acc'])} | {fmt(r['style acc'])} | "
            f"{fmt(r['independent precision'])} | {fmt(r['independent recall'])} |"
        )
    (args.out / "styles_tagger.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
