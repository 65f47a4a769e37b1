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
