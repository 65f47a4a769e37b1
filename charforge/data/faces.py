"""Face detectors and the paper's zoomed-out square crop.

`detect_faces(image, kind)` returns face boxes for kind in DETECTORS:
  anime       `animeface` (nvxs), tuned for drawn anime faces; needs Pillow < 12 (pinned) or finds nothing
  human       OpenCV's frontal-face Haar cascade (ships with opencv-python-headless < 5)
  human-dlib  dlib's HOG + linear SVM frontal-face detector
  none        no detection; `crop_sample` then takes the centre square

`crop_sample` turns one box into a training image: zoomed out `crop_scale` (1.5) about its centre so the
hair stays in the picture (make.girls.moe, §3.1), made square, padded by edge replication where it
leaves the image, then an antialiased resize. Heavy detector imports happen on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from charforge.core.images import resize_square
from charforge.errors import UserError

HAAR_SCALE_STEP = 1.1  # image-pyramid step of the Haar cascade search (ratio between scales)
HAAR_MIN_NEIGHBOURS = 5  # overlapping hits a Haar detection needs to count (higher = fewer false faces)
HAAR_MIN_FACE = 24  # smallest face the Haar cascade looks for, in pixels
DLIB_UPSAMPLE = 1  # times dlib doubles the image before searching (finds faces down to ~40 px)
DETECT_MAX_SIDE = 1024  # longer side detectors see, in pixels; bigger images are shrunk first (speed)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: top-left corner (x, y), width w, height h."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def _detect_anime(image: np.ndarray) -> list[Box]:
    import animeface
    from PIL import Image

    faces = animeface.detect(Image.fromarray(image))
    return [
        Box(int(f.face.pos.x), int(f.face.pos.y), int(f.face.pos.width), int(f.face.pos.height))
        for f in faces
    ]


@lru_cache(maxsize=1)
def _haar_cascade():
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise UserError(f"{path}: OpenCV's face cascade is missing; reinstall opencv-python-headless (< 5)")
    return cascade


def _detect_human_opencv(image: np.ndarray) -> list[Box]:
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))  # (H, W, 3) -> (H, W)
    hits = _haar_cascade().detectMultiScale(
        gray,
        scaleFactor=HAAR_SCALE_STEP,
        minNeighbors=HAAR_MIN_NEIGHBOURS,
        minSize=(HAAR_MIN_FACE, HAAR_MIN_FACE),
    )
    return [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in np.asarray(hits).reshape(-1, 4)]


@lru_cache(maxsize=1)
def _dlib_detector():
    import dlib

    return dlib.get_frontal_face_detector()


def _detect_human_dlib(image: np.ndarray) -> list[Box]:
    rects = _dlib_detector()(np.ascontiguousarray(image), DLIB_UPSAMPLE)
    h, w = image.shape[:2]
    out = []
    for r in rects:  # dlib boxes may poke out of the image: clip them
        x0, y0 = max(0, r.left()), max(0, r.top())
        x1, y1 = min(w, r.right() + 1), min(h, r.bottom() + 1)
        if x1 > x0 and y1 > y0:
            out.append(Box(x0, y0, x1 - x0, y1 - y0))
    return out


DETECTORS: dict[str, Callable[[np.ndarray], list[Box]] | None] = {
    "anime": _detect_anime,
    "human": _detect_human_opencv,
    "human-dlib": _detect_human_dlib,
    "none": None,
}


def check_kind(kind: str) -> str:
    if kind not in DETECTORS:
        raise UserError(
            f"--faces: unknown face detector {kind!r}. Valid: {', '.join(DETECTORS)}", field="faces"
        )
    return kind


def detect_faces(image: np.ndarray, kind: str, *, max_side: int = DETECT_MAX_SIDE) -> list[Box]:
    """Face boxes in an (H, W, 3) uint8 RGB image, largest first. kind="none" finds none.

    Images longer than `max_side` are searched at a reduced size and the boxes scaled back.
    """
    detector = DETECTORS[check_kind(kind)]
    if detector is None:
        return []
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, (image.shape, image.dtype)
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        from PIL import Image

        small = Image.fromarray(image).resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX
        )
        boxes = [
            Box(round(b.x / scale), round(b.y / scale), round(b.w / scale), round(b.h / scale))
            for b in detector(np.asarray(small))
        ]
    else:
        boxes = detector(np.ascontiguousarray(image))
    return sorted(boxes, key=lambda b: (-b.area, b.y, b.x))


def zoom_box(box: Box, crop_scale: float) -> Box:
    """The square of side crop_scale * max(w, h) centred on the box centre (may leave the image)."""
    side = max(1, int(round(max(box.w, box.h) * crop_scale)))
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    return Box(int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side, side)


def centre_square(height: int, width: int) -> Box:
    side = min(height, width)
    return Box((width - side) // 2, (height - side) // 2, side, side)


def crop_padded(image: np.ndarray, box: Box) -> np.ndarray:
    """Cut `box` out of (H, W, 3); parts outside the image repeat the nearest edge pixel."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box.x, box.y, box.x + box.w, box.y + box.h
    inner = image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    pad = ((max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w)), (0, 0))
    if inner.size == 0:  # box entirely outside: replicate the nearest edge pixel
        cy, cx = min(max(y0, 0), h - 1), min(max(x0, 0), w - 1)
        return np.broadcast_to(image[cy, cx], (box.h, box.w, 3)).copy()
    out = np.pad(inner, pad, mode="edge") if any(p != (0, 0) for p in pad[:2]) else inner
    assert out.shape == (box.h, box.w, 3), (out.shape, box)  # (box.h, box.w, 3)
    return out


DEFAULT_CROP_SCALE = (
    1.5  # a face box is zoomed out this much to keep the hair (the paper's crop; --crop-scale)
)


def crop_sample(
    image: np.ndarray, box: Box | None, size: int, crop_scale: float = DEFAULT_CROP_SCALE
) -> tuple[np.ndarray, Box]:
    """One training image: the zoomed-out face square (or the centre square when box is None), resized.

    Returns the (size, size, 3) uint8 sample and the square that was cut (in source pixels).
    """
    square = centre_square(*image.shape[:2]) if box is None else zoom_box(box, crop_scale)
    return resize_square(crop_padded(image, square), size), square


# ---- real art: close-ups, sprites, several faces --------------------------------------------------
CLOSEUP_PAD = 0.25  # a close-up is searched again with this fraction of its side added as edge padding
# An image this many times taller than wide is a standing sprite (and so is a figure this tall on such an image).
TALL_RATIO = 1.5
# A figure on a canvas that is not tall must be this much taller than wide to be a standing figure: heads with
# a tall hat, a beard or hanging hair reach 1.65-1.9 on square portraits (DiceBear croodles 1.86, personas 1.65,
# Wesnoth 1.62), where the 1.5 rule cut the head square out of the hat; a figure standing with its arms down is
# 2.5-4 times taller than wide.
STANDING_RATIO = 2.2
# The head square of a standing figure: this share of the figure's height, at most HEAD_WIDTHS of its width (and
# the canvas). Visual-novel sprites (Debian's renpy demo and The Question: 13 sprites cut at the thigh) have their
# chin at 0.24-0.39 of the figure's height; 0.3 of it, capped at the figure's width, cut 5 of 13 at the mouth.
HEAD_SHARE = 0.42
HEAD_WIDTHS = 1.25
SECOND_FACE_MIN_AREA = 0.2  # a further face counts when its box has at least this share of the largest's area
BACKGROUND_TOLERANCE = 24  # max per-channel distance from the border colour still called background (0..255)
SKIN_CENTRE_MIN = 0.35  # close-up test: share of skin-coloured pixels in the central half of the frame
FEATURE_MIN, FEATURE_MAX = 0.02, 0.6  # close-up test: share of dark pixels (eyes, lines) in that centre


@dataclass(frozen=True)
class Crop:
    """One sample cut from an image: the square in source pixels, the face box (if any) and how it was found."""

    square: Box
    face: Box | None
    how: str  # "face", "face (padded close-up)", "close-up", "head of a tall image", "centre"


def _overlaps(a: Box, b: Box) -> bool:
    """True when the two boxes share more than a third of the smaller one."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy > min(a.area, b.area) / 3


def select_faces(boxes: list[Box], max_faces: int) -> list[Box]:
    """The faces worth a sample each: the largest, then others of comparable size that overlap none kept.

    `boxes` come largest first (as `detect_faces` returns them).
    """
    kept: list[Box] = []
    for b in boxes:
        if len(kept) >= max_faces:
            break
        if kept and b.area < SECOND_FACE_MIN_AREA * kept[0].area:
            continue
        if not any(_overlaps(b, k) for k in kept):
            kept.append(b)
    return kept


def border_colour(image: np.ndarray) -> np.ndarray:
    """Median RGB of the outermost pixel ring, (3,) uint8: the background of a sprite or a flat canvas."""
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])  # (2W+2H, 3)
    return np.median(ring, axis=0).astype(np.uint8)


def figure_box(image: np.ndarray) -> Box | None:
    """Bounding box of the pixels that differ from the border colour (the drawn figure), or None."""
    diff = np.abs(image.astype(np.int16) - border_colour(image).astype(np.int16)).max(axis=2)  # (H, W)
    fg = diff > BACKGROUND_TOLERANCE
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    if len(rows) == 0:
        return None
    return Box(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def head_square(image: np.ndarray) -> Box | None:
    """For a standing figure (tall image or tall figure): the square around its head, else None.

    A tall figure (see `figure_box`; TALL_RATIO on a tall canvas, STANDING_RATIO on any other, where a portrait's
    head with a tall hat is not a standing figure) gives the square at its top, `HEAD_SHARE` of its height (at
    most HEAD_WIDTHS of its width, and the canvas), centred on the topmost band (the head, not the outstretched
    arms). A tall canvas with a compact figure gives the square around that figure.
    """
    h, w = image.shape[:2]
    fig = figure_box(image) or Box(0, 0, w, h)
    tall_canvas = h >= TALL_RATIO * w
    if fig.h >= (TALL_RATIO if tall_canvas else STANDING_RATIO) * fig.w:
        side = max(1, min(round(HEAD_WIDTHS * fig.w), round(HEAD_SHARE * fig.h), w, h))
        band = image[fig.y : fig.y + max(1, side // 2), fig.x : fig.x + fig.w]  # the top of the figure
        diff = np.abs(band.astype(np.int16) - border_colour(image).astype(np.int16)).max(axis=2)
        cols = np.flatnonzero((diff > BACKGROUND_TOLERANCE).any(axis=0))
        cx = fig.x + (cols[0] + cols[-1] + 1) / 2.0 if len(cols) else fig.x + fig.w / 2.0
        cy = fig.y + side / 2.0 - side / 20.0  # a small margin above the hair
    elif tall_canvas:
        side = max(1, min(max(fig.w, fig.h), w, h))
        cx, cy = fig.x + fig.w / 2.0, fig.y + fig.h / 2.0
    else:
        return None
    x = int(round(min(max(cx - side / 2.0, 0), w - side)))
    y = int(round(min(max(cy - side / 2.0, 0), h - side)))
    return Box(x, y, side, side)


def skin_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels in a broad skin-tone range (YCrCb box; covers drawn pale to brown skin)."""
    x = image.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = 128 + 0.5 * r - 0.4187 * g - 0.0813 * b
    cb = 128 - 0.1687 * r - 0.3313 * g + 0.5 * b
    return (y > 70) & (cr >= 133) & (cr <= 175) & (cb >= 80) & (cb <= 128)


def closeup_score(image: np.ndarray) -> tuple[bool, str]:
    """Does the image look like a face filling the frame? (verdict, the measured shares as text).

    Skin-coloured pixels fill the central half of the frame and a few dark pixels (eyes, line art) sit
    among them. A cheap cue, not a detector: the import report names every image kept this way.
    """
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) > TALL_RATIO * min(h, w):
        return False, "not square enough for a close-up"
    small = np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BOX))  # (64, 64, 3)
    centre = small[16:48, 16:48]
    skin = float(skin_mask(centre).mean())
    dark = float((centre.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) < 90).mean())
    ok = skin >= SKIN_CENTRE_MIN and FEATURE_MIN <= dark <= FEATURE_MAX
    return ok, f"{skin:.0%} skin-toned and {dark:.0%} dark pixels in the centre"


def detect_padded(image: np.ndarray, kind: str, pad: float = CLOSEUP_PAD) -> list[Box]:
    """Detect again on the image with edge padding around it: finds faces that touch the frame.

    Boxes are in the coordinates of `image` (they may reach outside it).
    """
    h, w = image.shape[:2]
    ph, pw = max(1, round(h * pad)), max(1, round(w * pad))
    padded = np.pad(image, ((ph, ph), (pw, pw), (0, 0)), mode="edge")
    return [Box(b.x - pw, b.y - ph, b.w, b.h) for b in detect_faces(padded, kind)]


def find_crops(
    image: np.ndarray, kind: str, *, closeups: bool = True, max_faces: int = 8, bust: Any = "shipped"
) -> tuple[list[Crop], int, str]:
    """Where the samples of one image are: ([Crop], faces detected, reason when there is none).

    With a detector: every selected face; failing that the padded close-up search (on the head square of
    a tall image), then the close-up test (`closeups`): the skin test (`closeup_score`), else the portrait probe
    (`bust`: a charforge.data.bust.BustProbe, "shipped" for the shipped file where installed, None for none).
    Without a detector (kind "none"): the head square of a tall image, else the centre square. Crop squares are
    before `crop_scale` for faces (see `face`).
    """
    h, w = image.shape[:2]
    head = head_square(image)
    if kind == "none":
        if head is not None:
            return [Crop(head, None, "head of a tall image")], 0, ""
        return [Crop(centre_square(h, w), None, "centre")], 0, ""
    boxes = select_faces(detect_faces(image, kind), max_faces)
    if boxes:
        return [Crop(b, b, "face") for b in boxes], len(boxes), ""
    region = head if head is not None else Box(0, 0, w, h)
    part = crop_padded(image, region)
    found = select_faces(detect_padded(part, kind), max_faces)
    if found:
        shifted = [Box(b.x + region.x, b.y + region.y, b.w, b.h) for b in found]
        return [Crop(b, b, "face (padded close-up)") for b in shifted], len(shifted), ""
    if not closeups:
        return [], 0, f"no face found by the {kind!r} detector (close-ups off)"
    ok, detail = closeup_score(part)
    if not ok:
        if bust == "shipped":
            from charforge.data.bust import shipped_bust_probe

            bust = shipped_bust_probe()
        if bust is not None:
            is_bust, p = bust.is_bust(part)
            if is_bust:
                ok, detail = True, f"the portrait probe reads a bust (p {p:.2f}; {detail})"
            else:
                detail += f"; portrait probe p {p:.2f}"
    if ok:
        square = region if head is not None else centre_square(h, w)
        how = "close-up (head of a tall image)" if head is not None else "close-up"
        return [Crop(square, None, f"{how}: no face detected, but {detail}")], 0, ""
    return [], 0, f"no face found by the {kind!r} detector, and not a close-up ({detail})"
