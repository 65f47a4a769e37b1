"""Near-duplicate detection with a 64-bit DCT perceptual hash (pHash), written here with numpy + scipy.

The hash sees only coarse structure: the image is reduced to 32x32 luma, transformed with a 2-D DCT,
and the 8x8 lowest frequencies are compared with their median, one bit each. Resizing, recompression
and small colour shifts move few bits; different pictures differ in about half of them (~32). Two
images are near-duplicates when the Hamming distance of their hashes is <= a threshold (default 6).

The hash alone also merges expression variants: one character smiling and with an open mouth differ
in 0-6 bits. So a hash match is only a candidate; it is confirmed as "the same picture" patch by patch:
both images at 64x64, a global colour shift taken out (the per-channel median of the difference), then
the mean difference of every 2x2 patch. A resized or re-encoded copy differs a little everywhere: its
largest patch difference is at most a few times its 90th percentile (<= 2.9x, measured on built-in
renders and colour fields down to 0.4x scale and JPEG quality 50). A changed mouth, eye or accessory
differs in a few patches only: its largest patch is >= 39x the 90th percentile on built-in expression
variants. Two images are the same picture when the largest patch difference is <= DETAIL_THRESHOLD, it is
not a localised change (>= LOCAL_MIN and more than LOCAL_RATIO x (90th percentile + 1)), and no *region* changed
colour. A region change is one drawing with another hair colour, skin, clothes or glasses: the same hash and
outline, patch differences within the copy limits, but the colours of whole areas move. It is read on 8x8 area
averages (`coarse_difference`) after a global regrade is taken out, two ways, keeping the smaller: a colour shift
(the per-channel median of the difference), or one gain for all channels with an offset per channel (contrast,
gamma; a recolour moves the channels apart, which one shared gain cannot follow). Copies stay under 7.8 (480
copies of 40 built-in renders: JPEG q20-85, 0.4x-1.5x round trips, brightness +-20, contrast 0.8-1.2, gamma
0.8-1.25; random patterns resampled stay under 5.3), and REGION_COARSE = 10 calls more a different picture.
Session 17 replaced a test that asked the change to sit in one region (median patch difference near 0): it let
through DiceBear characters that differ in hair, skin and background at once, and 12 of 600 big-smile avatars
were dropped as copies of other characters (now 1; `python bench/dedupe_calibration.py FOLDER ...`). A drawing
whose only change is the colour of a flat background can still fall under the line: it is dropped and shown on
the import's duplicates sheet. The other way, a shrunk and re-encoded copy of a picture dense in colour detail at
the cell scale can exceed it and is kept: 0.5-0.8x JPEG copies of 64 px renders, or a random colour field shrunk
to 0.8x with a 1 % change of aspect (11.8); copies of 128 px renders stay under the line (159 of 160).
threshold < 0 turns dedupe off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_SIDE = 32  # side of the luma thumbnail the DCT runs on, in pixels
LOW_FREQ = 8  # side of the low-frequency DCT block kept: 8x8 = 64 bits
DEFAULT_THRESHOLD = 6  # max Hamming distance (bits of 64) still called a near-duplicate
DETAIL_SIDE = 64  # side of the thumbnail the patch check compares, in pixels
DETAIL_PATCH = 2  # side of the patches whose mean difference is checked, in thumbnail pixels
DETAIL_THRESHOLD = 72.0  # largest patch difference (0..255) of two images that are still the same picture
LOCAL_MIN = 16.0  # a patch difference below this (0..255) is not a visible change
LOCAL_RATIO = 8.0  # a largest patch this many times the 90th percentile (+1) is a local edit, not noise
COARSE_SIDE = 8  # side of the area-averaged grid the region check compares
REGION_COARSE = 10.0  # an 8x8-cell colour change at least this, after a global regrade, is a changed region
GAIN_RANGE = (0.7, 1.4)  # the shared gain a regrade may have (contrast 0.8-1.2 and gamma 0.8-1.25 fit inside)
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


def detail_thumb(image: np.ndarray) -> np.ndarray:
    """(DETAIL_SIDE, DETAIL_SIDE, 3) uint8 thumbnail of an (H, W, 3) uint8 image for `detail_difference`."""
    if image.shape[:2] == (DETAIL_SIDE, DETAIL_SIDE):
        return np.ascontiguousarray(image, dtype=np.uint8)
    small = Image.fromarray(image).resize((DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def patch_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference (0..255) of every 2x2 patch of two thumbnails, a global colour shift removed."""
    d = a.astype(np.float32) - b.astype(np.float32)  # (S, S, 3)
    d -= np.median(d.reshape(-1, 3), axis=0)
    d = np.abs(d).mean(axis=2)  # (S, S)
    n, p = d.shape[0] // DETAIL_PATCH, DETAIL_PATCH
    return d[: n * p, : n * p].reshape(n, p, n, p).mean(axis=(1, 3)).ravel()  # (n*n,)


def detail_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest 2x2-patch mean absolute difference (0..255) of two thumbnails, a global colour shift removed."""
    return float(patch_differences(a, b).max())


def same_picture(a: np.ndarray, b: np.ndarray, detail: float = DETAIL_THRESHOLD) -> tuple[bool, float, float]:
    """(same, largest patch difference, its 90th percentile) of two thumbnails; see the module docstring."""
    patches = patch_differences(a, b)
    top, p90 = float(patches.max()), float(np.percentile(patches, 90))
    local = top >= LOCAL_MIN and top > LOCAL_RATIO * (p90 + 1.0)
    if top > detail or local:
        return False, top, p90
    return coarse_difference(a, b) < REGION_COARSE, top, p90


def coarse_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference (0..255) of the two thumbnails' 8x8 area averages that a global regrade does not
    explain: the smaller of (a colour shift removed) and (one gain for all channels plus an offset per channel
    removed, the gain fitted by least squares within GAIN_RANGE)."""
    k = a.shape[0] // COARSE_SIDE
    n = COARSE_SIDE * k
    x = a[:n, :n].reshape(-1, 3).astype(np.float64)
    y = b[:n, :n].reshape(-1, 3).astype(np.float64)

    def cells(r: np.ndarray) -> float:
        d = r.reshape(COARSE_SIDE, k, COARSE_SIDE, k, 3).mean(axis=(1, 3))  # (8, 8, 3)
        return float(np.abs(d).mean(axis=2).max())

    d = x - y
    shifted = cells(d - np.median(d, axis=0))
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    gain = float(np.clip((xc * yc).sum() / max(float((xc * xc).sum()), 1e-6), *GAIN_RANGE))
    return min(shifted, cells(yc - gain * xc))


@dataclass(frozen=True)
class Match:
    """A confirmed near-duplicate: the kept image it repeats, the hash distance and the patch difference."""

    name: str
    distance: int
    detail: float | None  # largest patch difference; None when no thumbnails were given (hash only)
    spread: float | None = None  # 90th percentile of the patch differences


class HashIndex:
    """The hashes kept so far, in keeping order; `match` names the first one that is the same picture.

    `detail` is the patch threshold of the confirmation step (None: hash only).
    """

    def __init__(self, threshold: int = DEFAULT_THRESHOLD, detail: float | None = DETAIL_THRESHOLD):
        self.threshold = threshold
        self.detail = detail
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._names: list[str] = []
        self._thumbs: list = []  # (S, S, 3) uint8 arrays, callables returning one, or None

    def __len__(self) -> int:
        return len(self._names)

    def match(self, h: int, thumb: np.ndarray | None = None) -> Match | None:
        """The kept image this one repeats: of those within the hash threshold that are the same picture,
        the closest (smallest largest-patch difference, then the first kept)."""
        n = len(self._names)
        if n == 0 or self.threshold < 0:
            return None
        d = hamming_to_many(h, self._hashes[:n])
        best = None
        for i in np.flatnonzero(d <= self.threshold):
            kept = self._thumbs[int(i)]
            kept = kept() if callable(kept) else kept  # a loader: thumbnails may live on disk
            if self.detail is None or thumb is None or kept is None:
                return Match(self._names[int(i)], int(d[i]), None)
            same, top, p90 = same_picture(thumb, kept, self.detail)
            if same and (best is None or top < best.detail):
                best = Match(self._names[int(i)], int(d[i]), round(top, 1), round(p90, 1))
        return best

    def candidates(self, h: int) -> list[tuple[str, int]]:
        """(name, hash distance) of every kept hash within the threshold, in keeping order."""
        n = len(self._names)
        if n == 0 or self.threshold < 0:
            return []
        d = hamming_to_many(h, self._hashes[:n])
        return [(self._names[int(i)], int(d[i])) for i in np.flatnonzero(d <= self.threshold)]

    def find(self, h: int, thumb: np.ndarray | None = None) -> str | None:
        m = self.match(h, thumb)
        return m.name if m is not None else None

    def swap_thumbs(self, start: int, loaders: list) -> None:
        """Replace the thumbnails kept from position `start` on by loaders (callables returning them)."""
        self._thumbs[start : start + len(loaders)] = loaders

    def add(self, h: int, name: str, thumb: np.ndarray | None = None) -> None:
        n = len(self._names)
        if n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
        self._hashes[n] = np.uint64(h)
        self._names.append(name)
        self._thumbs.append(thumb)


def find_duplicates(
    images: list[np.ndarray], names: list[str], threshold: int = DEFAULT_THRESHOLD
) -> dict[str, str]:
    """{name: name it duplicates} over images in the given order; the first of each group is kept."""
    index, dups = HashIndex(threshold), {}
    for image, name in zip(images, names):
        h, thumb = phash(image), detail_thumb(image)
        first = index.find(h, thumb)
        if first is None:
            index.add(h, name, thumb)
        else:
            dups[name] = first
    return dups
