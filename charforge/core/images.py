"""Safe image loading: any file a user drops in a folder becomes an (H, W, 3) uint8 RGB array or a reason.

A folder of art is untrusted input. `load_image` never lets a bad file crash an import: it caps the
pixel count from the header BEFORE decoding (decompression bombs), forces a full decode to catch
truncation, and maps every odd mode (CMYK, 16-bit, palette with transparency, alpha, grayscale, 1-bit)
to plain RGB the way a viewer would show it. Failures raise `BadImage(reason)`; the importer records the
reason in its report.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 40_000_000  # largest accepted width*height, in pixels (a 40 MP photo decodes to 120 MB)
BACKGROUND = (255, 255, 255)  # RGB that transparent pixels are composited onto (white, as on a web page)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class BadImage(Exception):
    """A file that cannot become a training image; `reason` is one short line for the import report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, *, min_size: int = 0) -> np.ndarray:
    """Decode `path` to (H, W, 3) uint8 RGB, EXIF orientation applied, first frame of animations.

    Raises `BadImage` for anything unusable: missing/empty/directory, not an image, truncated or
    corrupt data, more than `max_pixels` pixels, or a shorter side below `min_size`.
    """
    return _load(path, max_pixels, min_size, _decode)


@dataclass
class DecodedImage:
    """`load_image_with_alpha`'s result: the RGB picture (transparency composited on white, as `load_image`),
    the alpha channel where some pixel is not opaque (else None), and the PNG text chunks ({} for other
    formats)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None  # (H, W) uint8, in the same orientation as rgb
    text: dict[str, str]


def load_image_with_alpha(
    path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, *, min_size: int = 0
) -> DecodedImage:
    """`load_image` that also keeps the alpha channel and the PNG text chunks, from one decode (the same checks
    and `BadImage` reasons; EXIF orientation applied to the alpha too)."""

    def decode(im: Image.Image) -> DecodedImage:
        oriented = _oriented(im)  # loads `im`, whose PNG text chunks are then read without another decode
        text = dict(getattr(im, "text", {}) or {}) if im.format == "PNG" else {}
        im = oriented
        has_alpha = im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)
        alpha = np.asarray(im.convert("RGBA"))[..., 3].copy() if has_alpha else None
        if alpha is not None and alpha.min() == 255:
            alpha = None
        return DecodedImage(to_rgb(im), alpha, text)

    return _load(path, max_pixels, min_size, decode)


def _load(path: str | Path, max_pixels: int, min_size: int, decode):
    """Open `path` with the size and sanity checks, then `decode(im)`; every failure becomes a BadImage."""
    path = Path(path)
    _check_file(path)
    with warnings.catch_warnings():
        # Pillow warns above its own limit and raises above twice it: both mean "too big" to us
        warnings.simplefilter("ignore")  # Pillow's chatter about odd EXIF etc. is not the user's problem
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                _check_size(im, max_pixels, min_size)
                return decode(im)
        except BadImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise BadImage(_bomb_reason(e, max_pixels)) from e
        except UnidentifiedImageError as e:
            raise BadImage(
                f"not an image: no known image format in this {path.suffix or 'extensionless'} file (damaged or misnamed)"
            ) from e
        except PermissionError as e:
            raise BadImage(f"cannot read: permission denied ({e.strerror})") from e
        except MemoryError as e:
            raise BadImage("out of memory while decoding; lower --max-pixels or shrink the image") from e
        except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, struct.error... on bad data
            raise BadImage(f"corrupt or truncated image data ({type(e).__name__}: {_short(e)})") from e


def _bomb_reason(e: Exception, max_pixels: int) -> str:
    """Pillow refused a header before our own check could: say so in terms of --max-pixels."""
    import re

    m = re.search(r"\((\d+) pixels\)", str(e))
    declared = f"declares {int(m.group(1)):,} pixels" if m else "declares a huge size"
    if m and int(m.group(1)) <= max_pixels:  # within --max-pixels, but over Pillow's own hard limit
        return (
            f"decompression bomb: {declared}, more than the image library's hard limit of "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels (--max-pixels {max_pixels:,} cannot raise it)"
        )
    return f"decompression bomb: {declared}, more than --max-pixels {max_pixels:,}"


def _short(e: Exception, limit: int = 120) -> str:
    text = " ".join(str(e).split()) or "no detail"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_file(path: Path) -> None:
    import glob

    if path.is_dir():
        raise BadImage("is a directory, not an image file")
    if not path.exists():
        same_stem = (
            sorted(q.name for q in path.parent.glob(f"{glob.escape(path.stem)}.*"))
            if path.parent.is_dir()
            else []
        )
        raise BadImage(
            "file does not exist" + (f" (there is {', '.join(same_stem[:3])})" if same_stem else "")
        )
    if path.stat().st_size == 0:
        raise BadImage("empty file (0 bytes)")


def _check_size(im: Image.Image, max_pixels: int, min_size: int) -> None:
    """Judge the header's declared size before a single pixel is decoded."""
    w, h = im.size
    if w <= 0 or h <= 0:
        raise BadImage(f"declares an empty size {w}x{h}")
    if w * h > max_pixels:
        raise BadImage(
            f"too many pixels: {w}x{h} = {w * h:,} > --max-pixels {max_pixels:,} (possible decompression bomb; "
            "raise --max-pixels if the image is real)"
        )
    if min(w, h) < min_size:
        raise BadImage(f"too small: {w}x{h}, the shorter side is below min_size {min_size} px")


def _oriented(im: Image.Image) -> Image.Image:
    """The first frame, fully decoded (truncation raises here rather than later), EXIF orientation applied."""
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF/WebP/TIFF: the first frame
    im.load()
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not cost the picture: keep it unrotated
        return im


def _decode(im: Image.Image) -> np.ndarray:
    rgb = to_rgb(_oriented(im))
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8, (rgb.shape, rgb.dtype)  # (H, W, 3)
    return rgb


def to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB. High bit depths are scaled, never clipped."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    if mode.startswith("I;16") or mode == "I":
        return _gray_to_rgb(_scale_16bit(np.asarray(im)))
    if mode == "F":
        return _gray_to_rgb(_scale_float(np.asarray(im, dtype=np.float32)))
    if (mode == "P" and "transparency" in im.info) or mode in _ALPHA_MODES:
        return _composite(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """16-bit samples (0..65535) -> 0..255 by v/257, the exact inverse of 8->16 bit replication."""
    v = np.clip(values.astype(np.float64), 0, 65535)
    return np.round(v / 257.0).astype(np.uint8)


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Float images: 0..1 if they fit in it, else 0..255."""
    v = np.nan_to_num(values, nan=0.0)
    scale = 255.0 if v.size and np.nanmax(np.abs(v)) <= 1.0 else 1.0
    return np.clip(np.round(v * scale), 0, 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)


def _composite(rgba: Image.Image) -> np.ndarray:
    """Alpha-composite onto BACKGROUND so transparent areas do not turn black."""
    bg = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"), dtype=np.uint8).copy()


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """(S, S, 3) uint8 -> (size, size, 3) uint8 with an antialiased filter (Lanczos, area-aware on downscale)."""
    if image.shape[0] == size and image.shape[1] == size:
        return np.ascontiguousarray(image)
    out = Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(out, dtype=np.uint8).copy()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    import torch

    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


GRID_PAD = 255  # empty cells of a grid's last row: white, like the page (black read as failed images)


def image_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """(N, H, W, 3) -> (rows*H, cols*W, 3), the last row's empty cells white."""
    n, h, w, _ = images.shape
    rows = math.ceil(n / cols)
    grid = np.full((rows * h, cols * w, 3), GRID_PAD, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    return grid
