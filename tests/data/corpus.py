"""A generated corpus of good, odd and bad image files for the import tests (imported by test_import_*.py).

`make_corpus(root)` writes the files and returns {relative path: expectation}: "keep" for files that must
become samples, or a lowercase fragment that the skip reason must contain.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

KEEP = "keep"


def pattern(seed: int, h: int = 80, w: int = 96) -> np.ndarray:
    """A smooth random colour field, (h, w, 3) uint8: different seeds give perceptually different images."""
    rng = np.random.default_rng(seed)
    low = (rng.random((8, 8, 3)) * 255).astype(np.uint8)  # 8x8 control points: detail in every low frequency
    return np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC))


def png_bytes(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kw)
    return buf.getvalue()


def patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR of a PNG to declare another size (with a valid CRC): a decompression bomb header."""
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return data[:8] + data[8:12] + b"IHDR" + ihdr + crc + data[33:]


def damage_idat(png: bytes) -> bytes:
    """Scramble 20 bytes at the start of the compressed pixel stream (the chunk length stays valid)."""
    i = png.index(b"IDAT") + 4 + 2  # past the chunk type and the 2-byte zlib header
    return png[:i] + bytes(b ^ 0x5A for b in png[i : i + 20]) + png[i + 20 :]


def gif_bomb() -> bytes:
    """A GIF whose screen and frame both declare 65535 x 65535 pixels (4.3 gigapixels)."""
    buf = io.BytesIO()
    Image.fromarray(pattern(1, 8, 8)).convert("P").save(buf, format="GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen descriptor
    desc = data.index(b"\x2c")  # first image descriptor
    data[desc + 5 : desc + 9] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def _save(root: Path, rel: str, image: Image.Image, **kw) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kw)


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_good(root: Path) -> dict[str, str]:
    """Plain and odd-mode images that must all be imported (distinct content: no two are duplicates)."""
    rgb = lambda s, h=80, w=96: Image.fromarray(pattern(s, h, w))  # noqa: E731
    _save(root, "good/a_rgb.png", rgb(10))
    _save(root, "good/b_photo.jpg", rgb(11), quality=95)
    _save(root, "good/c.webp", rgb(12), lossless=True)
    _save(root, "good/d.bmp", rgb(13))
    _save(root, "good/e.tiff", rgb(14))
    _save(root, "good/nested/deeper/f.jpeg", rgb(15), quality=95)
    _save(root, "modes/cmyk.jpg", rgb(16).convert("CMYK"), quality=95)
    gray16 = pattern(17)[..., 0].astype(np.uint16) * 257
    _save(root, "modes/gray16.png", Image.fromarray(gray16))
    pal = rgb(18).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    _save(root, "modes/palette_transparent.png", pal, transparency=0)
    rgba = np.dstack([pattern(19), np.full((80, 96), 200, np.uint8)])
    _save(root, "modes/rgba.png", Image.fromarray(rgba))
    la = np.dstack([pattern(20)[..., 1], np.full((80, 96), 255, np.uint8)])
    _save(root, "modes/la.png", Image.fromarray(la))
    _save(root, "modes/gray.png", rgb(21).convert("L"))
    _save(root, "modes/bilevel.png", rgb(22).convert("1"))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    _save(root, "modes/exif_rotated.jpg", rgb(23), quality=95, exif=exif)
    frames = [rgb(24), rgb(25)]
    _save(
        root, "modes/animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0
    )
    _write(root, "modes/jpeg_named.png", _encoded(rgb(26), "JPEG"))  # wrong extension, real image
    return {
        rel: KEEP
        for rel in [
            "good/a_rgb.png",
            "good/b_photo.jpg",
            "good/c.webp",
            "good/d.bmp",
            "good/e.tiff",
            "good/nested/deeper/f.jpeg",
            "modes/cmyk.jpg",
            "modes/gray16.png",
            "modes/palette_transparent.png",
            "modes/rgba.png",
            "modes/la.png",
            "modes/gray.png",
            "modes/bilevel.png",
            "modes/exif_rotated.jpg",
            "modes/animated.gif",
            "modes/jpeg_named.png",
        ]
    }


def _encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def write_duplicates(root: Path) -> dict[str, str]:
    """A resized + recompressed copy of good/a_rgb.png (caught) sorting after it. (At 77x64, a 1 % change of
    aspect, this dense random colour field moves 11.8 at the duplicate check's 8x8-cell scale and is kept as a
    picture of its own: see charforge/data/dedupe.py.)"""
    copy = Image.fromarray(pattern(10)).resize((86, 72), Image.Resampling.BILINEAR)
    _save(root, "good/z_copy_of_a.jpg", copy, quality=70)
    return {"good/z_copy_of_a.jpg": "duplicate"}


def write_bad(root: Path) -> dict[str, str]:
    """At least 20 files that must be skipped, each with the fragment its reason must contain."""
    img = Image.fromarray(pattern(30))
    png, jpg = png_bytes(img), _encoded(img, "JPEG", quality=90)
    webp, gif = _encoded(img, "WEBP"), _encoded(img.convert("P"), "GIF")
    tiny_png = png_bytes(Image.fromarray(pattern(31, 8, 8)))
    bad = {
        "bad/zero.png": (b"", "empty file"),
        "bad/zero.gif": (b"", "empty file"),
        "bad/truncated.png": (png[: len(png) // 2], "truncated"),
        "bad/truncated.jpg": (jpg[: len(jpg) // 2], "truncated"),
        "bad/truncated.webp": (webp[: len(webp) // 2], "truncated"),
        "bad/truncated.gif": (gif[:40], "not an image"),
        "bad/text.png": (b"hello, I am a text file\n" * 10, "not an image"),
        "bad/page.jpg": (b"<!DOCTYPE html><html><body>404 not found</body></html>\n", "not an image"),
        "bad/random.webp": (np.random.default_rng(0).bytes(2048), "not an image"),
        "bad/pdf.jpeg": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not an image"),
        "bad/bomb_huge.png": (patch_png_size(tiny_png, 20000, 20000), "decompression bomb"),
        "bad/bomb_40mp.png": (patch_png_size(tiny_png, 8000, 6000), "too many pixels"),
        "bad/bomb.gif": (gif_bomb(), "decompression bomb"),
        "bad/damaged_idat.png": (damage_idat(png), "corrupt"),
        "bad/jpeg_header_only.jpg": (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "not an image"),
        "bad/garbage.tif": (b"II*\x00" + b"\xff" * 64, "not an image"),
        "bad/garbage.bmp": (b"BM" + b"\x00" * 60, "corrupt"),
        "bad/tiny.png": (tiny_png, "too small"),
        "bad/thin.png": (png_bytes(Image.fromarray(pattern(32, 20, 96))), "too small"),
        "bad/notes.txt": (b"some notes about my art\n", "not an image file type"),
        "bad/layered.psd": (b"8BPS" + b"\x00" * 30, "not an image file type"),
    }
    for rel, (data, _) in bad.items():
        _write(root, rel, data)
    (root / "bad/folder.png").mkdir()
    os.symlink(root / "bad/nowhere.png", root / "bad/broken_link.png")
    expect = {rel: why for rel, (_, why) in bad.items()}
    expect["bad/folder.png"] = "directory"
    expect["bad/broken_link.png"] = "does not exist"
    return expect


def make_corpus(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    return {**write_good(root), **write_duplicates(root), **write_bad(root)}


# ---- real art: close-ups, expression variants, sprites, several faces ------------------------------
def _builtin_renders(n: int, seed: int, size: int = 256, **set_cat):
    """n built-in portraits (N, size, size, 3) with categorical parameters forced by name, + the batch."""
    from charforge.core.space import ParamBatch
    from charforge.creators import get_creator

    creator = get_creator("builtin")
    batch = creator.sample(n, np.random.default_rng(seed))
    names = [c.name for c in creator.space.categorical]
    cat = batch.cat.copy()
    for name, option in set_cat.items():
        cat[:, names.index(name)] = creator.space.categorical[names.index(name)].options.index(option)
    cont = batch.cont.copy()
    cont[:, [c.name for c in creator.space.continuous].index("bg_gradient")] = 0.0  # flat background
    batch = ParamBatch(cat, cont)
    return creator, batch, creator.render(batch, size)


def closeup(portrait: np.ndarray, frac: float = 0.5) -> np.ndarray:
    """The face of a 256-px built-in portrait cut so that it fills the frame."""
    h, w = portrait.shape[:2]
    s = int(w * frac)
    y0, x0 = h // 2 - s // 2 - h // 25, w // 2 - s // 2
    return np.ascontiguousarray(portrait[y0 : y0 + s, x0 : x0 + s])


def keyed(portrait: np.ndarray, tol: int = 6) -> np.ndarray:
    """RGBA: the flat background (the corner colour) made transparent, (H, W, 4) uint8."""
    bg = portrait[0, 0].astype(np.int16)
    alpha = np.where(np.abs(portrait.astype(np.int16) - bg).max(axis=2) <= tol, 0, 255).astype(np.uint8)
    return np.dstack([portrait, alpha])


def tall_sprite(portrait_rgba: np.ndarray, height: int = 640) -> np.ndarray:
    """A standing sprite on transparency: the keyed portrait on top of a long body, (height, W, 4)."""
    h, w = portrait_rgba.shape[:2]
    out = np.zeros((height, w, 4), np.uint8)
    out[:h] = portrait_rgba
    body = portrait_rgba[h - 8, w // 2, :3]  # the clothing colour at the bottom of the portrait
    x0, x1 = int(w * 0.25), int(w * 0.75)
    out[h - 8 : height - 20, x0:x1, :3] = body
    out[h - 8 : height - 20, x0:x1, 3] = 255
    legs = (int(w * 0.3), int(w * 0.45)), (int(w * 0.55), int(w * 0.7))
    for a, b in legs:
        out[height - 20 :, a:b] = (90, 70, 60, 255)
    return out


def write_real_art(root: Path) -> dict[str, str]:
    """Real-art cases built from the built-in creator, {relative path: what the import must do}.

    "closeup"   a face filling the frame (every one must be kept)
    "variant"   expression variants of one character (all must survive dedupe)
    "copy"      a resized, re-encoded copy of a variant (must be dropped as a duplicate)
    "sprite"    a portrait on transparency (kept, on a white background)
    "tall"      a standing sprite (kept, cropped at the head)
    "two"       two faces side by side (two samples)
    """
    from charforge.data.faces import detect_faces

    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, str] = {}
    _, _, portraits = _builtin_renders(12, seed=0)
    for i, p in enumerate(portraits[:8]):
        _save(root, f"closeups/face_{i:02d}.png", Image.fromarray(closeup(p)))
        expect[f"closeups/face_{i:02d}.png"] = "closeup"
    for mouth in ("closed", "smile", "open"):
        _, _, vs = _builtin_renders(3, seed=5, mouth=mouth)
        for j, v in enumerate(vs):
            _save(root, f"variants/char{j}_{mouth}.png", Image.fromarray(v))
            expect[f"variants/char{j}_{mouth}.png"] = "variant"
    copy = Image.fromarray(vs[0]).resize((180, 180), Image.Resampling.BILINEAR)
    _save(root, "variants/zz_char0_open_copy.jpg", copy, quality=75)
    expect["variants/zz_char0_open_copy.jpg"] = "copy"
    found = [p for p in portraits if detect_faces(p, "anime")]  # portraits the detector sees at once
    for k, p in enumerate(found[2:4]):  # other characters than the group picture's
        _save(root, f"sprites/sprite_{k}.png", Image.fromarray(keyed(p)))
        expect[f"sprites/sprite_{k}.png"] = "sprite"
    for k, p in enumerate(found[4:6]):
        _save(root, f"sprites/tall_{k}.png", Image.fromarray(tall_sprite(keyed(p))))
        expect[f"sprites/tall_{k}.png"] = "tall"
    _save(root, "group/two_faces.png", Image.fromarray(np.concatenate([found[0], found[1]], axis=1)))
    expect["group/two_faces.png"] = "two"
    return expect
