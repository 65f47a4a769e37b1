"""Folder-import throughput (images/s) and its parts. Writes bench/results/data_import.md.

    python bench/bench_import.py [--n 200] [--side 384] [--repeats 3]

A folder of N synthetic JPEG "artworks" (smooth colour fields with hard-edged shapes, SIDE px square) is
imported at 64 px with faces=none (workers 1 and 2) and faces=human (workers 1); runs alternate
configuration by configuration in the same process and the median of `repeats` is reported. The parts
(decode, pHash, Haar detection) are timed per image on the same files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from charforge.core.images import load_image  # noqa: E402
from charforge.data.dedupe import phash  # noqa: E402
from charforge.data.faces import detect_faces  # noqa: E402
from charforge.data.importer import import_folder  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = [
    ("faces=none, workers=1", "none", 1),
    ("faces=none, workers=2", "none", 2),
    ("faces=human, workers=1", "human", 1),
]


def artwork(seed: int, side: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize(
        (side, side), Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(low)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, side, 2))
        r = int(rng.integers(side // 16, side // 4))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return low


def machine() -> str:
    from charforge.core.device import describe_machine

    return describe_machine()


def time_imports(src: Path, work: Path, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name, _, _ in CONFIGS}
    for r in range(repeats):
        for name, faces, workers in CONFIGS:  # alternate configurations so load changes hit all alike
            out = work / f"out_{r}_{faces}_{workers}"
            t = time.perf_counter()
            import_folder(src, out, size=64, faces=faces, workers=workers, progress=False)
            times[name].append(time.perf_counter() - t)
            shutil.rmtree(out)
    return times


def time_parts(files: list[Path]) -> dict[str, float]:
    """Median seconds per image of each stage."""
    parts: dict[str, list[float]] = {
        "decode (load_image)": [],
        "pHash": [],
        "Haar face detection": [],
        "animeface detection": [],
    }
    for f in files:
        t0 = time.perf_counter()
        img = load_image(f)
        t1 = time.perf_counter()
        phash(img)
        t2 = time.perf_counter()
        detect_faces(img, "human")
        t3 = time.perf_counter()
        detect_faces(img, "anime")
        t4 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[key].append(dt)
    return {k: statistics.median(v) for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)  # images in the folder
    ap.add_argument("--side", type=int, default=384)  # source image side, px
    ap.add_argument("--repeats", type=int, default=3)  # timed imports per configuration
    args = ap.parse_args()
    os.environ["CHARFORGE_PROGRESS"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(args.n):
            artwork(i, args.side).save(src / f"{i:05d}.jpg", quality=90)
        host = machine()
        times = time_imports(src, Path(tmp), args.repeats)
        parts = time_parts(sorted(src.iterdir())[:50])
    lines = [
        "## Folder import (`charforge data import`)",
        "",
        f"Machine: {host}. Date: {time.strftime('%Y-%m-%d')}. `python bench/bench_import.py --n {args.n} --side {args.side} "
        f"--repeats {args.repeats}`: {args.n} JPEGs of {args.side}x{args.side} px -> 64 px dataset, median of {args.repeats} runs.",
        "",
        "| configuration | median s | images/s | vs faces=none, workers=1 |",
        "|---|---|---|---|",
    ]
    base = statistics.median(times[CONFIGS[0][0]])
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {name} | {med:.2f} | {args.n / med:.0f} | {base / med:.2f}x |")
    lines += ["", "| stage (per image, median over 50 files) | ms |", "|---|---|"]
    lines += [f"| {k} | {v * 1000:.2f} |" for k, v in parts.items()]
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        lines += [
            "",
            "The machine was busy with other jobs (load average above the core count): absolute numbers are",
            "pessimistic, and extra workers cannot help when every core is already taken.",
        ]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_import.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
