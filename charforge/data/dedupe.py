"""Near-duplicate detection with a 64-bit DCT perceptual hash (pHash), written here with numpy + scipy.

The hash sees only coarse structure: the image is reduced to 32x32 luma, transformed with a 2-D DCT,
and the 8x8 lowest frequencies are compared with their median, one bit each. Resizing, recompression
and small colour shifts move few bits; different pictures differ in about half of them (~32). Two
images are near-duplicates when the Hamming distance of their hashes is <= a threshold (default 6).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIDE = 32  # side of the luma thumbnail the DCT runs on, in pixels
LOW_FREQ = 8  # side of the low-frequency DCT block kept: 8x8 = 64 bits
DEFAULT_THRESHOLD = 6  # max Hamming distance (bits of 64) still called a near-duplicate
_BIT_WEIGHTS = (np.uint64(1) << np.arange(64, dtype=np.uint64)).astype(np.uint64)


def phash(image: np.ndarray) -> int:
    """64-bit perceptual hash of an (H, W, 3) uint8 RGB image."""
    from scipy.fft import dctn  # lazy: keeps `import charforge.data` light

    thumb = Image.fromarray(image).convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX)
    luma = np.asarray(thumb, dtype=np.float64)  # (32, 32)
    low = dctn(luma, type=2, norm="ortho")[:LOW_FREQ, :LOW_FREQ].ravel()  # (64,)
    bits = low > np.median(low[1:])  # the DC term (overall brightness) stays out of the median
    return int((bits.astype(np.uint64) * _BIT_WEIGHTS).sum(dtype=np.uint64))


def hamming(a: int, b: int) -> int:
    return int(a ^ b).bit_count()


def hamming_to_many(h: int, hashes: np.ndarray) -> np.ndarray:
    """Distances from one hash to an array of uint64 hashes, (N,) int."""
    x = np.bitwise_xor(np.asarray(hashes, dtype=np.uint64), np.uint64(h))
    return np.bitwise_count(x).astype(np.int64) if hasattr(np, "bitwise_count") else _popcount(x)


def _popcount(x: np.ndarray) -> np.ndarray:
    bytes_ = x.view(np.uint8).reshape(len(x), 8)  # (N,) uint64 -> (N, 8) bytes
    return np.unpackbits(bytes_, axis=1).sum(axis=1).astype(np.int64)


class HashIndex:
    """The hashes kept so far, in keeping order; `find` names the first one within the threshold."""

    def __init__(self, threshold: int = DEFAULT_THRESHOLD):
        self.threshold = threshold
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._names)

    def find(self, h: int) -> str | None:
        n = len(self._names)
        if n == 0 or self.threshold < 0:
            return None
        d = hamming_to_many(h, self._hashes[:n])
        hit = np.flatnonzero(d <= self.threshold)
        return self._names[int(hit[0])] if len(hit) else None

    def add(self, h: int, name: str) -> None:
        n = len(self._names)
        if n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
        self._hashes[n] = np.uint64(h)
        self._names.append(name)


def find_duplicates(
    images: list[np.ndarray], names: list[str], threshold: int = DEFAULT_THRESHOLD
) -> dict[str, str]:
    """{name: name it duplicates} over images in the given order; the first of each group is kept."""
    index, dups = HashIndex(threshold), {}
    for image, name in zip(images, names):
        h = phash(image)
        first = index.find(h)
        if first is None:
            index.add(h, name)
        else:
            dups[name] = first
    return dups
