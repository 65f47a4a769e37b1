"""Fitting drawings on the validation sets only: glasses and hat, and which path decided them (issue 13 point 4).

The validation sets are DiceBear micah (bench/foreign/validation.py; first 60 of seed 0) and the fresh seed-1
slices of the eight training styles (first N each): never a test set, so settings may be chosen here
(results/session15/rule.txt, rule D). Every image goes through `charforge fit --mode both` with face detection,
as a user's drawing does; for drawings the part reader's glasses share and the estimator's verdict are recorded
beside the fit.

    python bench/foreign/fit_validation.py -o fits.json [--per-style 30]

Prints per style: glasses accuracy, false and missed glasses with what decided them, hat false positives, and
how each drawing was framed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

STYLES = ("big-smile", "lorelei", "miniavs", "open-peeps", "notionists", "pixel-art", "toon-head", "bigheads")


def fit_rows(per_style: int) -> list[dict]:
    import run as foreign

    from charforge.core.images import load_image
    from charforge.f2p import attributes, fit, load_f2p
    from charforge.f2p.fit import prepare_inputs
    from charforge.utils.progress import progress

    model = load_f2p(None)
    tags = list(model.creator.schema.tags)
    sets = [("micah", 200, 0, 60)] + [(s, 100, 1, per_style) for s in STYLES]
    rows = []
    with progress(total=sum(s[3] for s in sets), desc="fits", unit="img") as bar:
        for style, n, seed, limit in sets:
            set_dir = foreign.build_dicebear(style, n, seed, foreign.cache_dir())
            for it in json.loads((set_dir / "manifest.json").read_text())["items"][:limit]:
                image = load_image(set_dir / "images" / it["file"])
                prep = prepare_inputs([image])
                row = {"style": style, "file": it["file"], "path": prep.faces[0]}
                if prep.faces[0].startswith("drawing"):
                    row["reader"] = attributes._read_drawings(prep.crops)[1][0]
                    est = attributes._estimator_glasses(prep.crops)
                    row["estimator"] = None if est is None else est[0]
                r = fit(model, [image], "both")
                on = {
                    t
                    for t, v in zip(tags, model.creator.derive_tags(model.space.from_dicts([r.params]))[0])
                    if v > 0.5
                }
                row.update(
                    fit_glasses=int("glasses" in on),
                    truth_glasses=it["labels"].get("glasses"),
                    fit_hat=int("hat" in on),
                    truth_hat=it["labels"].get("hat"),
                )
                rows.append(row)
                bar.update(1)
    return rows


def summary(rows: list[dict]) -> str:
    by = defaultdict(list)
    for r in rows:
        by[r["style"]].append(r)
    lines, ok, n = [], 0, 0
    for style, rs in by.items():
        g = [r for r in rs if r["truth_glasses"] is not None]
        right = sum(r["fit_glasses"] == r["truth_glasses"] for r in g)
        why = Counter()
        for r in g:
            if r["fit_glasses"] == r["truth_glasses"]:
                continue
            kind = "false" if r["fit_glasses"] else "missed"
            if not r["path"].startswith("drawing"):
                why[f"{kind}: photo path"] += 1
            else:
                share = r.get("reader")
                rims = (
                    "rims"
                    if share is not None and share >= 0.004
                    else "no rims"
                    if share is not None and share < 0.0005
                    else "faint rims"
                )
                est = {True: "estimator yes", False: "estimator no", None: "estimator unsure"}[
                    r.get("estimator")
                ]
                why[f"{kind}: {rims}, {est}"] += 1
        hat_neg = [r["fit_hat"] for r in rs if r["truth_hat"] == 0]
        framing = Counter(r["path"] for r in rs)
        lines.append(
            f"{style:11s} glasses {right}/{len(g)}  hat false positives {sum(hat_neg)}/{len(hat_neg)}  "
            f"errors {dict(why)}  framing {dict(framing)}"
        )
        ok, n = ok + right, n + len(g)
    lines.append(f"pooled glasses accuracy {ok}/{n} = {ok / max(n, 1):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, required=True, help="per-image rows (.json)")
    ap.add_argument("--per-style", type=int, default=30, help="fits per training style (micah: 60)")
    args = ap.parse_args(argv)
    rows = fit_rows(args.per_style)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
