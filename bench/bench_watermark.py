"""Watermark robustness: detection after JPEG / resizing, false positives, PSNR. Writes bench/results/provenance.md.

    python bench/bench_watermark.py [--n 500] [--null 1000] [--sizes 64 128]

Images are built-in creator renders when `charforge.creators.builtin.BuiltinCreator` exists, else synthetic
portraits-like images (smooth colour fields, a flat white margin, hard-edged shapes, mild noise).
"""

from __future__ import annotations

import argparse
import io
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from charforge.provenance import watermark as wm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _synthetic(n: int, size: int, seed: int) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        base = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(base).resize((size, size), Image.BICUBIC), dtype=np.float64).copy()
        img[:, : size // 4] = 255.0  # flat white background
        cy, cx, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, rng.uniform(0.15, 0.3) * size
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)  # a flat, hard-edged shape
        out[i] = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    return out, "synthetic (smooth colour field + white margin + flat disc + noise sigma 2)"


def images(n: int, size: int, seed: int) -> tuple[np.ndarray, str]:
    try:
        from charforge.creators.builtin import BuiltinCreator
    except ImportError:
        return _synthetic(n, size, seed)
    creator = BuiltinCreator()
    rng = np.random.default_rng(seed)
    try:
        return np.ascontiguousarray(creator.render(creator.sample(n, rng), size)), "built-in creator renders"
    except Exception as e:  # the creator is still being written: say so and measure on synthetic images
        print(f"built-in creator failed ({type(e).__name__}: {e}); using synthetic images", file=sys.stderr)
        return _synthetic(n, size, seed)


def jpeg(a: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def rescale(a: np.ndarray, resample=Image.BICUBIC) -> np.ndarray:
    s = a.shape[0]
    return np.asarray(Image.fromarray(a).resize((2 * s, 2 * s), resample).resize((s, s), resample))


def shift(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.roll(a, (3, 3), axis=(0, 1)))  # a 3-pixel crop/pad: breaks block alignment


ATTACKS = {
    "clean PNG": lambda a: a,
    "JPEG q75": jpeg,
    "2x up + down (bicubic)": rescale,
    "2x up + down (bilinear)": lambda a: rescale(a, Image.BILINEAR),
    "JPEG q75 after 2x up + down": lambda a: jpeg(rescale(a)),
    "JPEG q50 (beyond goal)": lambda a: jpeg(a, 50),
    "3 px shift (known failure)": shift,
}
GOALS = {"clean PNG": 0.99, "JPEG q75": 0.90, "2x up + down (bicubic)": 0.90}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12)))


def measure(size: int, n: int, n_null: int) -> dict:
    clean, source = images(n, size, seed=size)
    tags = np.random.default_rng(1).integers(0, 1 << 16, n)
    t_embed, marked = [], []
    for img, tag in zip(clean, tags):
        t0 = time.perf_counter()
        marked.append(wm.embed_watermark(img, int(tag)))
        t_embed.append(time.perf_counter() - t0)
    rows, scores = {}, {}
    for name, attack in ATTACKS.items():
        det = [wm.detect_watermark(attack(m)) for m in marked]
        scores[name] = np.array([d[1] for d in det])
        rows[name] = (
            np.mean([d[0] for d in det]),
            float(np.mean(scores[name])),
            np.mean([d[2] == f"{t:04x}" for d, t in zip(det, tags)]),
        )
    null_imgs, _ = images(n_null, size, seed=10_000 + size)
    t_detect, null = [], []
    for img in null_imgs:
        t0 = time.perf_counter()
        null.append(wm.detect_watermark(img)[1])
        t_detect.append(time.perf_counter() - t0)
    null_jpeg = np.array([wm.detect_watermark(jpeg(img))[1] for img in null_imgs])
    null = np.array(null)
    return {
        "size": size,
        "n": n,
        "n_null": n_null,
        "source": source,
        "rows": rows,
        "scores": scores,
        "null": null,
        "null_jpeg": null_jpeg,
        "threshold": wm.detection_threshold((size, size)),
        "fp": float(np.mean(null >= wm.detection_threshold((size, size)))),
        "fp_jpeg": float(np.mean(null_jpeg >= wm.detection_threshold((size, size)))),
        "psnr": float(np.mean([psnr(a, b) for a, b in zip(clean, marked)])),
        "max_change": int(max(np.abs(a.astype(int) - b).max() for a, b in zip(clean, marked))),
        "embed_ms": 1e3 * float(np.median(t_embed)),
        "detect_ms": 1e3 * float(np.median(t_detect)),
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 3.6), squeeze=False)
    bins = np.linspace(-0.3, 1.0, 66)
    for ax, r in zip(axes[0], results):
        ax.hist(
            np.concatenate([r["null"], r["null_jpeg"]]),
            bins=bins,
            alpha=0.6,
            label="unwatermarked (PNG + JPEG)",
        )
        for name in ("clean PNG", "JPEG q75", "2x up + down (bicubic)", "JPEG q50 (beyond goal)"):
            ax.hist(r["scores"][name], bins=bins, alpha=0.5, histtype="stepfilled", label=f"marked, {name}")
        ax.axvline(r["threshold"], color="k", ls="--", label=f"threshold {r['threshold']:.3f}")
        ax.set(title=f"{r['size']} px", xlabel="detection score (mean soft bit agreement)", ylabel="images")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        name = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?"
        )
    except OSError:
        name = platform.processor() or "?"
    import os

    return f"{name}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def write_section(path: Path, name: str, text: str) -> None:
    """Replace (or append) the block between `<!-- name -->` markers in `path`, keeping other sections."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) + 1 :]
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def markdown(results: list[dict]) -> str:
    thresholds = ", ".join(f"{r['threshold']:.3f} at {r['size']} px" for r in results)
    lines = [
        "## Provenance: invisible watermark",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} by `python bench/bench_watermark.py`.",
        f"Method `charforge-qim-v1`: dither modulation on 5 low-frequency 8x8-block DCT coefficients of luma, "
        f"step {wm.STEP:g}; 48-bit payload (32-bit fixed signature + 16-bit model tag); detected when the mean "
        f"soft agreement over the signature slots is at least {wm.THRESHOLD_Z:g} null standard deviations "
        f"({thresholds}).",
        "",
    ]
    for r in results:
        lines += [
            f"### {r['size']} px ({r['n']} watermarked, {r['n_null']} unwatermarked; {r['source']})",
            "",
            "| condition | detected | goal | mean score | model tag decoded exactly |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, (rate, score, tag_ok) in r["rows"].items():
            goal = f">= {GOALS[name]:.0%}" if name in GOALS else "-"
            lines.append(f"| {name} | {rate:.1%} | {goal} | {score:.3f} | {tag_ok:.1%} |")
        lines += [
            "",
            f"- false positives on {r['n_null']} unwatermarked images: {r['fp']:.2%} as PNG, "
            f"{r['fp_jpeg']:.2%} after JPEG q75 (goal <= 1%); highest null score {max(r['null'].max(), r['null_jpeg'].max()):.3f}, "
            f"null mean {r['null'].mean():+.3f}, sd {r['null'].std():.3f}",
            f"- image quality: PSNR {r['psnr']:.1f} dB on average, largest change of any channel {r['max_change']} / 255",
            f"- cost: embed {r['embed_ms']:.2f} ms, detect {r['detect_ms']:.2f} ms per image (median, one core)",
            "",
        ]
    lines += ["![watermark score distributions](watermark_scores.png)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="watermarked images per size")
    ap.add_argument("--null", type=int, default=1000, help="unwatermarked images per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="image sides in px")
    ap.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "provenance.md",
        help="markdown file; its watermark section is replaced",
    )
    args = ap.parse_args()
    results = [measure(s, args.n, args.null) for s in args.sizes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(results, args.out.parent / "watermark_scores.png")
    text = markdown(results)
    write_section(args.out, "bench_watermark", text)
    print(text)


if __name__ == "__main__":
    main()
