"""Foreign-input measurement for docs/f2p.md (not a test): the shipped model on photos and drawings charforge did
not draw, before (whole image, no attribute constraints: the fit of the previous release) and after (face crop and
attribute constraints), judged in a space the method did not optimise, next to a chance baseline.

    .venv/bin/python tests/f2p/measure_foreign.py [--dicebear DIR ...] [--per-set 30]

Photos: the scikit-image astronaut and matplotlib's Grace Hopper, each as is, mirrored, at 60 % scale, darkened
and as a JPEG at quality 40, plus the astronaut with drawn-on glasses (and mirrored): 12 inputs. Drawings: DiceBear
sets built by bench/foreign (labels from their options), when given.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from charforge.f2p import fit, load_f2p  # noqa: E402
from charforge.f2p.attributes import HAIR_FAMILIES  # noqa: E402
from charforge.f2p.check import calibrate, check_features, reference_features  # noqa: E402
from charforge.f2p.faces import find_face, landmarks68, portrait_crop  # noqa: E402

FAMILY_OF = {o: f for f, opts in HAIR_FAMILIES.items() for o in opts}
DICEBEAR_GROUP = {  # the DiceBear sets' coarser grouping of the creator's hair options
    "black": "black/brown",
    "brown": "black/brown",
    "blonde": "blonde/orange",
    "orange": "blonde/orange",
    "red": "red/pink",
    "pink": "red/pink",
    "white": "white/grey/silver",
    "gray": "white/grey/silver",
    "silver": "white/grey/silver",
    "green": "green",
    "blue": "blue",
    "aqua": "blue",
    "purple": "purple",
}


def _glasses_on(im: np.ndarray) -> np.ndarray:
    box = find_face(im)
    lm = landmarks68(im, box)
    pil = Image.fromarray(im.copy())
    d = ImageDraw.Draw(pil)
    ew = float(np.linalg.norm(lm[39] - lm[36]))
    for eye in (lm[36:42], lm[42:48]):
        c = eye.mean(0)
        d.ellipse(
            [c[0] - 0.85 * ew, c[1] - 0.6 * ew, c[0] + 0.85 * ew, c[1] + 0.6 * ew],
            outline=(30, 30, 30),
            width=3,
        )
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    d.line([left[0] + 0.85 * ew, left[1], right[0] - 0.85 * ew, right[1]], fill=(30, 30, 30), width=3)
    return np.asarray(pil)


def _variants(im: np.ndarray) -> dict[str, np.ndarray]:
    h, w = im.shape[:2]
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, "JPEG", quality=40)
    return {
        "": im,
        " mirrored": np.ascontiguousarray(im[:, ::-1]),
        " 60%": np.asarray(
            Image.fromarray(im).resize((int(w * 0.6), int(h * 0.6)), Image.Resampling.LANCZOS)
        ),
        " darker": (im.astype(np.float32) * 0.75).astype(np.uint8),
        " jpeg40": np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")),
    }


def photos() -> list[tuple[str, np.ndarray, dict]]:
    import skimage.data
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = np.asarray(Image.open(f).convert("RGB"))
    out = []
    for name, im, truth in (
        ("astronaut", skimage.data.astronaut(), {"family": "brown", "glasses": False, "hat": False}),
        ("grace_hopper", grace, {"family": "grey/white", "glasses": True, "hat": True}),
    ):
        out += [(name + k, v, truth) for k, v in _variants(im).items()]
    gl = _glasses_on(skimage.data.astronaut())
    out += [
        ("astronaut + drawn glasses", gl, {"family": "brown", "glasses": True, "hat": False}),
        (
            "astronaut + drawn glasses mirrored",
            np.ascontiguousarray(gl[:, ::-1]),
            {"family": "brown", "glasses": True, "hat": False},
        ),
    ]
    return out


def dicebear(dirs: list[Path], per_set: int) -> list[tuple[str, np.ndarray, dict]]:
    out = []
    for d in dirs:
        items = json.loads((d / "manifest.json").read_text())["items"][:per_set]
        for it in items:
            im = np.asarray(Image.open(d / "images" / it["file"]).convert("RGB"))
            lab = it["labels"]
            out.append(
                (
                    it["file"],
                    im,
                    {
                        "group": it.get("hair_family"),
                        "glasses": bool(lab.get("glasses")),
                        "hat": bool(lab.get("hat")),
                    },
                )
            )
    return out


def _check_input(im: np.ndarray) -> np.ndarray:
    try:
        return portrait_crop(im, find_face(im))
    except Exception:
        return im


def score(model, items, ref, before: bool) -> list[dict]:
    rows = []
    for name, im, truth in items:
        t = time.perf_counter()
        r = fit(model, [im], "both", detect=not before, constrain=not before, check=False)
        inp = check_features(_check_input(im)[None], "generic")[0]
        prev = check_features(r.preview[None], "generic")[0]
        _, pct = calibrate(inp, prev, ref)
        p = r.params
        row = {
            "name": name,
            "hair": p["hair_color"],
            "glasses": p["glasses"] != "none",
            "hat": p["hat"] != "none",
        }
        row.update(
            percentile=pct, seconds=time.perf_counter() - t, search_cosine=r.search_cosine, truth=truth
        )
        if "family" in truth:
            row["hair_ok"] = FAMILY_OF.get(p["hair_color"]) == truth["family"]
        elif truth.get("group"):
            row["hair_ok"] = DICEBEAR_GROUP.get(p["hair_color"]) == truth["group"]
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    hair = [r["hair_ok"] for r in rows if "hair_ok" in r]
    hatless = [r for r in rows if not r["truth"]["hat"]]
    hats = [r for r in rows if r["truth"]["hat"]]
    return {
        "n": len(rows),
        "hair_family_agreement": float(np.mean(hair)) if hair else None,
        "n_hair": len(hair),
        "glasses_accuracy": float(np.mean([r["glasses"] == r["truth"]["glasses"] for r in rows])),
        "hat_false_positive_rate": float(np.mean([r["hat"] for r in hatless])) if hatless else None,
        "hat_recall": float(np.mean([r["hat"] for r in hats])) if hats else None,
        "median_percentile": float(np.median([r["percentile"] for r in rows])),
        "mean_search_cosine": float(np.mean([r["search_cosine"] for r in rows])),
    }


def chance(items, kind: str) -> dict:
    """What a random render of the built-in creator scores (its sampling distribution)."""
    from charforge.core.tags import HAIR_COLORS
    from charforge.creators.builtin.params import SAMPLE_PROBS

    p_glasses = 1 - SAMPLE_PROBS["glasses"][0]
    p_hat = 1 - SAMPLE_PROBS["hat"][0]
    hair = []
    for _, _, t in items:
        if kind == "photo":
            hair.append(sum(FAMILY_OF.get(o) == t["family"] for o in HAIR_COLORS) / len(HAIR_COLORS))
        elif t.get("group"):
            hair.append(sum(DICEBEAR_GROUP.get(o) == t["group"] for o in HAIR_COLORS) / len(HAIR_COLORS))
    g = [p_glasses if t["glasses"] else 1 - p_glasses for _, _, t in items]
    return {
        "hair_family_agreement": float(np.mean(hair)),
        "glasses_accuracy": float(np.mean(g)),
        "hat_false_positive_rate": p_hat,
        "median_percentile": 50.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dicebear", type=Path, nargs="*", default=[])
    ap.add_argument("--per-set", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("f2p_foreign.json"))
    args = ap.parse_args()
    model = load_f2p()
    ref = reference_features(model, "generic")
    sets = {"photos": photos()}
    if args.dicebear:
        sets["dicebear"] = dicebear(args.dicebear, args.per_set)
    result = {}
    for name, items in sets.items():
        before, after = score(model, items, ref, True), score(model, items, ref, False)
        result[name] = {
            "chance": chance(items, "photo" if name == "photos" else "drawing"),
            "before": summarise(before),
            "after": summarise(after),
            "rows_after": [{k: v for k, v in r.items() if k != "truth"} for r in after],
        }
        print(name, json.dumps({k: result[name][k] for k in ("chance", "before", "after")}, indent=1))
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
