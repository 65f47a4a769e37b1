"""PNG text metadata and the invisible watermark on every output image.

Every PNG charforge writes carries text chunks `charforge:<key>` (generator, model id and hash, seed, tags,
version, an AI-generated statement, ...) and, unless the caller passes `watermark=False` (the CLI's
`--no-watermark`), an invisible watermark (see `charforge.provenance.watermark`). Whether and how the image
was watermarked is itself recorded under `charforge:watermark`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from charforge import __version__
from charforge.utils.io import write_bytes_atomic

AI_STATEMENT = "AI-generated image, made with charforge"
WATERMARK_METHOD = "charforge-qim-v1"  # recorded in metadata; bump when the embedder changes
MODEL_HASH_KEYS = (
    "model_sha256",
    "sha256",
    "model_hash",
)  # where the model tag for the watermark is read from


def build_pnginfo(meta: dict[str, Any]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    full = {"software": f"charforge {__version__}", "ai_generated": AI_STATEMENT, **meta}
    for k, v in full.items():
        info.add_text(
            f"charforge:{k}" if not k.startswith("charforge:") else k,
            v if isinstance(v, str) else json.dumps(v),
        )
    return info


def apply_watermark(
    image: np.ndarray, meta: dict[str, Any], watermark: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """(image to write, meta with the `watermark` fields recorded). Unmarkable images are recorded, not hidden."""
    from charforge.provenance import watermark as wm

    meta = dict(meta)
    a = np.asarray(image)
    if not watermark:
        meta["watermark"] = "none"
        return a, meta
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        meta["watermark"] = "none (not an RGB uint8 image)"
        return a, meta
    if not wm.can_watermark(a):
        meta["watermark"] = f"none (image smaller than {wm.MIN_SIZE}px)"
        return a, meta
    sha = next((str(meta[k]) for k in MODEL_HASH_KEYS if meta.get(k)), None)
    tag = wm.model_tag(sha)
    meta["watermark"] = WATERMARK_METHOD
    meta["watermark_tag"] = f"{tag:04x}"
    return wm.embed_watermark(a, tag), meta


def png_bytes(image: np.ndarray, meta: dict[str, Any] | None = None, *, watermark: bool = True) -> bytes:
    """Encode (H, W, 3) uint8 as PNG bytes carrying `meta` as text chunks, watermarked unless told not to."""
    pixels, full = apply_watermark(np.asarray(image, dtype=np.uint8), meta or {}, watermark)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=build_pnginfo(full))
    return buf.getvalue()


def save_png(
    path: str | Path, image: np.ndarray, meta: dict[str, Any] | None = None, *, watermark: bool = True
) -> Path:
    """Write an output PNG atomically with provenance text metadata and (by default) the watermark."""
    write_bytes_atomic(path, png_bytes(image, meta, watermark=watermark))
    return Path(path)


def read_png_metadata(path_or_bytes: str | Path | bytes) -> dict[str, Any]:
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        text = dict(getattr(im, "text", {}) or {})
    out: dict[str, Any] = {}
    for k, v in text.items():
        if not k.startswith("charforge:"):
            continue
        key = k.split(":", 1)[1]
        try:
            out[key] = json.loads(v)
        except json.JSONDecodeError:
            out[key] = v
    return out
