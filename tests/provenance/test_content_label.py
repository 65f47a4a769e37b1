"""The IPTC AI-content label (XMP DigitalSourceType) on every output PNG, and what verify says about it."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from charforge.cli import app
from charforge.provenance import png_bytes, save_png
from charforge.provenance.metadata import (
    TRAINED_ALGORITHMIC_MEDIA,
    XMP_KEY,
    digital_source_type,
    read_xmp,
    xmp_packet,
)
from charforge.provenance.verify import verify_bytes

IMG = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_every_png_carries_the_iptc_label_as_xmp_itxt():
    data = png_bytes(IMG, {"seed": 1})
    with Image.open(io.BytesIO(data)) as im:
        assert XMP_KEY in im.text  # an iTXt chunk under the XMP keyword
    chunks = []
    pos = 8
    while pos < len(data):  # walk the chunks: the XMP is an uncompressed iTXt
        n = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    itxt = [body for kind, body in chunks if kind == b"iTXt" and body.startswith(XMP_KEY.encode() + b"\0")]
    assert len(itxt) == 1 and itxt[0][len(XMP_KEY) + 1] == 0  # compression flag 0
    xmp = read_xmp(data)
    assert digital_source_type(xmp) == TRAINED_ALGORITHMIC_MEDIA
    assert "Iptc4xmpExt:DigitalSourceType" in xmp and "xmp:CreatorTool" in xmp
    r = verify_bytes(data, "a.png")
    assert r.ai_label and r.label == "iptc-ai" and r.label_note is None
    assert r.to_dict()["content_label"] == {
        "xmp": True,
        "digital_source_type": TRAINED_ALGORITHMIC_MEDIA,
        "ai_generated": True,
        "note": None,
    }


def test_reencoding_loses_the_label_and_verify_says_so(tmp_path):
    data = png_bytes(IMG, {"seed": 1, "model_sha256": "ab" * 32})
    for fmt, kw in (("PNG", {}), ("JPEG", {"quality": 95}), ("WEBP", {"quality": 90})):
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").save(buf, format=fmt, **kw)
        r = verify_bytes(buf.getvalue(), f"re.{fmt.lower()}")
        assert r.ok and not r.ai_label and r.label == "missing", fmt
        assert "re-encoded or its metadata stripped" in r.label_note, (
            fmt,
            r.label_note,
        )  # the watermark survived
    plain = io.BytesIO()
    Image.fromarray(IMG).save(plain, format="PNG")
    r = verify_bytes(plain.getvalue(), "plain.png")
    assert r.label == "missing" and "re-encoded" not in r.label_note  # never ours: no accusation


def test_label_in_jpeg_xmp_and_element_form_is_read():
    packet = (
        xmp_packet()
        .replace(f'Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"\n', "")
        .replace(
            "<dc:description>",
            f"<Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}</Iptc4xmpExt:DigitalSourceType><dc:description>",
        )
    )
    assert digital_source_type(packet) == TRAINED_ALGORITHMIC_MEDIA
    buf = io.BytesIO()
    Image.fromarray(IMG).save(buf, format="JPEG", xmp=xmp_packet().encode())
    r = verify_bytes(buf.getvalue(), "x.jpg")
    assert r.ai_label, r.to_dict()


def test_hostile_or_other_xmp_is_a_note_not_a_crash():
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>'
    other = xmp_packet("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture")
    for xmp, fragment in ((bomb, "DTD"), ("<x:xmpmeta", "not well-formed"), (other, "digitalCapture")):
        info = PngImagePlugin.PngInfo()
        info.add_itxt(XMP_KEY, xmp)
        buf = io.BytesIO()
        Image.fromarray(IMG).save(buf, format="PNG", pnginfo=info)
        r = verify_bytes(buf.getvalue(), "h.png")
        assert r.ok and not r.ai_label and fragment in r.label_note, r.label_note


def test_verify_cli_reports_the_label(tmp_path):
    save_png(tmp_path / "good.png", IMG, {"seed": 5})
    Image.open(tmp_path / "good.png").save(tmp_path / "stripped.png")
    res = CliRunner().invoke(app, ["verify", str(tmp_path / "good.png"), str(tmp_path / "stripped.png")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "ai-label" in lines[0]
    good = next(ln for ln in lines if "good.png" in ln)
    assert "iptc-ai" in good
    stripped = next(ln for ln in lines if "stripped.png" in ln)
    assert "missing" in stripped and "re-encoded" in res.output
    res = CliRunner().invoke(app, ["verify", "--json", str(tmp_path / "good.png")])
    assert json.loads(res.output)["files"][0]["content_label"]["ai_generated"] is True
