"""Embedders: what "looks alike" means. One registry, selected by name.

Every embedder has `.name`, `.dim` and `.embed(images uint8 (N, H, W, 3), notes=None) -> (N, dim)` float32
L2-normalised rows. `notes`, when given a list, collects messages for the user ("3 faces found, used the
largest"). `.config()` is what gets stored next to the weights to rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from charforge.errors import UserError
from charforge.f2p.learned import Encoder, EncoderConfig, to_tensor


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"embedders take (N, H, W, 3) uint8 images, got {images.dtype} {images.shape}")
    return images


def square_crop(image: np.ndarray) -> np.ndarray:
    """Centre square crop of an (H, W, 3) image."""
    h, w = image.shape[:2]
    s = min(h, w)
    return image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]


class Embedder:
    name = "embedder"
    dim = 0

    def embed(self, images: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


class IdentityEmbedder(Embedder):
    """dlib's 128-D face recognition descriptor on a 5-point-aligned chip of the largest face."""

    name, dim = "identity", 128

    def __init__(self, detect: bool = True):
        self.detect = detect

    def embed(self, images: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
        from charforge.f2p.faces import aligned_chip, face_descriptor, find_face

        out = []
        for i, img in enumerate(_check_images(images)):
            box = find_face(img, detect=self.detect, source=f"image {i}")
            if box.n_found > 1 and notes is not None:
                notes.append(f"image {i}: {box.n_found} faces found, used the largest")
            out.append(face_descriptor(aligned_chip(img, box)))
        return _normalise(np.stack(out))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "detect": self.detect}


class LearnedEmbedder(Embedder):
    """A charforge-trained encoder (see `charforge.f2p.learned`); needs its trained weights."""

    name = "learned"

    def __init__(self, encoder: Encoder | None = None, batch: int = 256):
        if encoder is None:
            raise UserError(
                "the 'learned' embedder needs trained weights: run `charforge f2p train --embedder learned` first"
            )
        self.encoder = encoder.eval()
        self.dim = encoder.cfg.dim
        self.batch = batch

    @torch.no_grad()
    def embed(self, images: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
        images = _check_images(images)
        if images.shape[1] != images.shape[2]:
            images = np.stack([square_crop(im) for im in images])
        out = []
        for i in range(0, len(images), self.batch):
            x = to_tensor(images[i : i + self.batch], self.encoder.cfg.in_size)  # (B, 3, S, S)
            out.append(self.encoder.embed(x).numpy())
        return _normalise(np.concatenate(out))

    def config(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"name": self.name, "encoder": asdict(self.encoder.cfg)}

    @classmethod
    def from_tensors(cls, cfg: dict[str, Any], tensors: dict[str, torch.Tensor]) -> LearnedEmbedder:
        enc = Encoder(EncoderConfig(**cfg["encoder"]))
        enc.load_state_dict(tensors)
        return cls(enc)


class GenericEmbedder(Embedder):
    """EfficientNet-Lite0 ImageNet features, global-average-pooled (1280-D): `charforge.models.features`'s network,
    loaded once per process and shared with the metrics."""

    name, dim = "generic", 1280

    def __init__(self, size: int = 224, batch: int = 32):
        self.size = (
            size  # px: centre square crops are scaled to this side to batch them (the network then sees 224)
        )
        self.batch = batch

    def embed(self, images: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
        from PIL import Image

        from charforge.models.features import generic_features

        images = _check_images(images)
        crops = np.stack(
            [
                np.asarray(
                    Image.fromarray(square_crop(im)).resize((self.size, self.size), Image.Resampling.BILINEAR)
                )
                if im.shape[0] != self.size or im.shape[1] != self.size
                else im
                for im in images
            ]
        )  # (N, S, S, 3)
        return _normalise(generic_features(crops, batch_size=self.batch))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size}


_REGISTRY: dict[str, Callable[..., Embedder]] = {
    "identity": IdentityEmbedder,
    "learned": LearnedEmbedder,
    "generic": GenericEmbedder,
}


def available_embedders() -> list[str]:
    return sorted(_REGISTRY)


def get_embedder(name: str, **kw) -> Embedder:
    if name not in _REGISTRY:
        raise UserError(
            f"unknown embedder {name!r}. Valid: {', '.join(available_embedders())}", field="embedder"
        )
    return _REGISTRY[name](**kw)
