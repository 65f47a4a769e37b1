"""An invisible watermark we own: keyed dither-modulation (QIM) in the 8x8 block DCT of luma.

Why not `invisible-watermark` (imwatermark): it refuses images under 256x256, and embedding in an upsampled
copy does not survive the downscale back to 64 px. So this module does the same family of thing
(frequency-domain, keyed) at the sizes charforge actually writes.

Method
  * Luma Y = 0.299 R + 0.587 G + 0.114 B; the watermark adds the same offset to R, G and B (which changes
    Y by exactly that offset and leaves hue alone).
  * Y is cut into 8x8 blocks aligned with JPEG's grid; in each block five low-frequency DCT coefficients
    (zig-zag positions 1-5) are "slots". JPEG at quality 75 quantises these with steps of about 5-7, and a
    2x up/down resize barely touches them, so they survive both.
  * Each slot carries one bit by dither modulation: the coefficient is moved to the nearest point of the
    lattice `STEP * k + dither + bit * STEP / 2`. Dither and the slot-to-bit assignment come from a fixed key.
  * Payload: 48 bits = a fixed 32-bit charforge signature + a 16-bit model tag (the first 4 hex digits of the
    model's sha256). A 64x64 image has 64 blocks * 5 = 320 slots, so each bit is repeated ~6-7 times.
  * Detection is blind: each slot gives a soft value in [-1, 1] (+1 = exactly on the lattice of the expected
    signature bit). The score is their mean over the signature slots. On unwatermarked images slots are
    independent uniform draws, so the score is ~N(0, 0.577 / sqrt(n_signature_slots)); the threshold is 5
    standard deviations of that null (0.193 at 64 px, 0.098 at 128 px), checked on 1000 unmarked images per size
    (bench/bench_watermark.py).

Limits (see docs/privacy.md): the key is public (charforge is open source), so anyone can detect, strip or
forge the mark; it is a provenance label, not security. Cropping, rotation, or resizing to another size
destroys the block alignment and the mark with it. Images smaller than 32x32 are not watermarked.
"""

from __future__ import annotations

import functools

import numpy as np

BLOCK = 8  # pixels; JPEG's block size, so our slots line up with its quantisation
COEFFS = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2))  # (row, col) DCT frequencies used as slots (zig-zag 1-5)
STEP = 16.0  # QIM lattice step, in orthonormal-DCT units of 0-255 luma; tolerance to noise is +-STEP/4
SIGNATURE = 0xC4A7F0E5  # the fixed 32-bit charforge signature
SIGNATURE_BITS = 32
TAG_BITS = 16  # bits of model tag (first 4 hex digits of the model sha256)
THRESHOLD_Z = 5.0  # detection threshold in standard deviations of the null score (one-sided tail ~3e-7)
NULL_SD = 3**-0.5  # sd of one slot's soft value on an unmarked image (uniform on [-1, 1])
MIN_SIZE = 32  # pixels; smaller images are left unmarked (too few slots for a reliable decision)
KEY = 0x63686172  # seeds the dither and the slot permutation; public, like the rest of the code
ITERATIONS = 4  # embed passes; later passes repair what uint8 rounding and clipping undid

_LUMA = np.array([0.299, 0.587, 0.114])


def model_tag(sha256: str | None) -> int:
    """16-bit tag from a model hash ('' or None -> 0)."""
    if not sha256:
        return 0
    try:
        return int(str(sha256)[:4], 16)
    except ValueError:
        return 0


def payload_bits(tag: int) -> np.ndarray:
    """(48,) 0/1: the signature, then the model tag, most significant bit first."""
    word = (SIGNATURE << TAG_BITS) | (int(tag) & ((1 << TAG_BITS) - 1))
    n = SIGNATURE_BITS + TAG_BITS
    return np.array([(word >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.int64)


@functools.lru_cache(maxsize=16)
def _layout(n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Keyed (bit index per slot, dither per slot) for an image with `n_slots` slots."""
    rng = np.random.default_rng(KEY)
    n_bits = SIGNATURE_BITS + TAG_BITS
    bit_of_slot = np.arange(n_slots) % n_bits
    bit_of_slot = bit_of_slot[rng.permutation(n_slots)]
    dither = rng.uniform(0.0, STEP, size=n_slots)
    return bit_of_slot, dither


@functools.lru_cache(maxsize=1)
def _basis() -> np.ndarray:
    """(len(COEFFS), 8, 8) orthonormal DCT-II basis images of the slot frequencies.

    Projecting a block on these gives exactly the slot coefficients of a full `dctn(norm="ortho")`, at a
    fraction of the cost, since only five of the 64 coefficients are ever read or written.
    """
    n = np.arange(BLOCK)
    d = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * BLOCK)) * np.sqrt(
        2.0 / BLOCK
    )  # (freq, pixel)
    d[0] /= np.sqrt(2.0)
    return np.stack([np.outer(d[u], d[v]) for u, v in COEFFS])


def _luma(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) @ _LUMA  # (H, W, 3) -> (H, W)


def _slot_values(y: np.ndarray) -> np.ndarray:
    """(H, W) luma -> (n_slots,) DCT coefficients, in block-major order."""
    hb, wb = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    blocks = (
        y[: hb * BLOCK, : wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK).transpose(0, 2, 1, 3)
    )  # (hb, wb, 8, 8)
    return np.einsum("hwij,kij->hwk", blocks, _basis()).reshape(-1)  # (hb * wb * len(COEFFS),)


def _slots_to_luma(delta: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(n_slots,) coefficient changes -> (H, W) luma change (zero outside the block grid)."""
    hb, wb = shape[0] // BLOCK, shape[1] // BLOCK
    blocks = np.einsum("hwk,kij->hwij", delta.reshape(hb, wb, len(COEFFS)), _basis())  # (hb, wb, 8, 8)
    out = np.zeros(shape)
    out[: hb * BLOCK, : wb * BLOCK] = blocks.transpose(0, 2, 1, 3).reshape(hb * BLOCK, wb * BLOCK)
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {a.shape} {a.dtype}")
    return a


def can_watermark(image: np.ndarray) -> bool:
    return min(np.asarray(image).shape[:2]) >= MIN_SIZE


def embed_watermark(image: np.ndarray, tag: int = 0, *, step: float = STEP) -> np.ndarray:
    """(H, W, 3) uint8 -> watermarked copy. Raises ValueError under MIN_SIZE (use `can_watermark`)."""
    img = _check_image(image)
    if not can_watermark(img):
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is below the {MIN_SIZE}px watermark minimum")
    bits = payload_bits(tag)
    x = img.astype(np.float64)
    out = img
    for _ in range(ITERATIONS):
        c = _slot_values(_luma(out))
        bit_of_slot, dither = _layout(len(c))
        offset = dither + bits[bit_of_slot] * (step / 2)
        target = np.round((c - offset) / step) * step + offset
        x = x + _slots_to_luma(target - c, img.shape[:2])[..., None]
        out = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return out


def slot_agreement(image: np.ndarray, *, step: float = STEP) -> tuple[np.ndarray, np.ndarray]:
    """(soft value per slot in [-1, 1], +1 = on the bit-0 lattice; bit index per slot)."""
    c = _slot_values(_luma(_check_image(image)))
    bit_of_slot, dither = _layout(len(c))
    r = np.mod(c - dither, step) / step  # position within one lattice period, [0, 1)
    dist0 = np.minimum(r, 1.0 - r)  # distance to the bit-0 lattice, in periods, [0, 0.5]
    return 1.0 - 4.0 * dist0, bit_of_slot  # 1 at bit-0 points, -1 at bit-1 points


def detection_threshold(shape: tuple[int, ...]) -> float:
    """Score threshold for an image of this (H, W, ...) shape: THRESHOLD_Z null standard deviations."""
    n_slots = (shape[0] // BLOCK) * (shape[1] // BLOCK) * len(COEFFS)
    n_sig = max(int(np.sum(_layout(n_slots)[0] < SIGNATURE_BITS)), 1) if n_slots else 1
    return THRESHOLD_Z * NULL_SD / np.sqrt(n_sig)


def detect_watermark(image: np.ndarray, *, threshold: float | None = None) -> tuple[bool, float, str | None]:
    """(detected, score in [-1, 1], payload) where payload is the decoded 4-hex-digit model tag.

    `threshold` defaults to `detection_threshold(image.shape)`. Images below MIN_SIZE give (False, 0.0, None).
    """
    img = _check_image(image)
    if not can_watermark(img):
        return False, 0.0, None
    soft0, bit_of_slot = slot_agreement(img)
    expected = payload_bits(0)
    sign = 1.0 - 2.0 * expected[bit_of_slot]  # +1 where the expected bit is 0
    sig = bit_of_slot < SIGNATURE_BITS
    score = float(np.mean(soft0[sig] * sign[sig]))
    if score < (detection_threshold(img.shape) if threshold is None else threshold):
        return False, score, None
    n_bits = SIGNATURE_BITS + TAG_BITS
    votes = np.bincount(bit_of_slot, weights=soft0, minlength=n_bits)  # > 0 means bit 0
    tag_bits = (votes[SIGNATURE_BITS:] < 0).astype(int)
    tag = int("".join(map(str, tag_bits)), 2)
    return True, score, f"{tag:04x}"
