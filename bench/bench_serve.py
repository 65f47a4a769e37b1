"""Studio load benchmark: latency of single requests, then N concurrent clients on loopback for S seconds.

    python bench/bench_serve.py [--seconds 60] [--clients 32] [--out bench/results/serve.md]

Starts the studio server as a child process on 127.0.0.1 (a free port; loopback only) with the shipped
generator / f2p model / builtin creator where installed. Where a shipped model is missing, the child builds a
stand-in with the same cost: a randomly initialised generator of the shipped preset (acgan-64-cpu), and, for
/fit, the learned-embedder path replaced by the creator render + similarity that fit() also does. The results
file says which was used.

Phase 1 (latency, one client, sequential): /generate with 1 image, /render at 128 and 256 px; p50/p95 over
--reps requests, next to the same library call made in-process (the baseline: HTTP + PNG + watermark overhead).
Phase 2 (load): --clients async clients for --seconds, mixing /generate (8 images), /render and /fit; every
non-200 answer counts as an error. Peak RSS of the server is read from /proc/PID/status (VmHWM).

    python bench/bench_serve.py --scenario npc [--seconds 60] [--clients 32] [--npc-clients 4] [--out FILE]

The hostile-traffic scenario (issue #19): the server runs with `charforge serve`'s defaults (2 workers, queue
32, 10 s queue wait, 20 s /npc budget); --npc-clients of the clients send /npc at the schema's limits (count
500, min_distance 0.25 and 0.04 in turn) back to back, the rest single-image /generate. The goal: p95 of
/generate <= 2 s, and no errors but 503s that say when to retry (a Retry-After header and "retry" in the
message). Every request has a 120 s client timeout and no client starts one after --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from charforge.core.device import cpu_name as cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MIX = (("generate8", 0.4), ("render", 0.4), ("fit", 0.2))  # share of requests per endpoint in the load phase
NPC_LIMITS = ({"count": 500, "min_distance": 0.25}, {"count": 500, "min_distance": 0.04})  # schema limits
GENERATE_P95_GOAL_S = 2.0


# ---------------------------------------------------------------- the server child
def child_models() -> tuple[dict, list[str]]:
    import numpy as np
    import torch

    from charforge.serve.server import load_models

    notes: list[str] = []
    models = load_models(None, None, "builtin", warn=lambda msg: None)
    if not models["generators"]:
        from charforge.core.tags import make_girls_moe_schema
        from charforge.sampling import GeneratorBundle
        from charforge.train.presets import build_generator, resolve_preset

        preset, schema = resolve_preset("acgan-64-cpu"), make_girls_moe_schema()
        torch.manual_seed(0)
        net = build_generator(preset, len(schema)).eval().requires_grad_(False)
        freqs = schema.frequencies(schema.sample_training(1000, np.random.default_rng(0)))
        models["generators"] = {
            "default": GeneratorBundle(
                net,
                schema,
                freqs,
                preset.to_dict(),
                preset.z_dim,
                preset.resolution,
                "untrained-acgan-64-cpu",
                "0" * 64,
                Path("none"),
            )
        }
        notes.append(
            "generator: untrained acgan-64-cpu stand-in (same architecture and cost as the shipped preset)"
        )
    return models, notes


def stand_in_fit(f2p, images, mode="fast"):
    """Stand-in for charforge.f2p.fit when no f2p model is shipped: decode, resize, sample, render at 64 px."""
    from types import SimpleNamespace

    import numpy as np

    from charforge.core.images import resize_square

    cr = f2p.creator
    small = resize_square(images[0], 64)
    params = cr.space.to_dicts(cr.space.sample(1, np.random.default_rng(int(small.sum()) % 1000)))[0]
    preview = cr.render(cr.space.from_dicts([params]), 64)[0]
    return SimpleNamespace(params=params, preview=preview, similarity=0.0, timings={}, mode=mode, notes=[])


def run_child(port: int, concurrency: int, scenario: str = "mix") -> None:
    import uvicorn

    from charforge.serve.app import ServeSettings, create_app
    from charforge.serve.server import torch_threads_per_job

    models, notes = child_models()
    fitter = None
    if models["f2p"] is None:
        from types import SimpleNamespace

        models["f2p"] = SimpleNamespace(creator=models["creator"])
        fitter = stand_in_fit
        notes.append("fit: stand-in (decode + resize + render); no shipped f2p model")
    print(json.dumps({"notes": notes}), flush=True)
    if scenario == "npc":  # what `charforge serve` runs with by default
        settings = ServeSettings(
            port=port, max_concurrency=concurrency, torch_threads=torch_threads_per_job(concurrency)
        )
    else:
        settings = ServeSettings(
            port=port,
            max_concurrency=concurrency,
            max_queue=256,
            queue_wait_s=60.0,
            timeout_s=60.0,
            torch_threads=torch_threads_per_job(concurrency),
        )
    app = create_app(settings, fitter=fitter, **models)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- the clients
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((256, 256)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def request_for(kind: str, rng: random.Random, photo: bytes) -> tuple[str, dict]:
    if kind == "generate1":
        return "/api/v1/generate", {"json": {"count": 1, "seed": rng.randrange(2**31 - 64)}}
    if kind == "generate8":
        return "/api/v1/generate", {"json": {"count": 8, "seed": rng.randrange(2**31 - 64)}}
    if kind.startswith("render"):
        size = int(kind[len("render") :] or 128)
        return "/api/v1/render", {"json": {"params": {}, "size": size}}
    return "/api/v1/fit", {"files": {"file": ("photo.jpg", photo, "image/jpeg")}, "data": {"mode": "fast"}}


async def one(client, kind: str, rng: random.Random, photo: bytes, lat: dict, errors: dict) -> None:
    path, kw = request_for(kind, rng, photo)
    t = time.perf_counter()
    try:
        r = await client.post(path, **kw)
        ok = r.status_code == 200
        code = r.status_code
    except Exception as e:  # a refused or dropped connection is an error too
        ok, code = False, type(e).__name__
    lat.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
    if not ok:
        errors[f"{kind}:{code}"] = errors.get(f"{kind}:{code}", 0) + 1


async def latency_phase(url: str, reps: int, photo: bytes) -> tuple[dict, dict]:
    import httpx

    lat: dict = {}
    errors: dict = {}
    rng = random.Random(0)
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        for kind in ("generate1", "render128", "render256"):
            for _ in range(3):  # warm-up
                await one(c, kind, rng, photo, {}, errors)
            for _ in range(reps):
                await one(c, kind, rng, photo, lat, errors)
    return lat, errors


async def load_phase(url: str, clients: int, seconds: float, photo: bytes) -> tuple[dict, dict, float]:
    import httpx

    lat: dict = {}
    errors: dict = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:

        async def client(i: int) -> None:
            rng = random.Random(i)
            while time.monotonic() < deadline:  # bounded by the deadline
                kind = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
                await one(c, kind, rng, photo, lat, errors)

        t0 = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.monotonic() - t0
    return lat, errors, wall


async def npc_load_phase(url: str, clients: int, npc_clients: int, seconds: float) -> dict:
    """`clients` concurrent clients for `seconds`: `npc_clients` of them send /npc at the schema's limits, the
    others single-image /generate. Returns latencies (ms) and outcomes per kind."""
    import httpx

    lat: dict[str, list[float]] = {"generate1": [], "npc": []}
    outcomes: dict[str, int] = {}
    bad: list[str] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    def note(key: str) -> None:
        outcomes[key] = outcomes.get(key, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:

        async def client(i: int) -> None:
            rng, k = random.Random(i), 0
            kind = "npc" if i < npc_clients else "generate1"
            while time.monotonic() < deadline:  # bounded by the deadline (and each request by its timeout)
                body = (
                    {**NPC_LIMITS[k % len(NPC_LIMITS)], "seed": rng.randrange(2**31)}
                    if kind == "npc"
                    else {"count": 1, "seed": rng.randrange(2**31 - 64)}
                )
                k += 1
                t = time.perf_counter()
                try:
                    r = await c.post("/api/v1/npc" if kind == "npc" else "/api/v1/generate", json=body)
                except Exception as e:  # a refused or dropped connection is an error
                    note(f"{kind}:{type(e).__name__}")
                    bad.append(f"{kind}: {type(e).__name__}: {e}"[:200])
                    continue
                lat[kind].append((time.perf_counter() - t) * 1000)
                if r.status_code == 200:
                    note(f"{kind}:200")
                    continue
                detail = ""
                try:
                    detail = str(r.json().get("detail", ""))
                except ValueError:
                    pass
                says_when = r.status_code == 503 and r.headers.get("retry-after") and "retry" in detail
                note(
                    f"{kind}:{r.status_code}{' (Retry-After ' + r.headers['retry-after'] + ' s)' if says_when else ''}"
                )
                if not says_when:
                    bad.append(f"{kind}: {r.status_code} {detail[:160]}")
                elif r.headers.get("retry-after"):
                    await asyncio.sleep(min(float(r.headers["retry-after"]), 2.0))  # as a polite client does

        t0 = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.monotonic() - t0
    return {"lat": lat, "outcomes": outcomes, "bad": bad, "wall": wall}


def npc_report(args, notes, res: dict, rss: float, loadavg: tuple[float, float]) -> str:
    lat, gen = res["lat"], res["lat"]["generate1"]
    rows = ["| request | answers | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for k in ("generate1", "npc"):
        v = lat[k]
        if v:
            rows.append(f"| {k} | {len(v)} | {pct(v, 50):.0f} | {pct(v, 95):.0f} | {max(v):.0f} |")
    p95 = pct(gen, 95) / 1000 if gen else float("inf")
    outcomes = ", ".join(f"{k} x{n}" for k, n in sorted(res["outcomes"].items()))
    met = p95 <= GENERATE_P95_GOAL_S and not res["bad"]
    return "\n".join(
        [
            "## Studio under hostile load (bench/bench_serve.py --scenario npc)",
            "",
            f"Machine: {os.cpu_count()}-core CPU ({cpu_model()}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"server defaults (--max-concurrency {args.concurrency}, queue 32, 10 s wait, 20 s /npc budget). "
            f"1-minute load average before / after: {loadavg[0]:.1f} / {loadavg[1]:.1f}"
            f"{' (other jobs were sharing the CPU)' if loadavg[0] > 1.5 else ''}.",
            "Models: "
            + ("; ".join(notes) if notes else "shipped generator, f2p model and builtin creator")
            + ".",
            "",
            f"{args.clients} clients for {args.seconds:.0f} s ({res['wall']:.0f} s until the last answer): "
            f"{args.npc_clients} send /npc at the schema's limits (count 500, min_distance 0.25 / 0.04), "
            f"the rest single-image /generate.",
            "",
            *rows,
            "",
            f"Outcomes: {outcomes}. Server peak RSS {rss:.0f} MB.",
            f"Errors other than 503-with-Retry-After: {len(res['bad'])}"
            + (f" (first: {res['bad'][0]})" if res["bad"] else ""),
            f"Goal (/generate p95 <= {GENERATE_P95_GOAL_S:g} s, no other errors): {'met' if met else 'NOT met'} "
            f"(p95 {p95:.2f} s).",
            "",
        ]
    )


# ---------------------------------------------------------------- baseline, stats, report
def library_baseline(reps: int) -> dict:
    """The same work in-process, without HTTP/PNG: generate(1) and creator.render at 128/256 px (ms)."""
    import numpy as np

    from charforge import sampling

    models, _ = child_models()
    bundle = next(iter(models["generators"].values()))
    cr = models["creator"]
    rng = np.random.default_rng(0)
    jobs = {
        "generate1": lambda: sampling.generate(
            bundle, sampling.sample_tags(bundle, None, 1, rng), seeds=[int(rng.integers(1e9))]
        ),
        "render128": lambda: cr.render(cr.space.defaults(1), 128),
        "render256": lambda: cr.render(cr.space.defaults(1), 256),
    }
    from charforge.provenance import png_bytes

    meta = {"model_sha256": bundle.sha256, "seed": 1, "tags": ["smile"]}
    out = {}
    for name, fn in jobs.items():
        fn()
        times, with_png = [], []
        for _ in range(reps):
            t = time.perf_counter()
            image = fn()[0]
            t1 = time.perf_counter()
            png_bytes(image, meta)
            times.append((t1 - t) * 1000)
            with_png.append((time.perf_counter() - t) * 1000)
        out[name] = statistics.median(times)
        out[name + "+png"] = statistics.median(with_png)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(args, notes, lat1, base, load, errors, wall, rss, loadavg) -> str:
    goals = {"generate1": 50.0, "render128": 20.0}
    rows = [
        "| request | HTTP p50 ms | HTTP p95 ms | library median ms | library + PNG/watermark ms | HTTP p50 / library | goal p95 |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in ("generate1", "render128", "render256"):
        p50, p95 = pct(lat1[k], 50), pct(lat1[k], 95)
        goal = f"<= {goals[k]:.0f} ms: {'met' if p95 <= goals[k] else 'NOT met'}" if k in goals else "-"
        rows.append(
            f"| {k} | {p50:.1f} | {p95:.1f} | {base[k]:.1f} | {base[k + '+png']:.1f} | {p50 / base[k]:.1f}x | {goal} |"
        )
    total = sum(len(v) for v in load.values())
    lrows = ["| endpoint | requests | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for k, v in sorted(load.items()):
        lrows.append(f"| {k} | {len(v)} | {pct(v, 50):.0f} | {pct(v, 95):.0f} | {max(v):.0f} |")
    err = ", ".join(f"{k} x{n}" for k, n in errors.items()) or "none"
    return "\n".join(
        [
            "## Studio server (bench/bench_serve.py)",
            "",
            f"Machine: {os.cpu_count()}-core CPU ({cpu_model()}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"server: uvicorn, --max-concurrency {args.concurrency}, 1 torch thread per job. "
            f"1-minute load average before / after the run: {loadavg[0]:.1f} / {loadavg[1]:.1f} "
            f"({'other jobs were sharing the CPU, which inflates every number below' if loadavg[0] > 1.5 else 'no other jobs running'}).",
            "Models: "
            + ("; ".join(notes) if notes else "shipped generator, f2p model and builtin creator")
            + ".",
            "",
            f"### Latency, one client, {args.reps} sequential requests each (after 3 warm-up)",
            "",
            *rows,
            "",
            "The library columns are the same work in-process, without and with the PNG encoding + invisible watermark",
            "that every image the API returns carries; the ratio is the whole cost of serving it over HTTP.",
            "",
            f"### Load: {args.clients} concurrent clients for {args.seconds:.0f} s "
            f"(mix {', '.join(f'{k} {w:.0%}' for k, w in MIX)})",
            "",
            *lrows,
            "",
            f"Throughput {total / wall:.1f} requests/s; errors: {err}; server peak RSS {rss:.0f} MB.",
            "Under load, latency is mostly queueing: 2 cores serve 32 clients, so each request waits for about",
            "(clients / throughput) seconds. Single-request latency is the table above.",
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the load phase, in seconds")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients in the load phase")
    ap.add_argument("--reps", type=int, default=60, help="requests per kind in the latency phase")
    ap.add_argument("--concurrency", type=int, default=2, help="server --max-concurrency (jobs at once)")
    ap.add_argument("--out", type=Path, default=None, help="results file (default bench/results/serve.md)")
    ap.add_argument(
        "--scenario", choices=("mix", "npc"), default="mix", help="mix: latency + mixed load; npc: see above"
    )
    ap.add_argument("--npc-clients", type=int, default=4, help="clients sending /npc in --scenario npc")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return run_child(args.child, args.concurrency, args.scenario)
    if not (1 <= args.clients <= 256 and 1 <= args.seconds <= 600 and 0 <= args.npc_clients < args.clients):
        raise SystemExit("--clients 1..256, --seconds 1..600, --npc-clients 0..clients-1")
    if args.scenario == "npc":
        return main_npc(args)
    args.out = args.out or ROOT / "bench" / "results" / "serve.md"
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_child(args, port)
    try:
        notes = json.loads(proc.stdout.readline())["notes"]
        wait_until_up(url, proc)
        photo = photo_bytes()
        lat1, err1 = asyncio.run(latency_phase(url, args.reps, photo))
        load, errors, wall = asyncio.run(load_phase(url, args.clients, args.seconds, photo))
        errors.update({f"latency:{k}": v for k, v in err1.items()})
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    base = library_baseline(args.reps)
    text = report(args, notes, lat1, base, load, errors, wall, rss, (load_before, os.getloadavg()[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


def start_child(args, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", str(port), "--concurrency", str(args.concurrency)]
        + ["--scenario", args.scenario],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHARFORGE_PROGRESS": "0"},
    )


def main_npc(args) -> None:
    load_before = os.getloadavg()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # loopback only
    proc = start_child(args, port)
    try:
        notes = json.loads(proc.stdout.readline())["notes"]
        wait_until_up(url, proc)
        res = asyncio.run(npc_load_phase(url, args.clients, args.npc_clients, args.seconds))
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = npc_report(args, notes, res, rss, (load_before, os.getloadavg()[0]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server did not answer within {timeout_s:.0f} s")


if __name__ == "__main__":
    main()
