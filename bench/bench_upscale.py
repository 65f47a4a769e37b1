"""The upscaler on the shipped generator's outputs and its speed (issue 17's goals besides PSNR, which
bench/sr_bench.py measures against Real-ESRGAN on held-out creator pairs).

    python bench/bench_upscale.py speed  [--upscaler default] [--threads 2] [--reps 7]
    python bench/bench_upscale.py tags   [--upscaler default] [--per-tag 40]
    python bench/bench_upscale.py report            # bench/results/upscale.md from the JSON results

speed: ms per 64 -> 256 px image at batch 16 and for one image, for bicubic (PIL, the cheap baseline), the
upscaler in PyTorch fp32, in PyTorch bf16 autocast (only where the CPU computes bf16 natively) and in
onnxruntime fp32; medians of repeated runs after warm-up, every variant in one process, alternating.

tags: for each of the generator's tags, images asking for it (the precision protocol of charforge eval, the
judge tagger_default, p >= 0.25 / argmax), judged on the 64 px originals and on the same images upscaled x2 / x4
and brought back to 64 px (box filter): precision must stay within 0.01. Also the sharpness ratio (variance of
the Laplacian) of the upscaled outputs against 256 px (128 px) renders of fresh creator characters, next to the
same ratio for bicubic, and for the 64 px outputs against 64 px renders (the generator's own softness).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    import platform

    from charforge.core.device import capabilities

    caps = capabilities()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": caps["cpu"],
        "cores": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "torch": caps["torch"],
        "cpu_bf16_native": caps["cpu_bf16"],
        "simd_flags": caps["cpu_flags_simd"],
        "load_avg_at_start": list(__import__("os").getloadavg()),
    }


def renders(n: int, size: int, seed: int) -> np.ndarray:
    from charforge.creators.builtin import BuiltinCreator

    c = BuiltinCreator()
    return c.render(c.sample(n, np.random.default_rng(seed)), size)


# ----------------------------------------------------------------------------------------------- speed


def bench_speed(args) -> dict:
    import torch
    from PIL import Image

    from charforge.sr import load_upscaler

    torch.set_num_threads(args.threads)
    imgs = renders(16, 64, 31337)
    fp32 = load_upscaler(args.upscaler, precision="fp32")
    variants = {
        "bicubic (PIL)": lambda x: np.stack(
            [np.asarray(Image.fromarray(im).resize((256, 256), Image.BICUBIC)) for im in x]
        ),
        "upscaler, torch fp32": lambda x: fp32.upscale(x, 4),
    }
    auto = load_upscaler(args.upscaler, precision="auto")
    if auto.bf16:
        variants["upscaler, torch bf16 (native)"] = lambda x: auto.upscale(x, 4)
    onnx = load_upscaler(args.upscaler, backend="onnx", onnx_threads=args.threads)
    variants["upscaler, onnxruntime fp32"] = lambda x: onnx.upscale(x, 4)
    times: dict[str, dict[str, list[float]]] = {k: {"batch16": [], "single": []} for k in variants}
    for fn in variants.values():  # warm-up
        fn(imgs)
        fn(imgs[:1])
    for _ in range(args.reps):  # alternating, so drifts in machine load hit every variant alike
        for name, fn in variants.items():
            t = time.perf_counter()
            fn(imgs)
            times[name]["batch16"].append((time.perf_counter() - t) / len(imgs) * 1000)
            t = time.perf_counter()
            fn(imgs[:1])
            times[name]["single"].append((time.perf_counter() - t) * 1000)
    rows = {name: {k: statistics.median(v) for k, v in t.items()} | {"runs": t} for name, t in times.items()}
    return {
        "machine": machine(),
        "threads": args.threads,
        "reps": args.reps,
        "upscaler": auto.model_id,
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------------ tags


def bench_tags(args) -> dict:
    import torch

    from charforge import sampling
    from charforge.metrics.sharpness import laplacian_variance
    from charforge.sr import load_upscaler
    from charforge.tagger.net import decide_tags, default_tagger_path, load_tagger

    torch.set_num_threads(args.threads)
    bundle = sampling.load_generator(args.model, device="cpu")
    up = load_upscaler(args.upscaler)
    judge = load_tagger(default_tagger_path())
    schema = bundle.schema
    size = bundle.image_size

    def down(x: np.ndarray) -> np.ndarray:
        s = x.shape[1] // size
        return x.reshape(len(x), size, s, size, s, 3).mean((2, 4)).round().astype(np.uint8)

    hits = {k: {} for k in ("original", "x2", "x4")}
    all_gen = []
    names = list(schema.tags)
    for i, tag in enumerate(names):
        images, _, _ = sampling.characters_for_request(
            bundle, tag, args.per_tag, 10_000 * (i + 1), source="bench"
        )
        all_gen.append(images[: max(1, 200 // len(names) + 1)])
        col = names.index(tag)
        for key, imgs in (
            ("original", images),
            ("x2", down(up.upscale(images, 2))),
            ("x4", down(up.upscale(images, 4))),
        ):
            decided = decide_tags(judge.predict_proba(imgs), schema)
            hits[key][tag] = float(decided[:, col].mean())
    prec = {
        k: {"mean": float(np.mean(list(v.values()))), "min": float(min(v.values())), "per_tag": v}
        for k, v in hits.items()
    }
    gen = np.concatenate(all_gen)[:200]
    ref = {s: renders(len(gen), s, 4242) for s in (64, 128, 256)}
    lap = lambda a: float(laplacian_variance(a).mean())  # noqa: E731
    import torch.nn.functional as F

    def bicubic(x: np.ndarray, s: int) -> np.ndarray:
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        y = F.interpolate(t, scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 255)
        return y.round().byte().permute(0, 2, 3, 1).numpy()

    sharp = {
        "generator 64 px / renders 64 px": lap(gen) / lap(ref[64]),
        "ours x2 / renders 128 px": lap(up.upscale(gen, 2)) / lap(ref[128]),
        "bicubic x2 / renders 128 px": lap(bicubic(gen, 2)) / lap(ref[128]),
        "ours x4 / renders 256 px": lap(up.upscale(gen, 4)) / lap(ref[256]),
        "bicubic x4 / renders 256 px": lap(bicubic(gen, 4)) / lap(ref[256]),
    }
    sheet = RESULTS / "upscale" / "generator_x4.png"
    _sheet(gen[:6], up, bicubic, sheet)
    return {
        "machine": machine(),
        "generator": bundle.model_id,
        "upscaler": up.model_id,
        "per_tag": args.per_tag,
        "precision": prec,
        "sharpness_ratio": sharp,
        "sheet": str(sheet.relative_to(ROOT)),
    }


def _sheet(gen: np.ndarray, up, bicubic, path: Path) -> None:
    from PIL import Image

    from charforge.core.images import image_grid

    near = np.stack([np.asarray(Image.fromarray(g).resize((256, 256), Image.NEAREST)) for g in gen])
    cells = np.stack([c for row in zip(near, bicubic(gen, 4), up.upscale(gen, 4)) for c in row])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(cells, 3)).save(path)


# ---------------------------------------------------------------------------------------------- report


def report() -> str:
    lines = ["# Upscaler: speed and the shipped generator's outputs (bench/bench_upscale.py)", ""]
    sp = RESULTS / "upscale_speed.json"
    if sp.is_file():
        d = json.loads(sp.read_text())
        m = d["machine"]
        lines += [
            f"Speed, 64 -> 256 px (x4), {d['threads']} threads, median of {d['reps']} alternating runs after warm-up; "
            f"{m['date']}, {m['cpu']}, {m['cores']} cores, torch {m['torch']}, native bf16: {m['cpu_bf16_native']}; "
            f"SIMD flags: {' '.join(m['simd_flags'])}; load average at start {m['load_avg_at_start'][0]:.2f}.",
            "",
            "| variant | ms per image, batch 16 | ms for one image | x bicubic (batch) |",
            "|---|---|---|---|",
        ]
        base = d["rows"]["bicubic (PIL)"]["batch16"]
        for name, r in d["rows"].items():
            lines.append(f"| {name} | {r['batch16']:.2f} | {r['single']:.2f} | {r['batch16'] / base:.1f} |")
        lines.append("")
    tg = RESULTS / "upscale_tags.json"
    if tg.is_file():
        d = json.loads(tg.read_text())
        p = d["precision"]
        lines += [
            f"Tags preserved: generator `{d['generator']}`, upscaler `{d['upscaler']}`, {d['per_tag']} images per "
            "tag, judged by tagger_default at 64 px (upscaled images brought back with a box filter); "
            f"{d['machine']['date']}.",
            "",
            "| images | precision mean | min | mean change |",
            "|---|---|---|---|",
        ]
        for k in ("original", "x2", "x4"):
            lines.append(
                f"| {k} | {p[k]['mean']:.4f} | {p[k]['min']:.3f} | {p[k]['mean'] - p['original']['mean']:+.4f} |"
            )
        worst = max(
            ((t, abs(p["x4"]["per_tag"][t] - p["original"]["per_tag"][t])) for t in p["original"]["per_tag"]),
            key=lambda x: x[1],
        )
        lines += [
            "",
            f"Largest per-tag change at x4: {worst[0]} ({worst[1]:.3f}).",
            "",
            "Sharpness ratio (variance of the Laplacian; renders of fresh creator characters, seed 4242):",
            "",
            "| images | ratio |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.2f} |" for k, v in d["sharpness_ratio"].items()]
        lines += ["", f"Sheet: `{d['sheet']}` (columns: generator output 64 px, bicubic x4, ours x4)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("speed", "tags", "report"))
    ap.add_argument("--upscaler", default=None)
    ap.add_argument("--model", default=None, help="generator (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--per-tag", type=int, default=40)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.stage == "speed":
        (RESULTS / "upscale_speed.json").write_text(json.dumps(bench_speed(args), indent=1))
    elif args.stage == "tags":
        (RESULTS / "upscale_tags.json").write_text(json.dumps(bench_tags(args), indent=1))
    (RESULTS / "upscale.md").write_text(report())
    print(report())


if __name__ == "__main__":
    main()
