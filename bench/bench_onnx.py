"""PyTorch vs onnxruntime generation speed (single image and batch 64). Writes bench/results/provenance_onnx.md.

    python bench/bench_onnx.py [--presets acgan-64-cpu acgan-64 dcgan-64] [--repeats 15] [--threads 1]

Each preset's generator is built with random weights (speed does not depend on training) unless the shipped
default model exists, which is measured too. Both backends run the raw network (float32 out), alternating
call by call in the same process; numbers are medians.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_watermark import machine, write_section  # noqa: E402

from charforge.core.tags import make_girls_moe_schema  # noqa: E402
from charforge.export.onnx import OnnxGenerator, export_generator_onnx  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def bundles(presets: list[str]):
    from charforge.sampling import GeneratorBundle, available_generators, load_generator
    from charforge.train.presets import build_generator, resolve_preset

    if "default" in available_generators():
        yield "shipped default (trained)", load_generator(None)
    schema = make_girls_moe_schema()
    for name in presets:
        torch.manual_seed(0)
        p = resolve_preset(name)
        net = build_generator(p, len(schema)).eval().requires_grad_(False)
        yield (
            f"{name} (random weights)",
            GeneratorBundle(
                net,
                schema,
                np.full(len(schema), 0.2),
                p.to_dict(),
                p.z_dim,
                p.resolution,
                name,
                "",
                Path(name),
            ),
        )


def time_pair(bundle, gen: OnnxGenerator, batch: int, repeats: int) -> tuple[float, float, float]:
    """(torch median s, onnxruntime median s, max abs diff) for one batch size; runs alternate."""
    rng = np.random.default_rng(batch)
    z = rng.standard_normal((batch, bundle.z_dim)).astype(np.float32)
    tags = bundle.schema.sample_conditional(batch, rng, np.asarray(bundle.freqs))
    zt, tt = torch.from_numpy(z), torch.from_numpy(tags)
    t_torch, t_ort = [], []
    with torch.inference_mode():
        ref = bundle.net(zt, tt).numpy()
        out = gen.run(z, tags)  # warm-up for both
        for _ in range(repeats):
            t0 = time.perf_counter()
            bundle.net(zt, tt)
            t1 = time.perf_counter()
            gen.run(z, tags)
            t2 = time.perf_counter()
            t_torch.append(t1 - t0)
            t_ort.append(t2 - t1)
    return float(np.median(t_torch)), float(np.median(t_ort)), float(np.abs(out - ref).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["acgan-64-cpu", "acgan-64", "dcgan-64"])
    ap.add_argument("--repeats", type=int, default=15, help="timed calls per backend and batch size")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both backends")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "provenance.md",
        help="markdown file; its ONNX section is replaced",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lines = [
        "## ONNX export: PyTorch vs onnxruntime generation speed",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, {args.threads} thread(s) for both backends, "
        f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}; fp32, median of "
        f"{args.repeats} alternating calls, raw network output (no uint8 conversion); 1-min load average at start "
        f"{__import__('os').getloadavg()[0]:.1f} (other jobs share the machine, so compare the ratio column). "
        "`python bench/bench_onnx.py`.",
        "",
        "| model | batch | PyTorch ms | onnxruntime ms | images/s (ORT) | speed-up ORT / PyTorch | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, bundle in bundles(args.presets):
            path = export_generator_onnx(bundle, Path(tmp) / "g.onnx")
            gen = OnnxGenerator(path, threads=args.threads)
            for b in args.batches:
                tt, to, err = time_pair(bundle, gen, b, args.repeats)
                lines.append(
                    f"| {label} | {b} | {1e3 * tt:.2f} | {1e3 * to:.2f} | {b / to:.0f} | {tt / to:.2f}x | {err:.1e} |"
                )
                print(lines[-1], flush=True)
    write_section(args.out, "bench_onnx", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
