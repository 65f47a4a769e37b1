"""Benchmark evaluation: feature extraction speed and the wall time of a full `charforge eval`.

    python bench/bench_eval.py                       # feature extraction only (a minute)
    python bench/bench_eval.py --full --data data/builtin64 --images 10000

Feature extraction: images/s, median of --repeats runs, for the tagger's domain features and for
EfficientNet-Lite0 generic features on the onnxruntime backend, with eager PyTorch run side by side in the
same process as the baseline (the ratio is onnx / torch). Full eval: every metric at CLI defaults on the first
--images images of --data, for --model (default: the shipped generator; without one, an untrained generator
of the acgan-64-cpu preset, which costs the same to run). Results go to bench/results/eval.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from charforge.core.device import cpu_name as cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHARFORGE_PROGRESS", "0")


def rate(fn, images: np.ndarray, repeats: int) -> float:
    """Median images/s over `repeats` timed calls (after one warm-up call)."""
    fn(images[:8])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(images)
        times.append(time.perf_counter() - t0)
    return len(images) / float(np.median(times))


def bench_features(images: np.ndarray, repeats: int, tagger) -> list[tuple[str, float]]:
    from charforge.models.features import generic_features

    rows = [("tagger features (domain), 64 px in", rate(tagger.features, images, repeats))]
    onnx = rate(lambda x: generic_features(x, backend="onnx"), images, repeats)
    eager = rate(lambda x: generic_features(x, backend="torch"), images, repeats)
    rows += [
        ("EfficientNet-Lite0 features (generic), onnxruntime", onnx),
        ("EfficientNet-Lite0 features (generic), eager PyTorch (baseline)", eager),
    ]
    return rows


def _tagger():
    from charforge.tagger.net import Tagger, TaggerConfig, TaggerNet, default_tagger_path, load_tagger

    path = default_tagger_path()
    if path is not None:
        return load_tagger(path), f"shipped ({path.name})"
    from charforge.core.tags import make_girls_moe_schema

    schema = make_girls_moe_schema()
    torch.manual_seed(0)
    return Tagger(
        TaggerNet(TaggerConfig(n_tags=len(schema))), schema
    ), "untrained default config (no shipped tagger yet)"


def _model_spec(model: str | None, schema, freqs, tmp: Path) -> tuple[str, str]:
    from charforge import sampling

    if model is not None:
        return model, model
    if "default" in sampling.available_generators():
        return "default", "shipped default"
    from charforge.models.io import save_model
    from charforge.train.presets import build_generator, resolve_preset

    preset = resolve_preset("acgan-64-cpu")
    torch.manual_seed(0)
    net = build_generator(preset, len(schema))
    path = tmp / "generator_untrained.safetensors"
    save_model(
        path,
        net.state_dict(),
        kind="generator",
        config=preset.to_dict(),
        extra={
            "tag_schema": schema.to_dict(),
            "tag_freqs": np.asarray(freqs).tolist(),
            "model_id": "bench-untrained",
        },
    )
    return str(path), "untrained acgan-64-cpu (no shipped generator yet; same cost, meaningless scores)"


def bench_full(data_dir: str, n_images: int, model: str | None, tagger_path) -> dict:
    from charforge.data.packed import load_packed, write_packed
    from charforge.metrics.report import evaluate_model

    src = load_packed(data_dir)
    n_images = min(n_images, len(src))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        write_packed(data, np.asarray(src.images[:n_images]), np.asarray(src.tags[:n_images]), src.schema)
        spec, label = _model_spec(model, src.schema, src.tag_frequencies, tmp)
        t0 = time.perf_counter()
        rep = evaluate_model(spec, data, tmp / "report", tagger_path=tagger_path)
        wall = time.perf_counter() - t0
    per_metric = {k: v.get("seconds") for k, v in rep["metrics"].items()}
    return {"images": n_images, "model": label, "wall": wall, "per_metric": per_metric}


def write_results(path: Path, feats, tagger_label: str, full: dict | None, threads: int) -> str:
    load = os.getloadavg()[0]
    lines = [
        "## Evaluation (bench/bench_eval.py)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, torch threads {threads}; "
        f"load average at the end {load:.1f} (the CPU is shared, so absolute rates are pessimistic). "
        f"Date {time.strftime('%Y-%m-%d')}. Tagger: {tagger_label}.",
        "",
        "| feature extraction | images/s (median) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {r:.1f} |" for name, r in feats]
    onnx, eager = feats[1][1], feats[2][1]
    lines += [
        "",
        f"onnxruntime / eager PyTorch for the generic features: **{onnx / eager:.1f}x** (same process, same images; "
        "outputs agree to 1e-5).",
        "",
    ]
    if full is not None:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in full["per_metric"].items() if v is not None)
        lines += [
            f"Full `charforge eval` (all 9 metrics at CLI defaults: 5 runs x 1000 images for FID/KID, 100 images x 34 tags "
            f"for precision) on {full['images']} images, model: {full['model']}: **{full['wall']:.0f} s** wall ({parts}).",
            "",
        ]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10_000, help="dataset images for the full eval")
    ap.add_argument("--feature-images", type=int, default=128, help="images per timed feature call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also time a full `charforge eval`")
    ap.add_argument("--data", default="data/builtin64")
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "eval.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tagger, label = _tagger()
    images = np.random.default_rng(0).integers(0, 256, (args.feature_images, 64, 64, 3), dtype=np.uint8)
    feats = bench_features(images, args.repeats, tagger)
    full = (
        bench_full(args.data, args.images, args.model, getattr(tagger, "path", None)) if args.full else None
    )
    print(write_results(Path(args.out), feats, label, full, args.threads))


if __name__ == "__main__":
    main()
