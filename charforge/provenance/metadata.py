"""PNG text metadata on every output image."""

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


def build_pnginfo(meta: dict[str, Any]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    full = {"software": f"charforge {__version__}", "ai_generated": AI_STATEMENT, **meta}
    for k, v in full.items():
        info.add_text(f"charforge:{k}" if not k.startswith("charforge:") else k, v if isinstance(v, str) else json.dumps(v))
    return info


def png_bytes(image: np.ndarray, meta: dict[str, Any] | None = None) -> bytes:
    """Encode (H, W, 3) uint8 as PNG bytes carrying `meta` as text chunks."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG", pnginfo=build_pnginfo(meta or {}))
    return buf.getvalue()


def save_png(path: str | Path, image: np.ndarray, meta: dict[str, Any] | None = None) -> Path:
    """Write an output PNG atomically with provenance text metadata."""
    write_bytes_atomic(path, png_bytes(image, meta))
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
