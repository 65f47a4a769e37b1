"""Score any tagger file on the foreign-style sets of bench/foreign (test data only: never train on them).

    python bench/tagger_foreign.py judge=charforge/weights/tagger_default.safetensors \\
        estimate=charforge/weights/tagger_estimate.safetensors --n 200 --out /tmp/foreign_taggers

Reads the sets, images and labels through bench/foreign/run.py and mapping.py (read-only: `build_set`,
`load_set_images`, `multiclass_metrics`, `binary_metrics`), so the images are exactly what the benchmark's
tagger part scores (the centre square at 64 px). Two decision rules per tagger:

* **forced**: always answers (argmax per group; an independent tag is on at --threshold, default 0.25 for an
  uncalibrated tagger as in bench/foreign, 0.5 for a calibrated one);
* **abstain**: `charforge.tagger.net.decide_or_unknown` with the file's own min_confidence; accuracy / F1 are
  over the answered images and the abstention rate is reported next to them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "foreign"))
sys.path.insert(0, str(ROOT))

import mapping  # noqa: E402
import run as foreign  # noqa: E402

SETS = ("dicebear-adventurer", "dicebear-avataaars", "dicebear-personas", "wesnoth", "photos")
VALIDATION_SETS = ("dicebear-micah",)  # for choosing settings (bench/foreign/validation.py), never results
SCORED_TAGS = ("glasses", "hat", "long hair", "short hair", "smile", "open mouth", "blush")


def _scored_items(items):
    return [it for it in items if any(v is not None for v in it["labels"].values()) or it.get("hair_family")]


def score(tagger, images: np.ndarray, items: list[dict], threshold: float | None) -> dict:
    from charforge.tagger.net import decide_or_unknown, decide_tags, keep_likelier_of_conflicts

    proba = np.asarray(tagger.predict_proba(images))
    tags = list(tagger.schema.tags)
    hair_idx = [tags.index(f"{c} hair") for c in mapping.HAIR_COLORS]
    thr = threshold if threshold is not None else (0.5 if getattr(tagger, "calibrated", False) else 0.25)
    # pictures unlike anything the estimator learned from (charforge.tagger.familiar): every tag unknown
    far = (
        getattr(tagger, "last_unfamiliar", None) if getattr(tagger, "familiarity", None) is not None else None
    )
    dec, unknown = decide_or_unknown(
        proba, tagger.schema, getattr(tagger, "min_confidence", None), unfamiliar=far
    )
    # as `data import --estimate-tags` decides: of a conflict pair (long / short hair) only the likelier one
    dec = keep_likelier_of_conflicts(dec, proba, tagger.schema)
    forced = keep_likelier_of_conflicts(decide_tags(proba, tagger.schema, thr), proba, tagger.schema)
    pred_colour = [mapping.HAIR_COLORS[int(np.argmax(r[hair_idx]))] for r in proba]
    hair_known = ~unknown[:, hair_idx[0]]
    truth_c = [it.get("hair_color") for it in items]
    truth_f = [it.get("hair_family") for it in items]
    pred_f = [mapping.FAMILY_OF[c] for c in pred_colour]
    out = {
        "threshold": thr,
        "forced": {
            "hair_color_13": mapping.multiclass_metrics(truth_c, pred_colour),
            "hair_family": mapping.multiclass_metrics(truth_f, pred_f),
            "tags": {},
        },
        "abstain": {
            "min_confidence": getattr(tagger, "min_confidence", None),
            "hair_color_13": mapping.multiclass_metrics(
                [t if k else None for t, k in zip(truth_c, hair_known)], pred_colour
            ),
            "hair_family": mapping.multiclass_metrics(
                [t if k else None for t, k in zip(truth_f, hair_known)], pred_f
            ),
            "hair_abstained": mapping._ratio(
                int(sum(1 for t, k in zip(truth_c, hair_known) if t is not None and not k)),
                sum(1 for t in truth_c if t is not None),
            ),
            "tags": {},
        },
        "predicted_hair_counts": {c: pred_colour.count(c) for c in sorted(set(pred_colour))},
        "unfamiliar": _unfamiliar_split(far, truth_c, pred_colour, items, forced, tags),
    }
    for t in SCORED_TAGS:
        truth = [it["labels"].get(t) for it in items]
        if all(v is None for v in truth):
            continue
        j = tags.index(t)
        forced_pred = [int(v) for v in forced[:, j]]
        out["forced"]["tags"][t] = mapping.binary_metrics(truth, forced_pred)
        out["forced"]["tags"][t]["pairs"] = [(int(v), q) for v, q in zip(truth, forced_pred) if v is not None]
        known = ~unknown[:, j]
        kept = [v if k else None for v, k in zip(truth, known)]
        m = mapping.binary_metrics(kept, [int(x) for x in dec[:, j]])
        m["pairs"] = [(int(v), int(q)) for v, q in zip(kept, dec[:, j]) if v is not None]
        n_lab = sum(v is not None for v in truth)
        m["abstained"] = mapping._ratio(
            sum(1 for v, k in zip(truth, known) if v is not None and not k), n_lab
        )
        out["abstain"]["tags"][t] = m
    return out


def _unfamiliar_split(far, truth_c, pred_colour, items, forced, tags) -> dict | None:
    """Forced hair colour accuracy and glasses / hat accuracy on the pictures the familiarity model keeps and on
    those it flags (None for a tagger without one): does "unfamiliar" pick out the wrong answers?"""
    if far is None:
        return None
    far = np.asarray(far, bool)
    out = {"flagged": mapping._ratio(int(far.sum()), len(far))}
    for side, mask in (("kept", ~far), ("flagged", far)):
        ok = [t == p for t, p, m in zip(truth_c, pred_colour, mask) if m and t is not None]
        out[f"hair_color_13_{side}"] = mapping._ratio(int(sum(ok)), len(ok))
        for t in ("glasses", "hat"):
            j = tags.index(t)
            ok = [int(it["labels"].get(t)) == int(forced[i, j]) for i, it in enumerate(items)
                  if mask[i] and it["labels"].get(t) is not None]  # fmt: skip
            out[f"{t}_accuracy_{side}"] = mapping._ratio(int(sum(ok)), len(ok))
    return out


def _pool(results: list[dict], rule: str) -> dict:
    def acc(key):
        k = sum(r[rule][key]["accuracy"]["k"] for r in results if r[rule][key]["accuracy"])
        n = sum(r[rule][key]["accuracy"]["n"] for r in results if r[rule][key]["accuracy"])
        return mapping._ratio(k, n)

    pooled = {"hair_color_13": acc("hair_color_13"), "hair_family": acc("hair_family"), "tags": {}}
    names = {t for r in results for t in r[rule]["tags"]}
    for t in sorted(names):
        ms = [r[rule]["tags"][t] for r in results if t in r[rule]["tags"]]
        tp, fp, fn, tn = (sum(m[k] for m in ms) for k in ("tp", "fp", "fn", "tn"))
        pos = tp + fn
        base = pos / max(1, tp + fp + fn + tn)
        pairs = np.array([pr for m in ms for pr in m.get("pairs", [])], dtype=bool).reshape(-1, 2)
        pooled["tags"][t] = {
            "n": tp + fp + fn + tn,
            "positives": pos,
            "f1": mapping.f1_from_counts(tp, fp, fn) if pos else None,
            "f1_ci95": mapping.bootstrap_f1(pairs[:, 0], pairs[:, 1]) if len(pairs) else None,
            "precision": mapping._ratio(tp, tp + fp),
            "recall": mapping._ratio(tp, tp + fn),
            "false_positive_rate": mapping._ratio(fp, fp + tn),
            "chance_f1_always_yes": 2 * base / (1 + base) if pos else None,
            "chance_f1_random_at_base_rate": base if pos else None,
        }
    if rule == "abstain":
        k = sum(r["abstain"]["hair_abstained"]["k"] for r in results)
        n = sum(r["abstain"]["hair_abstained"]["n"] for r in results)
        pooled["hair_abstained"] = mapping._ratio(k, n)
        for t in pooled["tags"]:
            ms = [r["abstain"]["tags"][t]["abstained"] for r in results if t in r["abstain"]["tags"]]
            pooled["tags"][t]["abstained"] = mapping._ratio(sum(m["k"] for m in ms), sum(m["n"] for m in ms))
    return pooled


def _f(r) -> str:
    if not r or r.get("value") is None:
        return "-"
    return f"{r['value']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] ({r['k']}/{r['n']})"


def _f1(m) -> str:
    if not m or m.get("f1") is None:
        return "-"
    ci = m.get("f1_ci95")
    return f"{m['f1']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _n(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(all_res: dict) -> str:
    lines = ["# Taggers on the foreign-style sets", "", f"command: `{all_res['command']}`", ""]
    for rule in ("forced", "abstain"):
        lines += [
            f"## {rule}",
            "",
            "| tagger | set | hair colour 13-way | hair family 6-way | glasses F1 | hat F1 | hat FPR | "
            "abstained: hair / glasses / hat |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, res in all_res["taggers"].items():
            rows = [(s, r) for s, r in res["sets"].items()] + [("**pooled**", res["pooled"])]
            for s, r in rows:
                rr = r[rule] if s != "**pooled**" else r[rule]
                tg = rr["tags"]
                ab = "-"
                if rule == "abstain":
                    ha = rr.get("hair_abstained")
                    ab = " / ".join(
                        _n(x["value"]) if x and x.get("value") is not None else "-"
                        for x in (
                            ha,
                            tg.get("glasses", {}).get("abstained"),
                            tg.get("hat", {}).get("abstained"),
                        )
                    )
                lines.append(
                    f"| {name} | {s} | {_f(rr['hair_color_13'].get('accuracy', rr['hair_color_13']))} | "
                    f"{_f(rr['hair_family'].get('accuracy', rr['hair_family']))} | "
                    f"{_f1(tg.get('glasses'))} | {_f1(tg.get('hat'))} | "
                    f"{_f(tg.get('hat', {}).get('false_positive_rate'))} | {ab} |"
                )
        lines.append("")
    fam = [(name, s, r["unfamiliar"]) for name, res in all_res["taggers"].items() for s, r in res["sets"].items()
           if r.get("unfamiliar")]  # fmt: skip
    if fam:
        lines += [
            "## unfamiliar pictures (charforge.tagger.familiar; forced answers, kept / flagged)",
            "",
            "| tagger | set | flagged | hair colour kept / flagged | glasses accuracy kept / flagged | "
            "hat accuracy kept / flagged |",
            "|---|---|---|---|---|---|",
        ]
        for name, s, u in fam:
            pair = lambda k, u=u: f"{_f(u[k + '_kept'])} / {_f(u[k + '_flagged'])}"  # noqa: E731
            lines.append(
                f"| {name} | {s} | {_f(u['flagged'])} | {pair('hair_color_13')} | {pair('glasses_accuracy')} | "
                f"{pair('hat_accuracy')} |"
            )
        lines.append("")
    lines += ["## chance baselines (pooled)", ""]
    first = next(iter(all_res["taggers"].values()))["pooled"]["forced"]
    for t in ("glasses", "hat"):
        m = first["tags"].get(t)
        if m:
            lines.append(
                f"- {t}: n {m['n']}, positives {m['positives']}; chance F1 always-yes "
                f"{_n(m['chance_f1_always_yes'])}, random at base rate {_n(m['chance_f1_random_at_base_rate'])}"
            )
    for key in ("hair_color_13", "hair_family"):
        ch = [r["forced"][key]["chance"] for r in next(iter(all_res["taggers"].values()))["sets"].values()]
        lines.append(
            f"- {key} per set, majority / random-at-label-mix: "
            + ", ".join(f"{_n(c['majority'])}/{_n(c['random_at_label_distribution'])}" for c in ch)
        )
    return "\n".join(lines) + "\n"


def _mark(value, letter: str) -> str:
    """'G' on, 'g' off, '-' not labelled, '?' unknown."""
    if value is None:
        return "-"
    if value == "?":
        return "?"
    return letter if value else letter.lower()


def sheet(path: Path, data: dict, taggers: dict, per_set: int = 12) -> None:
    """Per set, the first `per_set` scored images (64 px, as scored) with the truth (T) and each tagger's
    reading: hair colour ('?' appended when the abstaining rule leaves it unknown), G = glasses, H = hat
    (upper case on, lower case off, '?' unknown, '-' not labelled)."""
    from PIL import Image, ImageDraw

    from charforge.tagger.net import decide_or_unknown

    cell, text_h = 128, 12 * (1 + len(taggers))
    rows = []
    for images, items in data.values():
        imgs, its = images[:per_set], items[:per_set]
        row = Image.new("RGB", (cell * per_set, cell + text_h), "white")
        d = ImageDraw.Draw(row)
        for i, (im, it) in enumerate(zip(imgs, its)):
            row.paste(Image.fromarray(im).resize((cell, cell), Image.NEAREST), (i * cell, 0))
            lab = it["labels"]
            truth = f"T {it.get('hair_color') or '-'} {_mark(lab.get('glasses'), 'G')}{_mark(lab.get('hat'), 'H')}"
            d.text((i * cell + 2, cell), truth, fill="black")
        for k, (name, tagger) in enumerate(taggers.items()):
            proba = tagger.predict_proba(imgs)
            _, unknown = decide_or_unknown(
                proba,
                tagger.schema,
                tagger.min_confidence,
                unfamiliar=getattr(tagger, "last_unfamiliar", None),
            )
            unknown = unknown & tagger.calibrated
            names = list(tagger.schema.tags)
            gl, ht = names.index("glasses"), names.index("hat")
            for i in range(len(imgs)):
                hair = names[int(proba[i, :13].argmax())].removesuffix(" hair") + (
                    "?" if unknown[i, 0] else ""
                )
                marks = "".join(
                    _mark("?" if unknown[i, j] else int(proba[i, j] >= tagger.threshold), c)
                    for j, c in ((gl, "G"), (ht, "H"))
                )
                d.text((i * cell + 2, cell + 12 * (k + 1)), f"{name[:6]} {hair} {marks}", fill="black")
        rows.append(row)
    out = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "taggers",
        nargs="+",
        help="NAME=PATH (a tagger .safetensors or training folder), optionally NAME=PATH#VIEW,VIEW (test-time "
        "views, e.g. #flip,zoom:1.25: charforge.tagger.net.Tagger.views) and NAME=PATH@PARTS (a part reader "
        "file for the hair colour, or @none; by default the shipped estimator gets the shipped reader)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        choices=SETS + ("renpy",) + VALIDATION_SETS,
        help="default: the 5 test sets; renpy (human-drawn anime sprites) is a test set reported apart; "
        "dicebear-micah is the validation set for choosing settings",
    )
    ap.add_argument("--n", type=int, default=200, help="DiceBear avatars per style (the set's --n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None, help="folder for tagger_foreign.json / .md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--crop",
        default="centre",
        help="centre (as `data import --faces none`) or a face detector name (run.py)",
    )
    ap.add_argument("--sheet", type=Path, default=None, help="write a PNG of images with truth and readings")
    args = ap.parse_args(argv)

    import torch

    from charforge.tagger.net import load_tagger

    torch.set_num_threads(args.threads)
    cache = foreign.cache_dir()
    sets = args.set or list(SETS)
    data = {}
    for s in sets:
        d = foreign.build_set(s, args.n, args.seed, cache)
        items = _scored_items(json.loads((d / "manifest.json").read_text())["items"])
        loaded_images = (
            foreign.load_set_images(d, items, crop=args.crop)
            if args.crop != "centre"
            else foreign.load_set_images(d, items)
        )
        if isinstance(loaded_images, tuple):  # newer run.py: (images, how many fell back to the centre)
            loaded_images = loaded_images[0]
        data[s] = (loaded_images, items)
    out = {
        "command": "python bench/tagger_foreign.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "taggers": {},
    }
    loaded = {}
    for spec in args.taggers:
        name, _, path = spec.partition("=")
        path, _, views = path.partition("#")  # NAME=PATH#flip,zoom:1.25: test-time views (Tagger.views)
        path, _, part_spec = path.partition("@")  # NAME=PATH@PARTS: a part reader file, or none
        parts = False if part_spec == "none" else (part_spec or None)
        tagger = loaded[name] = load_tagger(path or name, parts=parts)
        if views:
            tagger.views = tuple(views.split(","))
        res = {
            "path": str(path or name),
            "parts": None if tagger.parts is None else str(tagger.parts.path),
            "calibrated": tagger.calibrated,
            "sets": {},
        }
        for s, (images, items) in data.items():
            res["sets"][s] = score(tagger, images, items, args.threshold)
        res["pooled"] = {rule: _pool(list(res["sets"].values()), rule) for rule in ("forced", "abstain")}
        out["taggers"][name] = res
    md = markdown(out)
    print(md)
    if args.sheet:
        sheet(args.sheet, data, loaded)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tagger_foreign.json").write_text(json.dumps(out, indent=1, default=str))
        (args.out / "tagger_foreign.md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
