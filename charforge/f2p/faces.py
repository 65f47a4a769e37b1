"""dlib face detection, 5-point alignment and 68 landmarks for the identity embedder and the attribute path.

dlib and the model files are imported lazily: `import charforge` never loads them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from charforge.errors import UserError

CHIP_SIZE = 150  # px, the aligned face chip dlib's recognition net expects
CHIP_PADDING = 0.25  # fraction of the face size added around the chip
UPSAMPLE = 1  # detector upsampling passes (finds faces down to ~40 px)


def _dlib():
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError as e:  # pragma: no cover - both are package dependencies
        raise UserError(
            f"face detection needs dlib and face-recognition-models ({e}); reinstall charforge"
        ) from e
    return dlib, frm


@functools.cache
def dlib_model(name: str):
    """One dlib model, loaded on first use: detector, sp5 (5-point), sp68 (68-point, ~100 MB) or rec (128-D)."""
    dlib, frm = _dlib()
    if name == "detector":
        return dlib.get_frontal_face_detector()
    if name == "sp5":
        return dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    if name == "sp68":
        return dlib.shape_predictor(frm.pose_predictor_model_location())
    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


@dataclass
class FaceBox:
    left: int
    top: int
    right: int
    bottom: int
    n_found: int  # how many faces the detector saw (1 when the whole image was used)

    @property
    def area(self) -> int:
        return max(0, self.right - self.left) * max(0, self.bottom - self.top)


def find_face(image: np.ndarray, *, detect: bool = True, source: str = "image") -> FaceBox:
    """The largest face in an (H, W, 3) uint8 image, or the whole image when detect=False."""
    h, w = image.shape[:2]
    if not detect:
        return FaceBox(0, 0, w, h, 1)
    detector = dlib_model("detector")
    rects, scores, _ = detector.run(np.ascontiguousarray(image), UPSAMPLE, 0.0)
    if len(rects) == 0:
        raise UserError(
            f"{source}: no face found. Use a clear, front-facing photo, or pass --no-detect "
            "to use the whole image as the face (for drawings and crops)"
        )
    best = max(range(len(rects)), key=lambda i: (rects[i].width() * rects[i].height(), scores[i]))
    r = rects[best]
    return FaceBox(max(0, r.left()), max(0, r.top()), min(w, r.right()), min(h, r.bottom()), len(rects))


def _rect(box: FaceBox):
    import dlib

    return dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom))


def aligned_chip(image: np.ndarray, box: FaceBox) -> np.ndarray:
    """(150, 150, 3) uint8 face chip aligned with the 5-point landmarks."""
    import dlib

    sp5 = dlib_model("sp5")
    img = np.ascontiguousarray(image)
    shape = sp5(img, _rect(box))
    return np.asarray(dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING))


def landmarks68(image: np.ndarray, box: FaceBox) -> np.ndarray:
    """(68, 2) float32 (x, y) landmark positions in image pixels."""
    sp68 = dlib_model("sp68")
    shape = sp68(np.ascontiguousarray(image), _rect(box))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def face_descriptor(chip: np.ndarray) -> np.ndarray:
    """128-D dlib descriptor of an aligned chip (not normalised)."""
    rec = dlib_model("rec")
    return np.asarray(rec.compute_face_descriptor(np.ascontiguousarray(chip)), dtype=np.float32)


FLAT_DIFF = 6  # max summed-RGB step between neighbours counted as "flat" (JPEG noise in a flat fill is ~2-4)
DRAWING_FLAT = (
    0.5  # share of flat pixels above which an image is treated as a drawing (photos measured 0.07-0.43)
)


def flat_share(image: np.ndarray, side: int = 192) -> float:
    """Share of pixels whose right and lower neighbours have (almost) the same colour, on a <= `side` px copy.

    Flat fills are what tells a drawing or render from a photo: camera noise and texture leave few exactly flat
    neighbourhoods in a photo (sample photos: 0.07-0.43, the grey cameraman highest), drawings are mostly flat (renders 0.8-0.9, 0.54 as JPEG).
    """
    img = np.asarray(image)
    step = max(1, max(img.shape[:2]) // side)
    x = img[::step, ::step].astype(np.int16)
    dx = np.abs(np.diff(x, axis=1)).sum(-1)[:-1, :]  # (h-1, w-1)
    dy = np.abs(np.diff(x, axis=0)).sum(-1)[:, :-1]
    return float(((dx <= FLAT_DIFF) & (dy <= FLAT_DIFF)).mean()) if dx.size else 1.0


def looks_like_drawing(image: np.ndarray) -> bool:
    return flat_share(image) > DRAWING_FLAT


def portrait_crop(image: np.ndarray, box: FaceBox, scale: float = 2.6, lift: float = 0.15) -> np.ndarray:
    """A square crop around a detected face framed like a creator portrait (head and shoulders): side `scale` x the
    face-box width, centred `lift` box widths above the box centre; edges beyond the image repeat the border."""
    w = max(1, box.right - box.left)
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2 - lift * w
    half = scale * w / 2
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    side = max(1, int(round(2 * half)))
    h, wd = image.shape[:2]
    ys = np.clip(np.arange(y0, y0 + side), 0, h - 1)
    xs = np.clip(np.arange(x0, x0 + side), 0, wd - 1)
    return np.ascontiguousarray(image[ys][:, xs])
