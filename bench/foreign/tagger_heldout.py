"""In-domain check of tag estimators: held-out creator renders, clean and under the held-out style shift.

    python bench/foreign/tagger_heldout.py estimate=charforge/weights/tagger_estimate.safetensors \\
        H=/tmp/cf6/runs/H --data cel=/tmp/cf_data/builtin64 --data styles=/tmp/cf_data/styles64 \\
        --parts-cache /tmp/cf_data/parts --out /tmp/heldout

The companion of bench/tagger_foreign.py: the foreign sets are the test, these numbers are where settings are
chosen (issue 13 point 3; the selection rule is in charforge/weights/tagger_estimate.md). Per dataset (a packed
built-in creator dataset, plain or multi-style) it takes the tagger trainer's held-out split (seed 0, 10 %) and
scores every tagger on

* **clean**: the held-out renders as they are: mean / min per-tag precision, mean recall (each file's own
  independent-tag threshold: 0.25 uncalibrated, 0.5 calibrated), hair and eye colour accuracy, glasses and hat
  F1, smile precision; on a multi-style dataset also hair colour accuracy per render style;
* **shifted**: the same renders recoloured and under the held-out style shift
  (`tagger_augment.shifted_validation`, seed 0: a median-cut palette and pixelation that training never uses);
* **framed**: the same renders recoloured and framed outside the first estimator's zoom range (half zoomed in
  1.5-2x to the face, half out to 0.4-0.55x), then tone and JPEG (`framed_validation`);
* the abstention rate of `predict_tags(abstain=True)` on both (hair colour, independent tags).

Tags are paired by name, so a 34-tag tagger is scored on a 40-tag multi-style dataset (the style group is
not scored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _f1(pred: np.ndarray, true: np.ndarray) -> float | None:
    tp = int((pred & true).sum())
    den = 2 * tp + int((pred & ~true).sum()) + int((~pred & true).sum())
    return 2 * tp / den if den else None


def score(tagger, images: np.ndarray, tags: np.ndarray, style: np.ndarray | None = None) -> dict:
    """Metrics of one tagger on images whose `tags` are in the tagger's schema (unlabelled groups all-zero)."""
    from charforge.tagger.net import decide_or_unknown, decide_tags
    from charforge.tagger.report import per_tag_precision_recall

    schema = tagger.schema
    proba = tagger.predict_proba(images)  # once: both decisions below read it (as predict_tags would)
    pred = np.asarray(decide_tags(proba, schema, tagger.threshold)).astype(bool)
    true = tags > 0
    rows = per_tag_precision_recall(pred, true, schema)
    prec = [r["precision"] for r in rows if r["precision"] is not None]
    rec = [r["recall"] for r in rows if r["recall"] is not None]
    out: dict = {
        "n": len(images),
        "mean_precision": float(np.mean(prec)),
        "min_precision": float(np.min(prec)),
        "min_precision_tag": min(
            (r for r in rows if r["precision"] is not None), key=lambda r: r["precision"]
        )["tag"],
        "mean_recall": float(np.mean(rec)),
    }
    for g, sl in zip(schema.groups, schema.group_slices()):
        has = true[:, sl].any(axis=1)
        ok = pred[has, sl].argmax(axis=1) == true[has, sl].argmax(axis=1)
        out[f"{g.name} accuracy"] = float(ok.mean()) if has.any() else None
        out[f"{g.name} labelled"] = int(has.sum())
        if style is not None and g.name == "hair color":
            out["hair color accuracy per style"] = {
                name: float(ok[style[has] == k].mean())
                for k, name in enumerate(STYLE_NAMES)
                if (style[has] == k).any()
            }
    for t in ("glasses", "hat"):
        j = schema.index(t)
        out[f"{t} F1"] = _f1(pred[:, j], true[:, j])
    out["smile precision"] = next(r["precision"] for r in rows if r["tag"] == "smile")
    if tagger.calibrated:
        _, unknown = decide_or_unknown(proba, schema, tagger.min_confidence)
        isl = schema.independent_slice
        hair = schema.group_slices()[0]
        out["abstained hair"] = float(unknown[:, hair.start].mean())
        out["abstained independent"] = float(unknown[:, isl].mean())
    return out


STYLE_NAMES: tuple[str, ...] = ()


def load_heldout(data_dir: str, parts_cache: str | None, seed: int = 0):
    """(images, tags, style codes or None) clean and shifted, tags in the dataset's schema."""
    from charforge.data.packed import load_packed
    from charforge.train import tagger_augment
    from charforge.train.tagger import split_indices

    data = load_packed(data_dir)
    _, held = split_indices(len(data), 0.1, seed)
    images, tags = np.asarray(data.images[held]), np.asarray(data.tags[held], np.float32)
    parts = tagger_augment.cached_part_renders(data, held, parts_cache)
    style = parts.style
    s_images, s_tags = tagger_augment.shifted_validation(parts, data.schema, seed=seed)
    f_images, f_tags = framed_validation(parts, data.schema, seed=seed)
    return data.schema, {
        "clean": (images, tags, style),
        "shifted": (s_images, s_tags, style),
        "framed": (f_images, f_tags, style),
    }


def framed_validation(parts, schema, seed: int = 0, batch: int = 250):
    """Held-out renders recoloured (0.7 per part) and framed outside the shipped estimator's training range
    (zoom 0.55-1.45): odd images zoomed in 1.5-2.0 towards the face (a head filling the frame), even images
    zoomed out 0.4-0.55 onto the background (a small head in a larger picture); then tone and JPEG."""
    import torch

    from charforge.train import tagger_augment as ta

    rng = np.random.default_rng([seed, 5151])
    g = torch.Generator().manual_seed(seed + 5151)
    ims, tgs = [], []
    for start in range(0, len(parts), batch):
        idx = np.arange(start, min(start + batch, len(parts)))
        img, tags = ta.recolour(parts, idx, rng, schema, p_part=0.7)
        x = torch.from_numpy(img).permute(0, 3, 1, 2) * 2 - 1
        near = torch.from_numpy(idx % 2 == 1)
        x = torch.where(
            near.view(-1, 1, 1, 1), ta.frame(x, g, None, (1.5, 2.0)), ta.frame(x, g, None, (0.4, 0.55))
        )
        x = ta.jpeg(ta.tone(x, g), g)
        ims.append(((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
        tgs.append(tags)
    return np.concatenate(ims), np.concatenate(tgs)


def main(argv: list[str] | None = None) -> int:
    global STYLE_NAMES
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "taggers",
        nargs="+",
        help="NAME=PATH (a tagger .safetensors or training folder)[#VIEW,VIEW: test-time views][@PARTS: a part "
        "reader file for the hair colour and glasses, or @none; by default only the shipped estimator gets the "
        "shipped reader]",
    )
    ap.add_argument("--data", action="append", required=True, help="NAME=FOLDER of a packed creator dataset")
    ap.add_argument(
        "--parts-cache", default=None, help="folder caching the part renders of the held-out images"
    )
    ap.add_argument(
        "--splits",
        default="clean,shifted,framed",
        help="comma list of the held-out variants to score (default all three)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    wanted = [x.strip() for x in args.splits.split(",") if x.strip()]
    if not wanted or any(x not in ("clean", "shifted", "framed") for x in wanted):
        ap.error(f"--splits {args.splits!r}: choose from clean, shifted, framed")

    import torch

    from charforge.creators.builtin.styles import STYLES
    from charforge.tagger.net import load_tagger

    STYLE_NAMES = STYLES
    torch.set_num_threads(args.threads)
    taggers = {}
    for spec in args.taggers:
        name, _, path = spec.partition("=")
        path, _, views = path.partition("#")  # NAME=PATH#flip,zoom:1.25: test-time views
        path, _, part_spec = path.partition("@")  # NAME=PATH@PARTS: a part reader file, or none
        taggers[name] = load_tagger(path, parts=False if part_spec == "none" else (part_spec or None))
        if views:
            taggers[name].views = tuple(views.split(","))
    res: dict = {
        "command": "python bench/foreign/tagger_heldout.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": {},
    }
    for spec in args.data:
        dname, _, folder = spec.partition("=")
        schema, splits = load_heldout(folder, args.parts_cache)
        for name, tagger in taggers.items():
            mine, theirs = tagger.schema.column_map(schema)
            for split, (images, tags, style) in splits.items():
                if split not in wanted:
                    continue
                t = np.zeros((len(tags), len(tagger.schema)), np.float32)
                t[:, mine] = tags[:, theirs]
                res["results"].setdefault(name, {})[f"{dname}/{split}"] = score(tagger, images, t, style)
    lines = [
        "| tagger | images | mean precision (min, tag) | mean recall | hair colour acc | eye colour acc | "
        "glasses F1 | hat F1 | smile precision | abstained: hair / independent |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    n = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, by in res["results"].items():
        for key, m in by.items():
            lines.append(
                f"| {name} | {key} | {m['mean_precision']:.3f} ({m['min_precision']:.3f}, {m['min_precision_tag']}) | "
                f"{m['mean_recall']:.3f} | {n(m.get('hair color accuracy'))} | {n(m.get('eye color accuracy'))} | "
                f"{n(m['glasses F1'])} | {n(m['hat F1'])} | {n(m['smile precision'])} | "
                f"{n(m.get('abstained hair'))} / {n(m.get('abstained independent'))} |"
            )
    per_style = [
        f"- {name} {key}: " + ", ".join(f"{s} {v:.3f}" for s, v in m["hair color accuracy per style"].items())
        for name, by in res["results"].items()
        for key, m in by.items()
        if "hair color accuracy per style" in m
    ]
    md = "\n".join(lines + ["", "hair colour accuracy per render style:", *per_style]) + "\n"
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tagger_heldout.json").write_text(json.dumps(res, indent=1))
        (args.out / "tagger_heldout.md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
