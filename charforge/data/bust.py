"""Is a picture with no detected face itself a portrait (a face or bust filling the frame)? A logistic probe.

The import's face detectors miss many drawn faces (western cartoon avatars, line art), and the cheap close-up test
in `charforge.data.faces` (skin-toned pixels in the centre, a few dark ones) misses a third of DiceBear's busts and
every line-art one (bench/foreign/results/session17/closeups.txt). This probe reads the whole picture's ImageNet
features (EfficientNet-Lite0, `charforge.models.features`, the same network the tag estimator's probe uses) and
says "portrait" or not: a logistic regression on standardised features, fitted on busts drawn in eight styles plus
the creator's renders against pictures that are not busts (abstract avatars, game terrain and items, photos).

What it is not: a face detector. It learns the look of the portrait styles it was fitted on; a style it never
saw may be taken whole or not at all (left out of the fit: pixel-art busts kept 0.00, identicons kept 0.76-0.80;
painted game portraits 0.10). The import report names every image kept this way; `--no-closeups` turns it off.

File: `charforge/weights/bust_probe.safetensors` (kind "bustprobe"): tensors `mean`, `std`, `weight` (D,) and
`bias` (1,); config {"features": "efficientnet-lite0", "size": 112, "square": 128, "threshold": 0.5}. How it was
fitted: charforge/weights/bust_probe.md.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KIND = "bustprobe"
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "bust_probe.safetensors"


@dataclass
class BustProbe:
    mean: np.ndarray  # (D,) of the raw features
    std: np.ndarray  # (D,)
    weight: np.ndarray  # (D,) on the standardised features
    bias: float
    size: int = 112  # px the network reads
    square: int = 128  # px the centre square is resized to first
    threshold: float = 0.5
    path: Path | None = None

    def probability(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N,) p(portrait) of uint8 (H, W, 3) pictures of any size (each: its centre square)."""
        from charforge.tagger.probe import probe_features

        band = np.stack([square_thumb(np.asarray(im), self.square) for im in images])
        with _torch_threads(1 if len(band) <= 8 else None):
            feats = probe_features(band, ("full",), size=self.size)
        x = (feats.astype(np.float64) - self.mean) / self.std
        return 1.0 / (1.0 + np.exp(-(x @ self.weight + self.bias)))

    def is_bust(self, image: np.ndarray) -> tuple[bool, float]:
        p = float(self.probability([image])[0])
        return p >= self.threshold, p

    def config(self) -> dict:
        return {
            "features": "efficientnet-lite0",
            "size": self.size,
            "square": self.square,
            "threshold": self.threshold,
        }


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """torch's intra-op threads set to n inside (None: unchanged). The import asks the probe about one picture at a
    time between OpenCV face detections: with torch's default thread pool its idle OpenMP threads kept spinning
    and slowed OpenCV's own threads, so an import of faceless pictures ran at 10.5 img/s instead of 16 (session 18,
    100 pictures, `--faces human`); on one thread the probe costs about 5 ms a picture."""
    import torch

    before = torch.get_num_threads()
    change = n is not None and before != n
    if change:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


def square_thumb(image: np.ndarray, side: int) -> np.ndarray:
    """The centre square of an (H, W, 3+) uint8 picture, resized to side px (Lanczos), as the probe reads it."""
    from PIL import Image

    h, w = image.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = np.ascontiguousarray(image[y0 : y0 + s, x0 : x0 + s, :3])
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.LANCZOS))


def save_bust_probe(path: str | Path, probe: BustProbe, *, provenance: dict) -> Path:
    import torch

    from charforge.models.io import save_model

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    tensors = {"mean": t(probe.mean), "std": t(probe.std), "weight": t(probe.weight), "bias": t([probe.bias])}
    return save_model(path, tensors, kind=KIND, config=probe.config(), extra={"provenance": provenance})


def load_bust_probe(path: str | Path) -> BustProbe:
    """A probe file; a damaged or mismatched one is an error naming the file."""
    from charforge.errors import UserError
    from charforge.models.io import load_model

    tensors, meta = load_model(path, kind=KIND)
    cfg = meta.get("charforge_config") or {}
    try:
        mean, std, weight = (tensors[k].double().numpy() for k in ("mean", "std", "weight"))
        bias = float(tensors["bias"].reshape(-1)[0])
        size, square, threshold = int(cfg["size"]), int(cfg["square"]), float(cfg["threshold"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: not a complete bust probe ({type(e).__name__}: {e})") from e
    if not (mean.shape == std.shape == weight.shape and mean.ndim == 1) or not np.all(std > 0):
        raise UserError(
            f"{path}: bust probe tensors do not match (mean {mean.shape}, std, weight {weight.shape})"
        )
    return BustProbe(mean, std, weight, bias, size, square, threshold, Path(path))


@functools.lru_cache(maxsize=1)
def shipped_bust_probe() -> BustProbe | None:
    """The shipped probe, or None where the file is not installed (the close-up test then uses skin alone)."""
    return load_bust_probe(WEIGHTS) if WEIGHTS.is_file() else None
