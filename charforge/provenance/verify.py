"""Check an image's provenance: its charforge text metadata and whether the watermark is present."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from charforge.core.images import DEFAULT_MAX_PIXELS
from charforge.provenance.metadata import read_png_metadata
from charforge.provenance.watermark import detect_watermark


@dataclass
class VerifyResult:
    path: str
    ok: bool  # False when the file could not be read as an image (see `error`)
    metadata: dict[str, Any] = field(default_factory=dict)
    detected: bool = False
    score: float = 0.0
    payload: str | None = None  # decoded 16-bit model tag, 4 hex digits
    size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None  # why the file could not be read (ok=False), or a note on what was ignored

    @property
    def tag_matches_metadata(self) -> bool | None:
        """Whether the decoded model tag equals the tag recorded in the metadata (None if either is missing)."""
        recorded = self.metadata.get("watermark_tag")
        if not self.detected or not recorded:
            return None
        return self.payload == recorded

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "metadata": self.metadata,
            "watermark_detected": self.detected,
            "watermark_score": round(self.score, 4),
            "watermark_payload": self.payload,
            "tag_matches_metadata": self.tag_matches_metadata,
            "size": self.size,
            "error": self.error,
        }


def verify_bytes(data: bytes, name: str = "<bytes>", *, max_pixels: int = DEFAULT_MAX_PIXELS) -> VerifyResult:
    """Read metadata and detect the watermark in an encoded image (PNG, JPEG, WebP...).

    Never raises for a bad file: a damaged file, a non-image or a decompression bomb (more than
    `max_pixels` pixels declared in its header, judged before decoding) gives `ok=False` with a message.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > max_pixels:
                    return VerifyResult(
                        name,
                        False,
                        size=(w, h),
                        error=f"too many pixels: {w}x{h} = {w * h:,} > {max_pixels:,} "
                        "(possible decompression bomb); skipped",
                    )
                im.load()
                rgb = np.asarray(im.convert("RGB"))
                fmt = im.format
    except UnidentifiedImageError:
        return VerifyResult(name, False, error="not an image file (unknown format); skipped")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return VerifyResult(
            name,
            False,
            error=f"too many pixels: the header declares more than {max_pixels:,} "
            "(possible decompression bomb); skipped",
        )
    except MemoryError:
        return VerifyResult(name, False, error="out of memory while decoding; skipped")
    except (OSError, ValueError) as e:
        return VerifyResult(name, False, error=f"image is damaged or truncated ({e}); skipped")
    except (
        Exception
    ) as e:  # Pillow's decoders also raise SyntaxError, struct.error, IndexError... on bad data
        return VerifyResult(name, False, error=f"image is damaged ({type(e).__name__}: {e}); skipped")
    note = None
    try:
        meta = read_png_metadata(data) if fmt == "PNG" else {}
    except (RecursionError, ValueError, OSError) as e:  # hostile text chunks: keep checking the watermark
        meta, note = {}, f"the PNG text metadata could not be read ({type(e).__name__}); ignored"
    detected, score, payload = detect_watermark(rgb)
    return VerifyResult(name, True, meta, detected, score, payload, (rgb.shape[1], rgb.shape[0]), note)


def verify_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> VerifyResult:
    """Like `verify_bytes` for a file; a missing or unreadable file gives `ok=False` with a message."""
    p = Path(path)
    if not p.is_file():
        return VerifyResult(str(p), False, error="no such file")
    try:
        data = p.read_bytes()
    except OSError as e:
        return VerifyResult(str(p), False, error=f"cannot read ({e})")
    return verify_bytes(data, str(p), max_pixels=max_pixels)
