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


def crop_sample(
    image: np.ndarray, box: Box | None, size: int, crop_scale: float = 1.5
) -> tuple[np.ndarray, Box]:
    """One training image: the zoomed-out face square (or the centre square when box is None), resized.

    Returns the (size, size, 3) uint8 sample and the square that was cut (in source pixels).
    """
    square = centre_square(*image.shape[:2]) if box is None else zoom_box(box, crop_scale)
    return resize_square(crop_padded(image, square), size), square
