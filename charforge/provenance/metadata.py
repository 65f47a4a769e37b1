"""PNG text metadata, the AI-content label platforms read, and the invisible watermark on every output image.

Every PNG charforge writes carries text chunks `charforge:<key>` (generator, model id and hash, seed, tags,
version, an AI-generated statement, ...), an XMP packet (PNG iTXt chunk `XML:com.adobe.xmp`) with the IPTC
`Iptc4xmpExt:DigitalSourceType` = trainedAlgorithmicMedia (the label image platforms and editors read) and,
unless the caller passes `watermark=False` (the CLI's `--no-watermark`), an invisible watermark (see
`charforge.provenance.watermark`). Whether and how the image was watermarked is itself recorded under
`charforge:watermark`. With the optional c2pa package and a local key (`charforge keys init`), the PNG is also
signed with C2PA content credentials (see `charforge.provenance.content_credentials`).
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
XMP_KEY = "XML:com.adobe.xmp"  # the PNG iTXt keyword XMP lives under (XMP spec part 3)
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MAX_XMP_BYTES = 1 << 20  # a larger XMP packet is not parsed (verify reports it)
WATERMARK_METHOD = "charforge-qim-v2"  # recorded in metadata and passed to the embedder; bump when it changes
MODEL_HASH_KEYS = (
    "model_sha256",
    "sha256",
    "model_hash",
)  # where the model tag for the watermark is read from


def xmp_packet(source_type: str = TRAINED_ALGORITHMIC_MEDIA) -> str:
    """The XMP packet every output carries: IPTC DigitalSourceType, the AI statement and the creator tool."""
    from xml.sax.saxutils import escape, quoteattr

    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        f"    xmlns:Iptc4xmpExt={quoteattr(IPTC_EXT_NS)}\n"
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f"    Iptc4xmpExt:DigitalSourceType={quoteattr(source_type)}\n"
        f"    xmp:CreatorTool={quoteattr(f'charforge {__version__}')}>\n"
        "   <dc:description>\n"
        f'    <rdf:Alt><rdf:li xml:lang="x-default">{escape(AI_STATEMENT)}</rdf:li></rdf:Alt>\n'
        "   </dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )


def build_pnginfo(meta: dict[str, Any]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(XMP_KEY, xmp_packet(), zip=False)  # uncompressed, as XMP readers expect
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
    return wm.embed_watermark(a, tag, method=WATERMARK_METHOD), meta


def png_bytes(image: np.ndarray, meta: dict[str, Any] | None = None, *, watermark: bool = True) -> bytes:
    """Encode (H, W, 3) uint8 as PNG bytes carrying `meta` as text chunks, watermarked unless told not to."""
    pixels, full = apply_watermark(np.asarray(image, dtype=np.uint8), meta or {}, watermark)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=build_pnginfo(full))
    from charforge.provenance import content_credentials

    if content_credentials.signing_enabled():  # charforge[c2pa] installed and `charforge keys init` run
        return content_credentials.sign_png(buf.getvalue())
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
    return charforge_fields(text)


def charforge_fields(text: dict[str, str]) -> dict[str, Any]:
    """The charforge:* PNG text chunks of `text` (all of a PNG's chunks), JSON values decoded, prefix dropped."""
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


def read_xmp(path_or_bytes: str | Path | bytes) -> str | None:
    """The image's XMP packet as text (PNG iTXt `XML:com.adobe.xmp`, or the XMP of a JPEG/WebP), else None."""
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        return xmp_from_info(im.info)


def xmp_from_info(info: dict[str, Any]) -> str | None:
    """The XMP packet from a Pillow image's `info` (PNG keeps it under its keyword, JPEG/WebP under 'xmp')."""
    raw = info.get(XMP_KEY) or info.get("xmp")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return str(raw)


def digital_source_type(xmp: str) -> str | None:
    """The IPTC DigitalSourceType in an XMP packet (attribute or element form), or None.

    Raises ValueError for a packet that is too large, declares a DTD or entities (never needed in XMP and the
    way XML bombs work), or is not well-formed XML.
    """
    import xml.etree.ElementTree as ET

    if len(xmp) > MAX_XMP_BYTES:
        raise ValueError(f"XMP packet of {len(xmp):,} characters, over the {MAX_XMP_BYTES:,} read")
    if "<!DOCTYPE" in xmp or "<!ENTITY" in xmp:
        raise ValueError("XMP packet declares a DTD or entities")
    body = xmp.strip()  # the <?xpacket?> processing instructions around the packet parse as they are
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise ValueError(f"XMP packet is not well-formed XML ({e})") from e
    attr = f"{{{IPTC_EXT_NS}}}DigitalSourceType"
    rdf_resource = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource"
    for el in root.iter():
        if attr in el.attrib:
            return el.attrib[attr].strip()
        if el.tag == attr:
            value = (el.text or "").strip() or el.attrib.get(rdf_resource, "").strip()
            return value or None
    return None
