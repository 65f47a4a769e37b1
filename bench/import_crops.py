"""Where `data import` cuts its samples, on art charforge did not draw: does a crop keep the whole face?

    python bench/import_crops.py [--rule new|old|both] [--out bench/results/import_crops.md]

Two kinds of picture, each with what the crop must do:

* **Visual-novel sprites** (tall canvases, figures cut at the thigh): the 13 character sprites of Debian's
  `renpy-demo` and `renpy-thequestion` (Eileen, Lucy, Sylvie; Ren'Py's Expat licence, per the packages'
  copyright files), downloaded with `apt-get download` into the cache, never into the repository. The crop must
  contain the face box the anime detector finds on the whole sprite (checked on the sheet: it finds the right
  face on all 13).
* **Square portraits** (a head, maybe with a hat, beard or hanging hair, on a plain canvas): 300 DiceBear
  croodles (CC BY 4.0, Vijay Verma) and the 200 personas of the foreign benchmark, rendered with the npm packages
  pinned in bench/foreign. With `--faces none` the crop must be the centre square, not a head square.

`--rule old` puts back the constants before session 14 (a figure 1.5x taller than wide was standing on any
canvas; the head square was 30 % of its height, at most its width), so both rules run side by side on the same
files. Writes a markdown table and, in the cache, a sheet of every sprite's crop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "foreign"))

from charforge.core.images import load_image  # noqa: E402
from charforge.data import faces  # noqa: E402

OLD = {"STANDING_RATIO": faces.TALL_RATIO, "HEAD_SHARE": 0.3, "HEAD_WIDTHS": 1.0}


def sprites(cache: Path) -> list[Path]:
    """The renpy character sprites (bench/foreign/run.py downloads and extracts them into the cache)."""
    import run as foreign

    return sorted(foreign.renpy_sprites(cache).glob("*.png"))


def portraits(cache: Path) -> dict[str, list[Path]]:
    import run as foreign  # bench/foreign/run.py: the pinned npm packages

    npm = foreign.ensure_npm(cache)
    croodles = cache / "sets" / "croodles-300"
    if len(list(croodles.glob("*.png"))) < 300:
        croodles.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(14)
        bgs = ("#ffffff", "#f3e9dc", "#dfeaf5", "#e8f2e0")
        jobs = [
            {"file": f"croodles_{i:03d}.png", "style": "croodles", "seed": f"crop-{i}", "options": {}}
            | {"background": bgs[int(rng.integers(len(bgs)))]}
            for i in range(300)
        ]
        (croodles / "jobs.json").write_text(json.dumps({"size": 256, "jobs": jobs}))
        subprocess.run(
            ["node", str(npm / "dicebear.mjs"), str(croodles / "jobs.json"), str(croodles)], check=True
        )
    personas = foreign.build_set("dicebear-personas", 200, 0, cache) / "images"
    return {
        "DiceBear croodles (300)": sorted(croodles.glob("*.png")),
        "DiceBear personas (200)": sorted(personas.glob("*.png")),
    }


@contextlib.contextmanager
def rule(name: str):
    keep = {k: getattr(faces, k) for k in OLD}
    if name == "old":
        for k, v in OLD.items():
            setattr(faces, k, v)
    try:
        yield
    finally:
        for k, v in keep.items():
            setattr(faces, k, v)


def contains(outer: faces.Box, inner: faces.Box) -> bool:
    return (
        outer.x <= inner.x
        and outer.y <= inner.y
        and outer.x + outer.w >= inner.x + inner.w
        and outer.y + outer.h >= inner.y + inner.h
    )


def score(rules: list[str], cache: Path, sheet: Path | None) -> dict:
    out: dict = {}
    sp = sprites(cache)
    images = {p: load_image(p) for p in sp}
    truth = {p: (faces.detect_faces(im, "anime") or [None])[0] for p, im in images.items()}
    rows = []
    for r in rules:
        with rule(r):
            kept = []
            for p, im in images.items():
                crop = faces.find_crops(im, "none")[0][0]
                kept.append(truth[p] is not None and contains(crop.square, truth[p]))
                rows.append((r, p, crop.square))
            out[("VN sprites (13), --faces none: crop holds the whole face", r)] = (sum(kept), len(kept))
            for name, files in portraits(cache).items():
                centre = sum(faces.find_crops(load_image(f), "none")[0][0].how == "centre" for f in files)
                out[(f"{name}, --faces none: centre square (not a head square)", r)] = (centre, len(files))
    if sheet is not None:
        from PIL import Image, ImageDraw

        cell = 160
        canvas = Image.new("RGB", (cell * len(sp), cell * len(rules)), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (r, p, box) in enumerate(rows):
            x, y = i % len(sp) * cell, i // len(sp) * cell
            sample = faces.crop_padded(images[p], box)
            canvas.paste(Image.fromarray(sample).resize((cell, cell)), (x, y))
            draw.text((x + 3, y + 3), r, fill="red")
        sheet.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(sheet)
    return out


def main(argv: list[str] | None = None) -> int:
    import run as foreign

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", choices=("new", "old", "both"), default="both")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "import_crops.md")
    args = ap.parse_args(argv)
    cache = foreign.cache_dir()
    rules = ["old", "new"] if args.rule == "both" else [args.rule]
    sheet = cache / "sheets" / "import_crops_sprites.png"
    t0 = time.time()
    res = score(rules, cache, sheet)
    checks = sorted({k for k, _ in res})
    lines = [
        "# Where import cuts its samples (`python bench/import_crops.py`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {time.time() - t0:.0f} s. "
        "old = the constants before session 14, new = this checkout's. Sheet of the sprites' crops: "
        f"`{sheet}`.",
        "",
        "| check | " + " | ".join(rules) + " |",
        "|---|" + "---|" * len(rules),
    ]
    for c in checks:
        lines.append(f"| {c} | " + " | ".join(f"{res[(c, r)][0]} / {res[(c, r)][1]}" for r in rules) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
