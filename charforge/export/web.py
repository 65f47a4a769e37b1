"""`charforge export web`: a self-contained static character generator for any static file host.

    site/
      index.html, site.js, site.css        the page (no inline script; its own Content-Security-Policy)
      portable.js, generator.js            portable-v1 seeds and the browser generator (shared with the studio)
      model/generator.onnx, generator.json the ONNX export and its sidecar (schema, freqs, tag recipe, seed spec)
      model/model.json                     what the page reads: the sidecar plus the watermark layout and the
                                           PNG provenance fields
      ort/                                 onnxruntime-web's JS + WASM (vendored at install time, MIT)
      _headers                             COOP/COEP (threads) and the CSP, for hosts that read it (Netlify,
                                           Cloudflare Pages); others serve the site single-threaded
      site-manifest.json                   every file's sha256 and size, the runtime version and licence

Everything is generated in the visitor's browser; nothing is uploaded. Characters follow the portable-v1 seed
scheme, so `charforge generate --seed-scheme portable-v1` reproduces any of them.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from charforge import __version__
from charforge.errors import UserError
from charforge.export.onnx import export_generator_onnx, generator_metadata
from charforge.utils.io import write_json_atomic
from charforge.web import vendor
from charforge.web.seeds import PORTABLE_V1, portable_freqs

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
STUDIO_CSS = (
    Path(__file__).resolve().parent.parent / "serve" / "static" / "app.css"
)  # one look for both pages
SITE_FILES = {  # source -> name in the site
    STATIC / "site.html": "index.html",
    STATIC / "site.js": "site.js",
    STUDIO_CSS: "site.css",
    STATIC / "portable.js": "portable.js",
    STATIC / "generator.js": "generator.js",
}
SITE_MANIFEST = "site-manifest.json"
# The page's policy: its own files only, plus WebAssembly compilation for onnxruntime-web; nothing else.
SITE_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; img-src 'self' data: blob:; style-src 'self'; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS_FILE = f"""/*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  Content-Security-Policy: {SITE_CSP}; frame-ancestors 'self'
  X-Content-Type-Options: nosniff
/*.wasm
  Content-Type: application/wasm
"""


WATERMARK_PORTS = ("charforge-qim-v1", "charforge-qim-v2")  # the methods generator.js implements


def watermark_layout(image_size: int, sha256: str | None) -> tuple[dict[str, Any] | None, str]:
    """(the watermark the page applies, why none): charforge's current method (provenance.metadata
    WATERMARK_METHOD) with its keyed arrays precomputed, so the page needs no numpy generator. None below the
    32 px minimum, or when the current method has no JavaScript port yet (then the page says so)."""
    from charforge.provenance import watermark as wm
    from charforge.provenance.metadata import WATERMARK_METHOD

    if image_size < wm.MIN_SIZE:
        return None, f"none (image smaller than {wm.MIN_SIZE}px)"
    if WATERMARK_METHOD not in WATERMARK_PORTS:
        return None, f"none (the page has no port of {WATERMARK_METHOD} yet)"
    tag = wm.model_tag(sha256)
    common = {
        "method": WATERMARK_METHOD,
        "tag": f"{tag:04x}",
        "block": wm.BLOCK,
        "luma": [0.299, 0.587, 0.114],
        "bits": [int(b) for b in wm.payload_bits(tag)],
    }
    if WATERMARK_METHOD == "charforge-qim-v1":
        n_slots = (image_size // wm.BLOCK) ** 2 * len(wm.COEFFS)
        bit_of_slot, dither = wm._layout(n_slots)
        return common | {
            "coeffs": len(wm.COEFFS),
            "step": wm.STEP,
            "iterations": wm.ITERATIONS,
            "basis": [float(v) for v in wm._basis().reshape(-1)],
            "bit_of_slot": [int(b) for b in bit_of_slot],
            "dither": [float(d) for d in dither],
        }, ""
    n = min(image_size // wm.BLOCK, wm.V2_GRID)  # the corner of the keyed grid the page's blocks use
    signs, dither, bit = (np.asarray(a)[:n, :n] for a in wm.v2_layout())
    return common | {
        "layout_blocks": n,
        "coeffs": len(wm.V2_ZIGZAG),
        "grid": wm.V2_GRID,
        "unit": wm.V2_UNIT,
        "units": wm.V2_UNITS,
        "step": wm.V2_STEP,
        "iterations": wm.V2_ITERATIONS,
        "psnr_floor": wm.V2_PSNR_FLOOR,
        "psnr_backoff": wm.V2_PSNR_BACKOFF,
        "basis": [float(v) for v in wm.v2_basis().reshape(-1)],
        "signs": [float(v) for v in np.asarray(signs).reshape(-1)],
        "dither": [float(v) for v in np.asarray(dither).reshape(-1)],
        "bit": [int(v) for v in np.asarray(bit).reshape(-1)],
    }, ""


def model_document(bundle: Any, model_file: str = "generator.onnx") -> dict[str, Any]:
    """What the browser generator reads: the ONNX sidecar's fields, the portable seed scheme, the frequencies
    it samples from, the watermark layout and the PNG provenance fields."""
    from charforge.provenance.metadata import AI_STATEMENT, xmp_packet

    doc = generator_metadata(bundle)
    wm, why_none = watermark_layout(int(bundle.image_size), str(bundle.sha256 or ""))
    return doc | {
        "model_file": model_file,
        "seed_scheme": PORTABLE_V1,
        "tag_freqs": [float(f) for f in portable_freqs(np.asarray(bundle.freqs))],
        "generator_label": bundle.family,
        "watermark": wm,
        "png": {
            "software": f"charforge {__version__}",
            "ai_generated": AI_STATEMENT,
            "generator": f"{bundle.family} (charforge web)",
            "xmp": xmp_packet(),
            "watermark_missing": None if wm else why_none,
        },
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another -o", field="out")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MANIFEST).is_file():
        raise UserError(
            f"{out}: a folder with other files in it; `export web` only writes into an empty folder or "
            "replaces a site it exported before. Choose another -o",
            field="out",
        )


def export_site(bundle: Any, out: str | Path, *, title: str | None = None) -> dict[str, Any]:
    """Write the static site for `bundle` into `out`; returns the site manifest (files, sizes, first load)."""
    out = Path(out)
    _check_out(out)
    ok, why = vendor.runtime_status()
    if not ok:
        raise UserError(f"export web: {why}")
    if (out / SITE_MANIFEST).is_file():
        for sub in ("model", "ort"):
            shutil.rmtree(out / sub, ignore_errors=True)
    (out / "model").mkdir(parents=True, exist_ok=True)
    (out / "ort").mkdir(exist_ok=True)
    export_generator_onnx(bundle, out / "model" / "generator.onnx")  # + model/generator.json, parity-checked
    write_json_atomic(out / "model" / "model.json", model_document(bundle))
    page_title = title or f"charforge: {bundle.model_id}"
    for src, dst in SITE_FILES.items():
        text = src.read_text(encoding="utf-8")
        if dst == "index.html":
            from html import escape

            text = text.replace("{{TITLE}}", escape(page_title)).replace("{{CSP}}", SITE_CSP)
        (out / dst).write_text(text, encoding="utf-8")
    for name in vendor.FILES:
        shutil.copyfile(vendor.RUNTIME_DIR / name, out / "ort" / name)
    (out / "_headers").write_text(HEADERS_FILE, encoding="utf-8")
    files = {
        str(p.relative_to(out)): {"sha256": _sha256(p), "bytes": p.stat().st_size}
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != SITE_MANIFEST
    }
    first_load = [
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
    manifest = {
        "charforge_version": __version__,
        "kind": "charforge-web-site",
        "model_id": str(bundle.model_id),
        "model_sha256": str(bundle.sha256),
        "seed_scheme": PORTABLE_V1,
        "runtime": {"package": vendor.PACKAGE, "version": vendor.VERSION, "license": vendor.LICENSE},
        "first_load_bytes": sum(files[f]["bytes"] for f in first_load),
        "files": files,
    }
    write_json_atomic(out / SITE_MANIFEST, manifest)
    return manifest
