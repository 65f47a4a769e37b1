"""Check an image's provenance: its charforge text metadata, the IPTC AI-content label (XMP), C2PA content
credentials when the optional c2pa package is installed, and whether the watermark is present."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from charforge.core.images import DEFAULT_MAX_PIXELS
from charforge.provenance.metadata import (
    TRAINED_ALGORITHMIC_MEDIA,
    digital_source_type,
    read_png_metadata,
    xmp_from_info,
)
from charforge.provenance.watermark import detect


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
    xmp: bool = False  # the file carries an XMP packet
    source_type: str | None = None  # its IPTC DigitalSourceType (a URI), if any
    label_note: str | None = None  # why the AI-content label is missing or unreadable
    c2pa: dict[str, Any] | None = None  # C2PA manifest check (charforge.provenance.c2pa), None if not checked
    method: str | None = None  # which watermark was found (charforge-qim-v2, or v1 on older outputs)

    @property
    def ai_label(self) -> bool:
        """The file carries the IPTC label trainedAlgorithmicMedia (what platforms read as 'made with AI')."""
        return self.source_type == TRAINED_ALGORITHMIC_MEDIA

    @property
    def label(self) -> str:
        """One word for the table: 'iptc-ai' (labelled), 'other' (another DigitalSourceType) or 'missing'."""
        if self.ai_label:
            return "iptc-ai"
        return "other" if self.source_type else "missing"

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
            "watermark_method": self.method,
            "tag_matches_metadata": self.tag_matches_metadata,
            "size": self.size,
            "error": self.error,
            "content_label": {
                "xmp": self.xmp,
                "digital_source_type": self.source_type,
                "ai_generated": self.ai_label,
                "note": self.label_note,
            },
            "c2pa": self.c2pa,
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
                xmp = xmp_from_info(im.info)
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
    found = detect(rgb)  # the v2 mark at any shift or crop, else the v1 mark of older outputs
    r = VerifyResult(
        name, True, meta, found.detected, found.score, found.payload, (rgb.shape[1], rgb.shape[0]), note
    )
    r.method = found.method
    r.xmp = xmp is not None
    if xmp is not None:
        try:
            r.source_type = digital_source_type(xmp)
        except ValueError as e:
            r.label_note = f"the XMP metadata could not be read ({e})"
    if not r.ai_label and r.label_note is None:
        made_here = bool(meta) or found.detected
        r.label_note = (
            (
                "no IPTC AI-content label (XMP DigitalSourceType)"
                if r.xmp
                else "no XMP metadata, so no IPTC AI-content label"
            )
            + (
                ": the file was re-encoded or its metadata stripped after charforge wrote it"
                if made_here
                else ""
            )
            if r.source_type is None
            else f"DigitalSourceType is {r.source_type}, not trainedAlgorithmicMedia"
        )
    r.c2pa = _check_c2pa(data, fmt)
    return r


def c2pa_available() -> bool:
    """Whether C2PA credentials can be read here (the optional `c2pa-python` package, charforge[c2pa])."""
    import importlib.util

    return importlib.util.find_spec("c2pa") is not None


def _check_c2pa(data: bytes, fmt: str | None) -> dict[str, Any] | None:
    """The C2PA check when the optional `c2pa` package is installed (charforge[c2pa]); else None."""
    if not c2pa_available():
        return None
    from charforge.provenance import content_credentials

    return content_credentials.check_bytes(data, fmt)


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
