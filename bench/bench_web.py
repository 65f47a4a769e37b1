"""Speed and size of the exported static site (`charforge export web`) in headless chromium.

    .venv/bin/python bench/bench_web.py                 # shipped generator -> bench/results/web.md
    .venv/bin/python bench/bench_web.py --repeats 3 --images 20 --out /tmp/web.md

For each configuration the site is opened `--repeats` times in a fresh browser context (a cold load each time)
with `?bench=N`: the page times N one-image generations (portable-v1 noise and tags, the ONNX network in
onnxruntime-web's WASM, pixels; no PNG), a batch of 8 and one image with watermark + PNG encoding. The numbers
are medians over every run. Configurations: 1 thread on a plain static server (no COOP/COEP headers: what
GitHub Pages or itch.io give), then 1 and 2 threads on a server sending COOP/COEP (cross-origin isolated, what
the site's _headers file asks Netlify / Cloudflare Pages for). As a reference, the same model in Python
onnxruntime and PyTorch on one CPU thread. Other engineers' jobs share this CPU: the load average is recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gzip
import http.server
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SIMD = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
)


class Handler(http.server.SimpleHTTPRequestHandler):
    isolate = False

    def end_headers(self):
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):  # quiet
        pass


def serve(site: Path, isolate: bool) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = type("H", (Handler,), {"isolate": isolate})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def lscpu() -> dict[str, str]:
    """The two fields the report reads, as lscpu names them (from charforge.core.device)."""
    from charforge.core.device import cpu_flags, cpu_name

    return {"Model name": cpu_name(), "Flags": " ".join(sorted(cpu_flags()))}


def renderer_cpu_ms() -> float:
    """CPU time (user + system, ms) of the chromium renderer processes this script started (its descendants)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, stat = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            parent[int(d.name)] = int(fields[1])
            stat[int(d.name)] = (int(fields[11]) + int(fields[12])) * 1000 / tick
        except (OSError, IndexError, ValueError):
            continue
    me, total = os.getpid(), 0.0
    for pid, cpu in stat.items():
        p, seen = pid, 0
        while p in parent and p != me and seen < 50:
            p, seen = parent[p], seen + 1
        if p != me:
            continue
        try:
            if b"--type=renderer" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                total += cpu
        except OSError:
            continue
    return total


def browser_runs(site: Path, threads: int, isolate: bool, repeats: int, images: int) -> dict:
    from playwright.sync_api import sync_playwright

    srv, url = serve(site, isolate)
    runs = []
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            version = b.version
            for _ in range(repeats):
                ctx = b.new_context()
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.goto(f"{url}/?bench={images}&threads={threads}&bench_wait=1")
                page.wait_for_selector("#bench-go", state="attached", timeout=300_000)
                cpu0 = renderer_cpu_ms()
                page.click("#bench-go")
                page.wait_for_selector("#bench", state="attached", timeout=300_000)
                run = json.loads(page.inner_text("#bench"))
                run["cpu_ms_per_image"] = (renderer_cpu_ms() - cpu0) / (images + 10)  # + warm-up, 8, PNG one
                runs.append(run)
                if errors:
                    raise RuntimeError(f"page errors: {errors}")
                ctx.close()
            b.close()
    finally:
        srv.shutdown()
    times = [t for r in runs for t in r["times"]]
    return {
        "threads": threads,
        "isolated": all(r["isolated"] for r in runs),
        "ms_per_image_median": statistics.median(times),
        "ms_per_image_p10": sorted(times)[len(times) // 10],
        "ms_per_image_p90": sorted(times)[(9 * len(times)) // 10],
        "batch8_ms_per_image_median": statistics.median(r["batch8_ms_per_image"] for r in runs),
        "one_with_watermark_and_png_ms_median": statistics.median(r["one_with_png_ms"] for r in runs),
        "load_ms_median": statistics.median(r["load_ms"] for r in runs),
        "cpu_ms_per_image_median": statistics.median(r["cpu_ms_per_image"] for r in runs),
        "n_images": len(times),
        "chromium": version,
    }


def python_reference(site: Path, images: int) -> dict:
    """The same ONNX file in Python onnxruntime, and the model in PyTorch, one thread each, batch 1."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from charforge import sampling
    from charforge.web import seeds

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        str(site / "model" / "generator.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    doc = json.loads((site / "model" / "model.json").read_text())
    bundle = sampling.load_generator(None, device="cpu")
    tags = np.zeros((1, len(doc["tag_names"])), np.float32)
    ort_t, torch_t = [], []
    torch.set_num_threads(1)
    for i in range(images + 1):
        z = seeds.noise([1000 + i], doc["z_dim"])
        t0 = time.perf_counter()
        sess.run(["image"], {"z": z, "tags": tags})
        ort_t.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        with torch.inference_mode():
            bundle.sample(torch.from_numpy(z), torch.from_numpy(tags))
        torch_t.append((time.perf_counter() - t0) * 1000)
    return {"onnxruntime_ms": statistics.median(ort_t[1:]), "torch_ms": statistics.median(torch_t[1:])}


def sizes(site: Path) -> dict:
    manifest = json.loads((site / "site-manifest.json").read_text())
    first = [
        "index.html",
        "site.js",
        "site.css",
        "portable.js",
        "generator.js",
        "model/model.json",
        "model/generator.onnx",
        "ort/ort.wasm.min.js",
        "ort/ort-wasm-simd-threaded.mjs",
        "ort/ort-wasm-simd-threaded.wasm",
    ]
    raw = {f: manifest["files"][f]["bytes"] for f in first}
    gz = {f: len(gzip.compress((site / f).read_bytes(), 6)) for f in first}
    return {"files": raw, "gzip": gz, "total": sum(raw.values()), "total_gzip": sum(gz.values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, help="an exported site (default: export the shipped generator)")
    ap.add_argument("--repeats", type=int, default=5, help="cold page loads per configuration")
    ap.add_argument("--images", type=int, default=20, help="timed one-image generations per load")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "web.md")
    ap.add_argument("--max-threads", type=int, default=2, help="largest WASM thread count to try (isolated)")
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            site = Path(tmp) / "site"
            subprocess.run(
                [sys.executable, "-m", "charforge", "export", "web", "-o", str(site)],
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        configs = [(1, False)] + [(t, True) for t in range(1, args.max_threads + 1)]
        results = [browser_runs(site, t, iso, args.repeats, args.images) for t, iso in configs]
        ref = python_reference(site, args.images * 2)
        size = sizes(site)
        model = json.loads((site / "model" / "model.json").read_text())
    load_after = os.getloadavg()
    cpu = lscpu()
    flags = set(cpu.get("Flags", "").split())
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu.get("Model name", platform.processor()),
        "cores": os.cpu_count(),
        "simd": [f for f in SIMD if f in flags],
        "load_before": load_before,
        "load_after": load_after,
        "model": f"{model['model_id']} ({model['image_size']} px, z {model['z_dim']}, {len(model['tag_names'])} tags)",
        "results": results,
        "python_reference": ref,
        "size": size,
    }
    write_markdown(report, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(args.out.read_text())
    return 0


def write_markdown(r: dict, out: Path) -> None:
    la = lambda t: ", ".join(f"{x:.2f}" for x in t)  # noqa: E731
    lines = [
        "## In the browser: the exported static site (bench/bench_web.py)",
        "",
        f"- date: {r['date']}; machine: {r['cpu']}, {r['cores']} cores (shared with other engineers' jobs)",
        f"- SIMD flags (lscpu): {' '.join(r['simd'])}",
        f"- load average (1, 5, 15 min) before: {la(r['load_before'])}; after: {la(r['load_after'])}",
        f"- model: the shipped generator, {r['model']}; runtime onnxruntime-web 1.30.0 (WASM, SIMD build); "
        f"headless chromium {r['results'][0]['chromium']}",
        "",
        "### Time per image (medians over every timed image of every cold load)",
        "",
        "| configuration | ms / image (batch 1) | p10-p90 | renderer CPU ms / image | ms / image (batch 8) "
        "| 1 image + watermark + PNG | page load to ready |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in r["results"]:
        name = f"{x['threads']} thread{'s' if x['threads'] > 1 else ''}, " + (
            "COOP/COEP (cross-origin isolated)" if x["isolated"] else "plain static server"
        )
        lines.append(
            f"| {name} | **{x['ms_per_image_median']:.1f}** | {x['ms_per_image_p10']:.1f}-{x['ms_per_image_p90']:.1f} "
            f"| {x['cpu_ms_per_image_median']:.1f} | {x['batch8_ms_per_image_median']:.1f} | {x['one_with_watermark_and_png_ms_median']:.1f} ms "
            f"| {x['load_ms_median'] / 1000:.2f} s |"
        )
    ref = r["python_reference"]
    lines += [
        "",
        f"Reference, same model, one CPU thread, batch 1: Python onnxruntime {ref['onnxruntime_ms']:.1f} ms, "
        f"PyTorch {ref['torch_ms']:.1f} ms.",
        "",
        f"Each configuration: {r['results'][0]['n_images']} timed images. One image = portable-v1 noise and tags, "
        "the network, pixels; the watermark and PNG column adds the ported invisible watermark and the PNG encoder. "
        "Wall-clock times include waiting for a core while other jobs run (see the load average); the renderer CPU "
        "column (the page process's CPU time over every image of the run, batch-8 and PNG ones included, all "
        "threads summed) does not wait, so it is the steadier measure of the work per image on this CPU.",
        "Goal: <= 50 ms per image single-threaded (make.girls.moe took 5.5-7 s on 2017 laptops).",
        "",
        "### First load",
        "",
        "| file | bytes | gzip -6 |",
        "|---|---|---|",
    ]
    s = r["size"]
    for f, n in s["files"].items():
        lines.append(f"| {f} | {n:,} | {s['gzip'][f]:,} |")
    lines += [
        f"| **total** | **{s['total']:,}** ({s['total'] / 1e6:.1f} MB) | **{s['total_gzip']:,}** ({s['total_gzip'] / 1e6:.1f} MB) |",
        "",
        "Most of it is onnxruntime-web's WASM (one build for every model). Browsers cache it; a host that "
        "compresses (most do) sends the gzip column.",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
