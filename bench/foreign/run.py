"""Foreign-style benchmarks: build a labelled set of art charforge did not draw, and measure the current code.

    python bench/foreign/run.py --set dicebear-adventurer            # build + tagger + import + fit
    python bench/foreign/run.py --set dicebear-avataaars --parts tagger,import
    python bench/foreign/run.py --set photos --set wesnoth --fit-modes fast,both

Sets (see docs/foreign_benchmarks.md): dicebear-adventurer, dicebear-avataaars, dicebear-personas (rendered
with the npm packages pinned in bench/foreign/package.json), photos (skimage astronaut and chelsea,
matplotlib's Grace Hopper), wesnoth (hand-labelled unit portraits from the Debian package).
Images, node_modules and .deb files live in the cache ($CHARFORGE_CACHE/foreign or
~/.cache/charforge/foreign), never in the repository. Results: bench/foreign/results/<set>.json and .md;
the contact sheet (with ground-truth labels) goes to the cache: <cache>/sheets/<set>.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import handlabels  # noqa: E402
import mapping  # noqa: E402
import training_styles  # noqa: E402
import validation  # noqa: E402

SETS = tuple(f"dicebear-{s}" for s in mapping.STYLES) + ("photos", "wesnoth")
# human-drawn anime sprites (3 characters, 13 pictures): a test set reported apart, outside the pooled five
EXTRA_SETS = ("renpy",)
VALIDATION_SETS = tuple(f"dicebear-{s}" for s in validation.STYLES)  # for choosing settings, never results
TRAINING_SETS = tuple(f"dicebear-{s}" for s in training_styles.STYLES)  # for training only, never results
PARTS = ("tagger", "import", "fit")


def cache_dir() -> Path:
    base = os.environ.get("CHARFORGE_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "charforge"
    return root / "foreign"


def use_charforge(at: str | None, cache: Path) -> tuple[Path, str]:
    """Put the charforge to measure first on sys.path: the working tree, or a clean `git archive` of `at`
    (so uncommitted edits in the tree do not leak into "before" numbers). Returns (source root, label)."""
    if at is None:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "charforge"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        src, label = (
            ROOT,
            f"working tree at {_commit(ROOT)}" + (" (uncommitted changes in charforge/)" if dirty else ""),
        )
    else:
        sha = subprocess.run(
            ["git", "rev-parse", "--verify", f"{at}^{{commit}}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        src = cache / "src" / sha[:12]
        if not (src / "charforge" / "__init__.py").exists():
            src.mkdir(parents=True, exist_ok=True)
            archive = subprocess.Popen(["git", "archive", sha, "charforge"], cwd=ROOT, stdout=subprocess.PIPE)
            subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
            archive.wait()
        label = f"commit {sha[:12]} (clean export)"
    sys.path.insert(0, str(src))
    for name in [m for m in sys.modules if m == "charforge" or m.startswith("charforge.")]:
        del sys.modules[name]
    import charforge

    if Path(charforge.__file__).resolve().parent != (src / "charforge").resolve():
        raise SystemExit(f"charforge imported from {charforge.__file__}, expected {src}")
    return src, label


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# ---- building the sets -----------------------------------------------------------------------------------
def ensure_npm(cache: Path) -> Path:
    """Install the pinned npm packages into <cache>/npm (npm ci from the committed lock file)."""
    npm_dir = cache / "npm"
    npm_dir.mkdir(parents=True, exist_ok=True)
    stamp = npm_dir / ".lock.sha"
    want = _sha(HERE / "package-lock.json")
    for name in ("package.json", "package-lock.json", "dicebear.mjs"):
        shutil.copy2(HERE / name, npm_dir / name)
    if not (stamp.exists() and stamp.read_text() == want and (npm_dir / "node_modules").is_dir()):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=npm_dir, check=True)
        stamp.write_text(want)
    return npm_dir


def build_dicebear(style: str, n: int, seed: int, cache: Path) -> Path:
    # the folder name carries a digest of the label code, so changed labels or options rebuild the set
    source = (
        validation
        if style in validation.STYLES
        else training_styles
        if style in training_styles.STYLES
        else mapping
    )
    extra = (HERE / f"{source.__name__}.py").read_bytes() if source is not mapping else b""
    # training sets keep the option's hair colour (below): a marker in the key, so a cache holding the
    # drawn labels of an earlier checkout is not reused
    drawn = source is not training_styles
    key = hashlib.sha256(
        (HERE / "mapping.py").read_bytes()
        + (HERE / "package-lock.json").read_bytes()
        + extra
        + (b"" if drawn else b"option hair labels")
    )
    out = cache / "sets" / f"dicebear-{style}-n{n}-s{seed}-{key.hexdigest()[:10]}"
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        return out
    npm_dir = ensure_npm(cache)
    items = source.sample_style(style, n, seed)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    jobs = out / "jobs.json"
    jobs.write_text(json.dumps({"size": 256, "jobs": items}))
    subprocess.run(["node", str(npm_dir / "dicebear.mjs"), str(jobs), str(img_dir)], check=True)
    meta = json.loads((img_dir / "styles.json").read_text())
    (img_dir / "styles.json").rename(out / "styles.json")
    spec = source.STYLES[style]
    # Hair colour from the drawn pixels on the sets that are scored (test, validation); the training styles keep
    # the option's label, as the shipped recipes were trained: on big-smile's two-tone hair the drawn rule names
    # the shadow (aqua hair read as grey), and those labels were never checked as the test sets' were
    sheet = cache / "sheets" / f"{out.name}-hair.png"
    relabelled = _label_drawn_hair(items, spec.hair_option, img_dir, npm_dir, sheet) if drawn else None
    m = meta["styles"].get(style, {})
    lic = (m.get("license") or {}).get("name", spec.licence)
    renderer = (
        f"@bigheads/core {meta['versions'].get('@bigheads/core')} through react-dom/server"
        if style == "bigheads"
        else f"DiceBear {meta['versions'].get('@dicebear/core')} (MIT)"
    )
    attribution = (
        f"{m.get('title', style)} by {m.get('creator', spec.creator)} ({m.get('source', spec.source)}), "
        f"licensed {lic}; rendered with {renderer}"
    )
    for it in items:
        it["licence"], it["attribution"] = lic, attribution
    manifest = {
        "set": f"dicebear-{style}",
        "n": n,
        "seed": seed,
        "versions": meta["versions"],
        "licence": lic,
        "attribution": attribution,
        "style_notes": spec.notes,
        "ambiguous_palette_dropped": list(spec.ambiguous_palette()),
        "hair_colour_labels": "drawn (mapping.drawn_hair; the option's label is hair_color_option)"
        if drawn
        else "the option's (training style)",
        "hair_relabelled": relabelled,
        "items": items,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return out


def _label_drawn_hair(
    items: list[dict], hair_option: str, img_dir: Path, npm_dir: Path, sheet: Path
) -> dict[str, int]:
    """Hair colour labels from what each render shows, not from the option (`mapping.drawn_hair`): every avatar
    with a hair colour label is drawn once more with only its hair option changed to a far colour (DiceBear
    draws each part from the seed, so nothing else moves). Returns counts of changed and unlabelled avatars, and
    draws the changed ones on `sheet`."""
    from PIL import Image

    todo = [it for it in items if it.get("hair_color")]
    counts = {"labelled_by_option": len(todo), "changed": 0, "now_unlabelled": 0}
    changed: list[dict] = []
    if not todo:
        return counts
    with tempfile.TemporaryDirectory(prefix="cf_twins_") as tmp:
        twins = [
            {**it, "options": {**it["options"], hair_option: [mapping.far_colour(it["hair_hex"])]}}
            for it in todo
        ]
        jobs = Path(tmp) / "jobs.json"
        jobs.write_text(json.dumps({"size": 256, "jobs": twins}))
        subprocess.run(["node", str(npm_dir / "dicebear.mjs"), str(jobs), tmp], check=True)
        for it, tw in zip(todo, twins):
            a = np.asarray(Image.open(img_dir / it["file"]).convert("RGB"))
            b = np.asarray(Image.open(Path(tmp) / it["file"]).convert("RGB"))
            drawn = mapping.drawn_hair(a, b, it["hair_hex"], tw["options"][hair_option][0])
            if mapping.relabel_drawn(it, drawn):
                counts["changed"] += 1
                changed.append(it)
            counts["now_unlabelled"] += it["hair_color"] is None
    if changed:
        _relabel_sheet(changed, img_dir, sheet)
    return counts


def _relabel_sheet(items: list[dict], img_dir: Path, path: Path, per_row: int = 8, cell: int = 128) -> None:
    """Every avatar whose hair label the drawn colour changed: the picture, the option's colour (left swatch)
    and the drawn one (right; grey hatching where hair is not visible), option label -> drawn label."""
    from PIL import Image, ImageDraw

    rows = (len(items) + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * cell, rows * (cell + 34)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, it in enumerate(items):
        x, y = i % per_row * cell, i // per_row * (cell + 34)
        sheet.paste(Image.open(img_dir / it["file"]).convert("RGB").resize((cell, cell)), (x, y))
        draw.rectangle([x, y + cell, x + cell // 2 - 1, y + cell + 14], fill="#" + it["hair_hex"])
        right = [x + cell // 2, y + cell, x + cell - 1, y + cell + 14]
        draw.rectangle(right, fill="#" + it["hair_drawn_hex"] if it["hair_drawn_hex"] else "#dddddd")
        draw.text(
            (x + 2, y + cell + 17),
            f"{it['hair_color_option']} -> {it['hair_color'] or 'unlabelled'}",
            fill="black",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def _labels_from_hand(hand: dict[str, Any]) -> tuple[dict[str, int | None], str | None, str | None]:
    labels = mapping.empty_labels()
    colour = hand.get("hair color")
    family = hand.get("hair family") or (mapping.FAMILY_OF[colour] if colour else None)
    for c in mapping.HAIR_COLORS:
        labels[f"{c} hair"] = None if colour is None else int(c == colour)
    for k, v in hand.items():
        if k in labels:
            labels[k] = v
    return labels, colour, family


def build_photos(cache: Path) -> Path:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    out = cache / "sets" / "photos"
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage.data.astronaut()).save(img_dir / "astronaut.png")
    Image.fromarray(skimage.data.chelsea()).save(img_dir / "chelsea.png")
    shutil.copy2(
        matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), img_dir / "grace_hopper.jpg"
    )
    files = {"astronaut": "astronaut.png", "chelsea": "chelsea.png", "grace_hopper": "grace_hopper.jpg"}
    items = []
    for name, hand in handlabels.PHOTOS.items():
        labels, colour, family = _labels_from_hand({k: v for k, v in hand.items() if k != "face"})
        items.append(
            {
                "file": files[name],
                "labels": labels,
                "hair_color": colour,
                "hair_family": family,
                "face": hand.get("face"),
                "licence": handlabels.PHOTO_LICENCES[name],
            }
        )
    (out / "manifest.json").write_text(json.dumps({"set": "photos", "items": items}, indent=1))
    return out


def debian_package(cache: Path, package: str) -> Path:
    """The newest .deb of `package` in <cache>/deb, fetched with `apt-get download` the first time."""
    deb_dir = cache / "deb"
    deb_dir.mkdir(parents=True, exist_ok=True)
    if not list(deb_dir.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", package], cwd=deb_dir, check=True, capture_output=True)
    return sorted(deb_dir.glob(f"{package}_*.deb"))[-1]


def build_wesnoth(cache: Path) -> Path:
    out = cache / "sets" / f"wesnoth-{hashlib.sha256((HERE / 'handlabels.py').read_bytes()).hexdigest()[:10]}"
    if (out / "manifest.json").exists():
        return out
    deb = debian_package(cache, handlabels.WESNOTH_PACKAGE)
    extract = deb.parent / "wesnoth"
    src = extract / handlabels.WESNOTH_PORTRAITS
    if not src.is_dir():
        extract.mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(
            ["tar", "-x", "-C", str(extract), "--wildcards", f"./{handlabels.WESNOTH_PORTRAITS}/*"],
            stdin=tar.stdout,
            check=True,
        )
        tar.wait()
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for rel, hand in handlabels.WESNOTH.items():
        name = rel.replace("/", "_")
        shutil.copy2(src / rel, img_dir / name)
        labels, colour, family = _labels_from_hand({"glasses": 0, **hand})
        items.append(
            {
                "file": name,
                "labels": labels,
                "hair_color": colour,
                "hair_family": family,
                "face": 1,
                "licence": handlabels.WESNOTH_LICENCE,
            }
        )
    manifest = {
        "set": "wesnoth",
        "package": deb.name,
        "licence": handlabels.WESNOTH_LICENCE,
        "items": items,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def renpy_sprites(cache: Path) -> Path:
    """The Ren'Py character sprites (handlabels.RENPY), extracted from Debian's renpy-demo and renpy-thequestion
    (`apt-get download` into <cache>/deb once) into <cache>/sets/renpy-sprites; spaces in names become '_'."""
    out = cache / "sets" / "renpy-sprites"
    if all((out / f).exists() for f in handlabels.RENPY):
        return out
    debs = [debian_package(cache, pkg) for pkg in handlabels.RENPY_PACKAGES]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        for f in Path(tmp).rglob("*.png"):
            if f.name.replace(" ", "_") in handlabels.RENPY:
                shutil.copy2(f, out / f.name.replace(" ", "_"))
    missing = [f for f in handlabels.RENPY if not (out / f).exists()]
    if missing:
        raise SystemExit(f"renpy: {', '.join(missing)} not in {', '.join(handlabels.RENPY_PACKAGES)}")
    return out


def build_renpy(cache: Path) -> Path:
    out = cache / "sets" / f"renpy-{hashlib.sha256((HERE / 'handlabels.py').read_bytes()).hexdigest()[:10]}"
    if (out / "manifest.json").exists():
        return out
    src = renpy_sprites(cache)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for name, hand in handlabels.RENPY.items():
        shutil.copy2(src / name, img_dir / name)
        labels, colour, family = _labels_from_hand(hand)
        items.append({"file": name, "labels": labels, "hair_color": colour, "hair_family": family, "face": 1,
                      "licence": handlabels.RENPY_LICENCE})  # fmt: skip
    manifest = {"set": "renpy", "packages": list(handlabels.RENPY_PACKAGES), "licence": handlabels.RENPY_LICENCE,
                "items": items}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def build_set(name: str, n: int, seed: int, cache: Path) -> Path:
    if name.startswith("dicebear-"):
        return build_dicebear(name.removeprefix("dicebear-"), n, seed, cache)
    if name == "photos":
        return build_photos(cache)
    if name == "wesnoth":
        return build_wesnoth(cache)
    if name == "renpy":
        return build_renpy(cache)
    raise SystemExit(f"unknown set {name!r}; valid: {', '.join(SETS + EXTRA_SETS)}")


# ---- the tagger ------------------------------------------------------------------------------------------
def load_set_images(
    set_dir: Path, items: list[dict[str, Any]], size: int = 64, crop: str = "centre"
) -> tuple[np.ndarray, int]:
    """What `data import` would store: crop="centre" is `--faces none` (the centre square); a detector name
    crops the largest face it finds, zoomed out 1.5x, and falls back to the centre square. Alpha on white.
    Returns (images, how many fell back)."""
    from charforge.core.images import load_image
    from charforge.data.faces import crop_padded, crop_sample, detect_faces, find_crops, resize_square

    out, fallback = [], 0
    for it in items:
        image = load_image(set_dir / "images" / it["file"])
        boxes = detect_faces(image, crop) if crop != "centre" else []
        fallback += int(crop != "centre" and not boxes)
        if boxes:
            out.append(crop_sample(image, boxes[0], size)[0])
        else:  # `--faces none`: the centre square, or the head square of a standing sprite (VN sprites)
            square = find_crops(image, "none")[0][0].square
            out.append(resize_square(crop_padded(image, square), size))
    return np.stack(out), fallback


def eval_tagger(
    set_dir: Path, items: list[dict[str, Any]], threshold: float | None, crop: str = "centre"
) -> dict[str, Any]:
    from charforge.tagger.net import INDEPENDENT_THRESHOLD, default_tagger_path, load_tagger

    path = default_tagger_path()
    if path is None:
        return {"error": "no shipped tagger in this install"}
    tagger = load_tagger(path)
    thr = INDEPENDENT_THRESHOLD if threshold is None else threshold
    scored = [
        it for it in items if any(v is not None for v in it["labels"].values()) or it.get("hair_family")
    ]
    images, fallback = load_set_images(set_dir, scored, crop=crop)
    t0 = time.perf_counter()
    proba = np.asarray(tagger.predict_proba(images))
    seconds = time.perf_counter() - t0
    tags = list(tagger.schema.tags)
    col = {t: tags.index(t) for t in mapping.TAGS if t in tags}
    hair = [f"{c} hair" for c in mapping.HAIR_COLORS]
    hair_idx = [col[t] for t in hair]
    pred_colour = [mapping.HAIR_COLORS[int(np.argmax(row[hair_idx]))] for row in proba]
    per_tag = {}
    for t in mapping.TAGS:
        truth = [it["labels"][t] for it in scored]
        if t not in col or all(v is None for v in truth):
            continue
        if t in hair:
            pred = [int(pc == t.removesuffix(" hair")) for pc in pred_colour]
        elif t.endswith(" eyes"):
            eyes = [col[f"{c} eyes"] for c in mapping.EYE_COLORS]
            pred = [
                int(mapping.EYE_COLORS[int(np.argmax(r[eyes]))] == t.removesuffix(" eyes")) for r in proba
            ]
        else:
            pred = [int(r[col[t]] >= thr) for r in proba]
        per_tag[t] = mapping.binary_metrics(truth, pred)
    colour_truth = [it.get("hair_color") for it in scored]
    family_truth = [it.get("hair_family") for it in scored]
    pred_family = [mapping.FAMILY_OF[c] for c in pred_colour]
    per_image = [
        {
            "file": it["file"],
            "pred_hair": pc,
            "pred_on": [t for t in mapping.INDEPENDENT if t in col and r[col[t]] >= thr],
        }
        for it, pc, r in zip(scored, pred_colour, proba)
    ]
    return {
        "tagger": str(path),
        "tagger_sha256": _sha(path),
        "threshold": thr,
        "crop": crop,
        "crop_fell_back_to_centre": fallback,
        "images": len(scored),
        "images_per_s": len(scored) / seconds if seconds > 0 else None,
        "hair_color_13": mapping.multiclass_metrics(colour_truth, pred_colour),
        "hair_family": mapping.multiclass_metrics(family_truth, pred_family),
        "per_tag": per_tag,
        "predicted_hair_counts": {c: pred_colour.count(c) for c in sorted(set(pred_colour))},
        "per_image": per_image,
    }


# ---- import -------------------------------------------------------------------------------------------------
def eval_import(set_dir: Path, items: list[dict[str, Any]], modes: list[str] | None) -> dict[str, Any]:
    from charforge.data.faces import DETECTORS
    from charforge.data.importer import import_folder
    from charforge.errors import UserError

    out: dict[str, Any] = {"files": len(items), "modes": {}}
    for mode in modes or list(DETECTORS):
        with tempfile.TemporaryDirectory(prefix=f"cf-import-{mode}-") as tmp:
            t0 = time.perf_counter()
            try:
                import_folder(set_dir / "images", Path(tmp) / "ds", faces=mode, progress=False)
                error = None
            except UserError as e:
                error = str(e)
            except Exception as e:  # a missing detector package must not stop the benchmark
                out["modes"][mode] = {"error": f"{type(e).__name__}: {e}"}
                continue
            seconds = time.perf_counter() - t0
            rep_path = Path(tmp) / "ds" / "import_report.json"
            rep = json.loads(rep_path.read_text()) if rep_path.exists() else {}
        skipped = rep.get("skipped", [])
        no_face = [s["path"] for s in skipped if "no face" in s.get("reason", "")]
        faces_truth = {it["file"]: it.get("face") for it in items}
        by_file = {it["file"]: it for it in items}
        base = lambda p: str(p).split("#", 1)[0]  # noqa: E731  (a multi-face crop may be named file#k)
        dup_files = {base(d["path"]) for d in rep.get("duplicates", [])}
        kept_files = sorted(set(faces_truth) - {base(s["path"]) for s in skipped} - dup_files)
        out["modes"][mode] = {
            "files_kept": len(kept_files),
            "kept": rep.get("kept", 0),  # samples: may exceed files once several faces make several crops
            "no_face_found": len(no_face),
            "other_skips": len(skipped) - len(no_face),
            "duplicates_dropped": len(rep.get("duplicates", [])),
            "faces_found": rep.get("faces_found"),
            "keep_rate": mapping._ratio(len(kept_files), len(items)),
            "report_extras": {
                k: rep[k] for k in ("found_by", "multi_face", "noted", "uncertain") if k in rep
            },
            "kept_without_face": [f for f in kept_files if faces_truth.get(f) == 0],
            "images_per_s": len(items) / seconds if seconds > 0 else None,
            "seconds": seconds,
            "error": error,
            "duplicate_pairs": rep.get("duplicates", []),
            "duplicates_with_different_labels": sum(
                1
                for d in rep.get("duplicates", [])
                if _differ(by_file, base(d["path"]), base(d["duplicate_of"]))
            ),
            "no_face_files": no_face[:50],
        }
    return out


def _differ(by_file: dict[str, dict[str, Any]], a: str, b: str) -> bool:
    """True when two images disagree on a tag both know (a dropped "duplicate" that shows other tags)."""
    if a not in by_file or b not in by_file:
        return False
    la, lb = by_file[a]["labels"], by_file[b]["labels"]
    return any(v is not None and lb.get(t) is not None and lb[t] != v for t, v in la.items())


# ---- fitting ------------------------------------------------------------------------------------------------
def eval_fit(
    set_dir: Path,
    items: list[dict[str, Any]],
    modes: list[str],
    limit: int,
    detect: bool,
    f2p_model: str | None = None,
) -> dict[str, Any]:
    from charforge.core.images import load_image
    from charforge.f2p import fit, load_f2p

    model = load_f2p(f2p_model)
    schema_tags = list(model.creator.schema.tags)
    chosen = [it for it in items if it.get("face") != 0][:limit]
    result: dict[str, Any] = {"model": str(model.path), "detect": detect, "n": len(chosen), "modes": {}}
    for mode in modes:
        rows = []
        t0 = time.perf_counter()
        for it in chosen:
            image = load_image(set_dir / "images" / it["file"])
            try:
                r = fit(model, [image], mode, detect=detect)
            except Exception as e:
                rows.append({"file": it["file"], "error": f"{type(e).__name__}: {e}"})
                continue
            derived = model.creator.derive_tags(model.space.from_dicts([r.params]))[0]
            on = {t for t, v in zip(schema_tags, derived) if v > 0.5}
            colour = next(
                (t.removesuffix(" hair") for t in on if t.removesuffix(" hair") in mapping.HAIR_COLORS), None
            )
            rows.append(
                {
                    "file": it["file"],
                    "similarity": float(r.similarity),
                    "mode_kept": r.mode,
                    "fit_hair": colour,
                    "truth_hair": it.get("hair_color"),
                    "truth_family": it.get("hair_family"),
                    "fit_glasses": int("glasses" in on),
                    "truth_glasses": it["labels"].get("glasses"),
                    "fit_hat": int("hat" in on),
                    "truth_hat": it["labels"].get("hat"),
                }
            )
        seconds = time.perf_counter() - t0
        ok = [r for r in rows if "error" not in r]
        fam_pairs = [
            (r["truth_family"], mapping.FAMILY_OF.get(r["fit_hair"] or "", "none"))
            for r in ok
            if r["truth_family"]
        ]
        gl = [(r["truth_glasses"], r["fit_glasses"]) for r in ok if r["truth_glasses"] is not None]
        hat_neg = [r["fit_hat"] for r in ok if r["truth_hat"] == 0]
        hat_pos = [r["fit_hat"] for r in ok if r["truth_hat"] == 1]
        result["modes"][mode] = {
            "fitted": len(ok),
            "errors": len(rows) - len(ok),
            "seconds_per_image": seconds / max(1, len(rows)),
            "hair_family_agreement": mapping._ratio(sum(a == b for a, b in fam_pairs), len(fam_pairs)),
            "glasses_accuracy": mapping._ratio(sum(int(a) == b for a, b in gl), len(gl)),
            "glasses_recall": mapping._ratio(
                sum(b for a, b in gl if a == 1), sum(1 for a, _ in gl if a == 1)
            ),
            "hat_false_positive_rate": mapping._ratio(sum(hat_neg), len(hat_neg)),
            "hat_recall": mapping._ratio(sum(hat_pos), len(hat_pos)),
            "mean_similarity": float(np.mean([r["similarity"] for r in ok])) if ok else None,
            "fit_hair_counts": {
                c: sum(r["fit_hair"] == c for r in ok) for c in sorted({str(r["fit_hair"]) for r in ok})
            },
            "rows": rows,
        }
    return result


# ---- reporting ----------------------------------------------------------------------------------------------
def _fmt(r: dict[str, Any] | None) -> str:
    if not r or r.get("value") is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{r['value']:.2f} [{lo:.2f}, {hi:.2f}] ({r['k']}/{r['n']})"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# Foreign-style benchmark: {res['set']}", ""]
    lines += [
        f"- images: {res['images']}; licence: {res.get('licence', '-')}",
        f"- command: `{res['command']}`",
    ]
    lines += [f"- charforge measured: {res.get('charforge_measured', res['commit'])}; date {res['date']}", ""]
    tg = res.get("tagger")
    if tg and "error" not in tg:
        crop = tg.get("crop", "centre")
        how = (
            "centre square"
            if crop == "centre"
            else f"{crop} face crop ({tg.get('crop_fell_back_to_centre')} fell back to the centre)"
        )
        lines += [
            "## Shipped tagger",
            "",
            f"threshold {tg['threshold']}, {tg['images']} images scored, {how}",
            "",
        ]
        lines += [
            "| measure | value [95 % CI] | chance: majority | chance: random at label mix |",
            "|---|---|---|---|",
        ]
        for key, name in (
            ("hair_color_13", "hair colour, 13-way"),
            ("hair_family", "hair colour family, 6-way"),
        ):
            m = tg[key]
            lines.append(
                f"| {name} | {_fmt(m['accuracy'])} | {_num(m['chance']['majority'])} | "
                f"{_num(m['chance']['random_at_label_distribution'])} |"
            )
        lines += ["", f"Predicted hair colours: {tg['predicted_hair_counts']}", ""]
        lines += [
            "| tag | n | positives | precision [95 % CI] | recall [95 % CI] | F1 [bootstrap 95 %] | FPR | "
            "chance F1 (random at base rate / always yes) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t, m in tg["per_tag"].items():
            ci = m["f1_ci95"]
            f1 = "-" if m["f1"] is None else f"{m['f1']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            ch = m["chance"]
            lines.append(
                f"| {t} | {m['n']} | {m['positives']} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {f1} | "
                f"{_fmt(m['false_positive_rate'])} | {_num(ch['f1_random_at_base_rate'])} / {_num(ch['f1_always_yes'])} |"
            )
        lines.append("")
    im = res.get("import")
    if im:
        lines += ["## Import keep rate", "", f"{im['files']} files", ""]
        lines += [
            "| --faces | files kept [95 % CI] | samples | no face found | other skips | "
            "duplicates dropped (of which labels differ) | images/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for mode, m in im["modes"].items():
            if "kept" not in m:
                lines.append(f"| {mode} | error: {m.get('error')} | | | | | |")
                continue
            lines.append(
                f"| {mode} | {_fmt(m['keep_rate'])} | {m['kept']} | {m['no_face_found']} | {m['other_skips']} | "
                f"{m['duplicates_dropped']} ({m.get('duplicates_with_different_labels', '?')}) | "
                f"{_num(m['images_per_s'])} |"
            )
        lines.append("")
    ft = res.get("fit")
    if ft:
        lines += ["## f2p fitting (shipped model)", "", f"{ft['n']} images, detect={ft['detect']}", ""]
        lines += [
            "| mode | hair family agreement | glasses accuracy | glasses recall | hat false-positive rate | "
            "hat recall | mean reported similarity | s/image |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mode, m in ft["modes"].items():
            lines.append(
                f"| {mode} | {_fmt(m['hair_family_agreement'])} | {_fmt(m['glasses_accuracy'])} | "
                f"{_fmt(m['glasses_recall'])} | {_fmt(m['hat_false_positive_rate'])} | {_fmt(m['hat_recall'])} | "
                f"{_num(m['mean_similarity'])} | {_num(m['seconds_per_image'])} |"
            )
        lines.append("")
        for mode, m in ft["modes"].items():
            lines.append(f"- fitted hair colours ({mode}): {m['fit_hair_counts']}")
        lines.append("")
    return "\n".join(lines) + "\n"


def _label_text(it: dict[str, Any]) -> list[str]:
    lab = it["labels"]
    on = [t for t in mapping.INDEPENDENT if lab.get(t) == 1]
    off = [t for t in ("glasses", "hat") if lab.get(t) == 0]
    hair = it.get("hair_color") or (it.get("hair_family") or "hair n/a")
    return [hair, ", ".join(on)[:34], ("no " + "/".join(off)) if off else ""]


def contact_sheet(set_dir: Path, items: list[dict[str, Any]], path: Path, n: int = 40, cols: int = 8) -> None:
    from PIL import Image, ImageDraw

    from charforge.core.images import load_image

    sub = items[:n]
    w, h = 160, 160 + 40
    sheet = Image.new("RGB", (cols * w, ((len(sub) + cols - 1) // cols) * h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, it in enumerate(sub):
        im = Image.fromarray(load_image(set_dir / "images" / it["file"]))
        im.thumbnail((w, w))
        x, y = (i % cols) * w, (i // cols) * h
        sheet.paste(im, (x, y))
        for j, line in enumerate(_label_text(it)):
            draw.text((x + 2, y + w + 1 + 12 * j), line, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def _pool_binary(ms: list[dict[str, Any]]) -> dict[str, Any]:
    tp, fp, fn, tn = (sum(m[k] for m in ms) for k in ("tp", "fp", "fn", "tn"))
    return {
        "n": tp + fp + fn + tn,
        "positives": tp + fn,
        "precision": mapping._ratio(tp, tp + fp),
        "recall": mapping._ratio(tp, tp + fn),
        "false_positive_rate": mapping._ratio(fp, fp + tn),
        "f1": mapping.f1_from_counts(tp, fp, fn) if tp + fn else None,
    }


def summary(results_dir: Path) -> str:
    """One table of the issue's goal measures per set and pooled over every set in results_dir."""
    rows, pooled = [], {"hair13": [0, 0], "family": [0, 0], "glasses": [], "hat": []}
    fit_rows = []
    for path in sorted(results_dir.glob("*.json")):
        res = json.loads(path.read_text())
        tg = res.get("tagger") or {}
        if "per_tag" in tg:
            h13, fam = tg["hair_color_13"]["accuracy"], tg["hair_family"]["accuracy"]
            gl, hat = tg["per_tag"].get("glasses"), tg["per_tag"].get("hat")
            for key, r in (("hair13", h13), ("family", fam)):
                pooled[key][0] += r["k"]
                pooled[key][1] += r["n"]
            pooled["glasses"] += [gl] if gl else []
            pooled["hat"] += [hat] if hat else []

            def f1(m):
                if not m or m["f1"] is None:
                    return "-"
                ci = m.get("f1_ci95")
                band = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
                return f"{m['f1']:.2f}{band} (n={m['n']}, pos={m['positives']})"

            def fpr(m):
                return _fmt(m["false_positive_rate"]) if m else "-"

            rows.append(
                f"| {res['set']} | {_fmt(h13)} | {_fmt(fam)} | {f1(gl)} | {f1(hat)} | {fpr(hat)} | 0 |"
            )
        for mode, m in (res.get("fit") or {}).get("modes", {}).items():
            fit_rows.append(
                f"| {res['set']} | {mode} | {_fmt(m['hair_family_agreement'])} | {_fmt(m['glasses_accuracy'])} | "
                f"{_fmt(m['hat_false_positive_rate'])} | {_num(m['mean_similarity'])} |"
            )
    lines = [
        "# Foreign-style benchmarks: summary",
        "",
        "Goals (issue 13): tagger hair colour >= 0.8, glasses and hat F1 >= 0.8 (abstention reported); "
        "fit hair family >= 0.8, glasses accuracy >= 0.9, hat false positives <= 5 %.",
        "",
        "## Shipped tagger",
        "",
        "| set | hair colour 13-way | hair family 6-way | glasses F1 [bootstrap 95 %] | hat F1 [bootstrap 95 %] | "
        "hat false-positive rate | abstained |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if rows:
        g, h = _pool_binary(pooled["glasses"]), _pool_binary(pooled["hat"])
        lines.append(
            f"| **pooled** | {_fmt(mapping._ratio(*pooled['hair13']))} | {_fmt(mapping._ratio(*pooled['family']))} | "
            f"{_num(g['f1'])} (n={g['n']}) | {_num(h['f1'])} (n={h['n']}) | {_fmt(h['false_positive_rate'])} | 0 |"
        )
    lines += [
        "",
        "The shipped tagger has no abstention: it always answers, so the abstention rate is 0.",
        "",
        "## f2p fitting (shipped model)",
        "",
        "| set | mode | hair family agreement | glasses accuracy | hat false-positive rate | mean reported similarity |",
        "|---|---|---|---|---|---|",
        *fit_rows,
        "",
    ]
    return "\n".join(lines)


def _commit(root: Path = ROOT) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        choices=SETS + EXTRA_SETS + VALIDATION_SETS,
        help="set to build and measure (repeat); dicebear-micah is for choosing settings, not a result",
    )
    ap.add_argument(
        "--summary", action="store_true", help="then write <out>/SUMMARY.md from every <set>.json"
    )
    ap.add_argument("--n", type=int, default=120, help="DiceBear avatars per style")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default=",".join(PARTS), help="comma list of: tagger, import, fit")
    ap.add_argument(
        "--import-modes", default=None, help="comma list of --faces modes (default: every detector)"
    )
    ap.add_argument("--fit-n", type=int, default=12, help="images fitted per set")
    ap.add_argument(
        "--f2p", default=None, help="face-to-parameter model file or folder (default: the shipped one)"
    )
    ap.add_argument("--fit-modes", default="fast", help="comma list of fit modes")
    ap.add_argument(
        "--fit-detect",
        choices=("auto", "on", "off"),
        default="auto",
        help="face detection in fit: auto = on for photos, off (--no-detect) for drawings",
    )
    ap.add_argument(
        "--threshold", type=float, default=None, help="independent-tag threshold (default: tagger's)"
    )
    ap.add_argument(
        "--tagger-crop",
        default="centre",
        help="what the tagger sees: centre (the --faces none square) or a detector's face crop (anime, human, ...)",
    )
    ap.add_argument("--out", type=Path, default=HERE / "results", help="where <set>.json and <set>.md go")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument(
        "--at",
        default=None,
        help="measure a clean export of this commit (e.g. HEAD) instead of the working tree",
    )
    args = ap.parse_args(argv)
    if not args.set and not args.summary:
        ap.error("give --set NAME (repeatable) and/or --summary")

    cache = cache_dir()
    src, code_label = use_charforge(args.at, cache)

    import torch

    torch.set_num_threads(max(1, args.threads))
    parts = [p for p in args.parts.split(",") if p]
    for name in args.set:
        set_dir = build_set(name, args.n, args.seed, cache)
        manifest = json.loads((set_dir / "manifest.json").read_text())
        items = manifest["items"]
        sheet = cache / "sheets" / f"{name}.png"
        contact_sheet(set_dir, items, sheet)
        res: dict[str, Any] = {
            "set": name,
            "images": len(items),
            "licence": manifest.get("licence") or sorted({it.get("licence", "?") for it in items}),
            "attribution": manifest.get("attribution"),
            "versions": manifest.get("versions"),
            "command": "python bench/foreign/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "commit": _commit(),
            "charforge_measured": code_label,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "torch": torch.__version__,
            },
            "set_dir": str(set_dir),
            "sheet": str(sheet),
        }
        prev_path = args.out / f"{name}.json"
        if prev_path.exists():  # keep the parts not rerun this time, when they measured the same code
            prev = json.loads(prev_path.read_text())
            if prev.get("charforge_measured") == code_label and prev.get("images") == len(items):
                res = {**{k: prev[k] for k in PARTS if k in prev}, **res}
        if "tagger" in parts:
            res["tagger"] = eval_tagger(set_dir, items, args.threshold, args.tagger_crop)
        if "import" in parts:
            modes = args.import_modes.split(",") if args.import_modes else None
            res["import"] = eval_import(set_dir, items, modes)
        if "fit" in parts:
            detect = name == "photos" if args.fit_detect == "auto" else args.fit_detect == "on"
            res["fit"] = eval_fit(set_dir, items, args.fit_modes.split(","), args.fit_n, detect, args.f2p)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=1, default=str))
        md = markdown(res)
        (args.out / f"{name}.md").write_text(md)
        print(md)
        print(f"wrote {args.out / (name + '.json')}, {args.out / (name + '.md')}; sheet {sheet}")
    if args.summary:
        args.out.mkdir(parents=True, exist_ok=True)
        text = summary(args.out)
        (args.out / "SUMMARY.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
