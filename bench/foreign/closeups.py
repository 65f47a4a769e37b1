"""Is an image with no detected face itself a face or bust? Sets and scores for the import's close-up test.

`charforge data import --faces anime|human|...` keeps an image in which the detector finds no face when the
image itself looks like a close-up (charforge.data.faces.closeup_score); otherwise it is skipped as "no face
found". This script measures that decision on pictures that are busts and pictures that are not:

  busts, calibration  DiceBear training styles (bench/foreign/training_styles.py) and built-in renders
  busts, validation   DiceBear micah (bench/foreign/validation.py)
  busts, test         DiceBear adventurer, avataaars, personas; Wesnoth portraits (scored once per candidate)
  not busts           DiceBear's abstract styles (shapes, icons, identicon, rings, initials, glass: CC0 / MIT,
                      rendered with the pinned npm packages), Wesnoth terrain and item images (Debian
                      wesnoth-1.16-data, GPL-2+), scikit-image's sample photos without a face (BSD-3)
The non-bust sets are built into the cache (<cache>/closeups/...), never committed. Held-out figures for the
probe come from leaving each calibration set out of its fit in turn (--probe, --rule).

With --probe it also fits a logistic probe on the ImageNet features of the whole picture (EfficientNet-Lite0 at
112 px, the estimator's feature network) to tell busts from the rest, and reports its keep rate on each calibration
set left out of the fit in turn, then on the validation and test sets (an experiment; nothing ships from it).

Usage: PYTHONPATH=. python bench/foreign/closeups.py [--n 60] [--out FILE.json] [--probe]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from charforge.data.bust import square_thumb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ABSTRACT = ("shapes", "icons", "identicon", "rings", "initials", "glass")
SKIMAGE_NO_FACE = (
    "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "coins", "moon", "page", "text",
    "horse", "logo", "clock", "brick", "grass", "gravel", "retina", "cell", "colorwheel", "motorcycle_left",
)  # fmt: skip
WESNOTH_NOT_PORTRAITS = ("data/core/images/terrain", "data/core/images/items")


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("CHARFORGE_CACHE", Path.home() / ".cache" / "charforge")) / "foreign"


def rgb(path: Path) -> np.ndarray:
    """The picture as `data import` decodes it (charforge.core.images.load_image: transparency on white)."""
    from charforge.core.images import load_image

    return load_image(path)


def abstract_dicebear(n: int) -> dict[str, list[Path]]:
    from run import ensure_npm

    out = cache_dir() / "closeups" / f"dicebear-abstract-n{n}"
    if not (out / "styles.json").exists():
        npm = ensure_npm(cache_dir())
        jobs = [
            {"file": f"{s}-{i:03d}.png", "style": s, "seed": f"closeup-{s}-{i}", "options": {}}
            for s in ABSTRACT
            for i in range(n)
        ]
        out.mkdir(parents=True, exist_ok=True)
        (out / "jobs.json").write_text(json.dumps({"size": 256, "jobs": jobs}))
        subprocess.run(["node", str(npm / "dicebear.mjs"), str(out / "jobs.json"), str(out)], check=True)
    return {s: sorted(out.glob(f"{s}-*.png")) for s in ABSTRACT}


def wesnoth_not_portraits(n: int) -> dict[str, list[Path]]:
    deb = sorted((cache_dir() / "deb").glob("wesnoth-1.16-data_*_all.deb"))
    if not deb:
        print(
            "note: no Wesnoth .deb in the cache (python bench/foreign/run.py --set wesnoth fetches it); skipped"
        )
        return {}
    out = cache_dir() / "closeups" / "wesnoth-data"
    if not (out / ".done").exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb[0]), str(out)], check=True)
        (out / ".done").write_text("")
    root = out / "usr/share/games/wesnoth/1.16"
    sets = {}
    for sub in WESNOTH_NOT_PORTRAITS:
        files = sorted(p for p in (root / sub).rglob("*.png") if min(Image.open(p).size) >= 32)
        step = max(1, len(files) // n)
        sets["wesnoth-" + sub.rsplit("/", 1)[-1]] = files[::step][:n]
    return sets


def skimage_photos() -> dict[str, list[np.ndarray]]:
    import skimage.data as data

    pics = []
    for name in SKIMAGE_NO_FACE:
        try:
            im = np.asarray(getattr(data, name)())
        except Exception as e:  # a sample that needs a download (pooch): not offline here
            print(f"note: skimage.data.{name} unavailable ({type(e).__name__}); skipped")
            continue
        if im.ndim == 2:
            im = np.stack([im] * 3, -1)
        if im.dtype != np.uint8:
            im = im.astype(np.float64)
            im = (255 * (im - im.min()) / max(float(im.max() - im.min()), 1e-9)).astype(np.uint8)
        pics.append(im[..., :3])
    return {"skimage-photos": pics}


def bust_sets(n: int) -> dict[str, tuple[str, list[Path]]]:
    """{name: (role, files)} of portrait sets already in the cache (built by run.py / training_styles)."""
    sets = {}
    base = cache_dir() / "sets"
    roles = {
        "lorelei": "calibration", "big-smile": "calibration", "miniavs": "calibration", "toon-head": "calibration",
        "pixel-art": "calibration", "open-peeps": "calibration", "notionists": "calibration", "bigheads": "calibration",
        "micah": "validation",
        "adventurer": "test", "avataaars": "test", "personas": "test",
    }  # fmt: skip
    for style, role in roles.items():
        found = sorted(base.glob(f"dicebear-{style}-n*-s0-*"))
        if found:
            sets[f"dicebear-{style}"] = (role, sorted((found[-1] / "images").glob("*.png"))[:n])
    wes = sorted(base.glob("wesnoth-*"))
    if wes:
        sets["wesnoth-portraits"] = ("test", sorted((wes[-1] / "images").glob("*.png"))[:n])
    return sets


def builtin_renders(n: int) -> list[np.ndarray]:
    from charforge.creators import get_creator

    creator = get_creator("builtin")
    return list(creator.render(creator.sample(n, np.random.default_rng(7)), 256))


def main() -> None:
    from charforge.data.faces import closeup_score

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="pictures per set (default 60)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--styles", type=Path, help="a saved probe on the six-style creator's renders, per style")
    ap.add_argument("--probe", action="store_true", help="also the logistic-probe experiment (see above)")
    ap.add_argument("--fit-out", type=Path, help="fit the probe on every calibration set and save it here")
    ap.add_argument(
        "--rule", type=Path, help="score a saved probe under rule B (results/session17/bust_rule.txt)"
    )
    a = ap.parse_args()
    rows = []

    def score(name: str, role: str, bust: bool, images: list) -> None:
        kept = []
        for im in images:
            arr = rgb(im) if isinstance(im, Path) else im
            ok, detail = closeup_score(arr)
            rows.append({"set": name, "role": role, "bust": bust, "kept": bool(ok), "detail": detail})
            kept.append(ok)
        print(f"{name:28s} {role:11s} {'bust' if bust else 'not':4s} kept {sum(kept):3d} / {len(kept):3d}")

    for name, (role, files) in bust_sets(a.n).items():
        score(name, role, True, files)
    score("builtin-renders", "calibration", True, builtin_renders(a.n))
    for name, files in {**abstract_dicebear(a.n), **wesnoth_not_portraits(a.n)}.items():
        score(f"dicebear-{name}" if name in ABSTRACT else name, "negative", False, files)
    for name, pics in skimage_photos().items():
        score(name, "negative", False, pics)
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))
    if a.probe:
        probe_experiment(a.n)
    if a.fit_out:
        fit_and_save(a.n, a.fit_out)
    if a.rule:
        rule_b(a.n, a.rule)
    if a.styles:
        styles_check(a.styles)


def _all_sets(n: int) -> dict:
    sets = dict(bust_sets(n))
    sets["builtin-renders"] = ("calibration", builtin_renders(n))
    for name, files in {**abstract_dicebear(n), **wesnoth_not_portraits(n)}.items():
        sets[name] = ("negative", files)
    for name, pics in skimage_photos().items():
        sets[name] = ("negative", pics)
    return sets


def _features(sets: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    from charforge.tagger.probe import probe_features

    feats, names, roles, images = [], [], [], {}
    for name, (role, files) in sets.items():
        raw = [rgb(im) if isinstance(im, Path) else im for im in files]
        images[name] = raw
        imgs = np.stack([square_thumb(im, 128) for im in raw])
        feats.append(probe_features(imgs, ("full",), size=112, cache=True))
        names += [name] * len(imgs)
        roles += [role] * len(imgs)
    return np.concatenate(feats), np.array(names), np.array(roles), images


def _logistic(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, class_weight="balanced"))


def probe_experiment(n: int, c: float = 0.1) -> None:
    """Leave-one-set-out keep rates of a logistic probe (busts vs not) on ImageNet features, then the held-out
    roles. Needs scikit-learn."""
    sets = _all_sets(n)
    x, names, roles, _ = _features(sets)
    y = (roles != "negative").astype(int)
    fit = np.isin(roles, ("calibration", "negative"))

    def model(mask):
        return _logistic(c).fit(x[mask], y[mask])

    print(f"probe (C {c}): keep rate of each set, left out of the fit (calibration busts and non-busts)")
    for name in dict.fromkeys(names[fit]):
        kept = model(fit & (names != name)).predict_proba(x[names == name])[:, 1] > 0.5
        print(f"  {name:28s} {sets[name][0]:11s} kept {kept.mean():.2f}")
    full = model(fit)
    for name in dict.fromkeys(names[~fit]):
        kept = full.predict_proba(x[names == name])[:, 1] > 0.5
        print(f"  {name:28s} {sets[name][0]:11s} kept {kept.mean():.2f} (fitted on every calibration set)")


def _to_probe(model):
    from charforge.data.bust import BustProbe

    scaler, lr = model[0], model[1]
    return BustProbe(scaler.mean_, np.sqrt(scaler.var_), lr.coef_[0], float(lr.intercept_[0]))


def fit_and_save(n: int, out: Path, c: float = 0.1) -> None:
    """Rule B's candidate: fitted on every calibration bust set and every non-bust set, saved as a bust probe."""
    import platform

    import sklearn

    from charforge.data.bust import save_bust_probe

    sets = _all_sets(n)
    x, names, roles, _ = _features(sets)
    fit = np.isin(roles, ("calibration", "negative"))
    model = _logistic(c).fit(x[fit], (roles[fit] != "negative").astype(int))
    counts = {name: int((names == name).sum()) for name in dict.fromkeys(names[fit])}
    provenance = {
        "command": f"PYTHONPATH=. python bench/foreign/closeups.py --n {n} --fit-out {out}",
        "fitted_on": counts,
        "model": f"LogisticRegression(C={c}, class_weight='balanced') on StandardScaler features",
        "sklearn": sklearn.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    save_bust_probe(out, _to_probe(model), provenance=provenance)
    print(f"wrote {out}: fitted on {sum(counts.values())} pictures of {len(counts)} sets")


def rule_b(n: int, path: Path, c: float = 0.1) -> None:
    """The numbers rule B decides on (bench/foreign/results/session17/bust_rule.txt)."""
    from charforge.data.bust import load_bust_probe
    from charforge.data.faces import closeup_score

    sys.path.insert(0, str(HERE))
    from run import build_dicebear

    probe = load_bust_probe(path)
    sets = _all_sets(n)
    x, names, roles, images = _features(sets)
    skin = {name: np.array([closeup_score(im)[0] for im in imgs]) for name, imgs in images.items()}
    y = (roles != "negative").astype(int)
    fit = np.isin(roles, ("calibration", "negative"))
    print("(b) leave-one-set-out false keeps of the combined test (skin OR probe), non-bust sets:")
    rates = []
    for name in dict.fromkeys(names[roles == "negative"]):
        held = _to_probe(_logistic(c).fit(x[fit & (names != name)], y[fit & (names != name)]))
        p = held.probability(images[name])
        rate = float((skin[name] | (p >= 0.5)).mean())
        rates.append(rate)
        print(f"  {name:24s} {rate:.2f}")
    print(f"  mean {np.mean(rates):.3f} (rule: <= 0.15)")
    print("(c) the saved probe, combined test: built-in renders and micah (validation)")
    for name in ("builtin-renders", "dicebear-micah"):
        p = probe.probability(images[name])
        print(
            f"  {name:24s} kept {float((skin[name] | (p >= 0.5)).mean()):.2f} (skin alone {skin[name].mean():.2f})"
        )
    print("(a) fresh seed-1 slices of the test styles, combined test (rule: >= 0.95 each)")
    for style in ("adventurer", "avataaars", "personas"):
        folder = build_dicebear(style, 100, 1, cache_dir())
        pics = [rgb(f) for f in sorted((folder / "images").glob("*.png"))]
        s = np.array([closeup_score(im)[0] for im in pics])
        p = probe.probability(pics)
        print(
            f"  dicebear-{style:14s} kept {float((s | (p >= 0.5)).mean()):.2f} (skin alone {s.mean():.2f}, n {len(pics)})"
        )


def styles_check(path: Path, n: int = 120) -> None:
    """The probe on the six-style creator (its cel renders are in the fit, the other five styles are not)."""
    from charforge.creators import get_creator
    from charforge.data.bust import load_bust_probe
    from charforge.data.faces import closeup_score

    probe = load_bust_probe(path)
    creator = get_creator("builtin-styles")
    batch = creator.sample(n, np.random.default_rng(11))
    images = list(creator.render(batch, 256))
    k = [c.name for c in creator.space.categorical].index("style")
    p = probe.probability(images) >= probe.threshold
    skin = np.array([closeup_score(im)[0] for im in images])
    print("six-style creator renders (seed 11): kept by the probe / the skin test / either")
    for i, style in enumerate(creator.space.categorical[k].options):
        m = batch.cat[:, k] == i
        print(
            f"  {style:10s} n {m.sum():3d}  {p[m].mean():.2f} / {skin[m].mean():.2f} / {(p[m] | skin[m]).mean():.2f}"
        )


if __name__ == "__main__":
    main()
