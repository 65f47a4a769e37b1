"""An invisible watermark we own: keyed quantisation-index modulation (QIM) in the 8x8 block DCT of luma.

Two methods share the payload (48 bits: a fixed 32-bit charforge signature + a 16-bit model tag, the first 4
hex digits of the model's sha256) and the luma rule (Y = 0.299 R + 0.587 G + 0.114 B; the mark adds the same
offset to R, G and B, which changes Y by exactly that offset and leaves hue alone). `detect_watermark` looks
for both, so images written before v2 are still recognised.

charforge-qim-v2 (written by default since it replaced v1)
  Built to survive what v1 did not at 64 px: JPEG quality 50, bilinear resampling, shifts and crops.

  Embedding spec (everything a port needs; `v2_layout()` gives the keyed arrays: a port can take them
  precomputed, as the browser port does for v1):
    * Blocks: every whole 8x8 block of Y, block (a, b) covering rows 8a..8a+7, columns 8b..8b+7, counted
      from the top-left corner. Its layout entry is (a mod 64, b mod 64) of the keyed 64x64-block grid.
    * Coefficients: c_k = sum_ij block[i, j] * basis_k[i, j], k = 0..11, for the orthonormal DCT-II basis
      images of V2_ZIGZAG (zig-zag positions 1-12; basis_k = outer(d[u], d[v]) with
      d[f][n] = sqrt(2/8) cos(pi (2n + 1) f / 16), d[0] divided by sqrt(2)).
    * Units: the 12 coefficients form 3 units of 4, unit j = coefficients 4j..4j+3. Its value is the
      spread-transform projection u = sum_l s[a, b, j, l] * c_{4j+l} / 2 with keyed signs s = +-1.
    * Bit: unit (a, b, j) carries payload bit B = bit[a, b, j] (a keyed shuffle: each of the 48 bits
      equally often). With offset = (dither[a, b, j] + payload[B] / 2) * V2_STEP, the unit is moved to the
      nearest lattice point target = round((u - offset) / V2_STEP) * V2_STEP + offset (round half to even).
    * Pixels: each coefficient changes by s[a, b, j, l] * (target - u) / 2; the pixel change is the sum of
      (coefficient change) * basis_k over the block, added to R, G and B, then rounded (half to even) and
      clipped to 0-255. Partial blocks at the right and bottom edges are left alone.
    * Repeat from "Coefficients" on the rounded image V2_ITERATIONS times in all (later passes repair
      what rounding and clipping undid); each pass adds its change to the unrounded running image.
    * PSNR floor: with d = marked - original (integers, all channels) and S = sum(d^2), the mark costs
      more than V2_PSNR_FLOOR dB when S * 10^(V2_PSNR_FLOOR / 10) > 255^2 * d.size (an exact integer test;
      it happens on images with many saturated pixels, where clipping makes the repair passes costly). Then
      k = sqrt(255^2 * d.size / (10^(V2_PSNR_FLOOR / 10) * S)) and the output is clip(round(original + k d))
      (round half to even), with k multiplied by V2_PSNR_BACKOFF until the rounded result passes the test.
      Units then sit a little off their lattice points, so these images carry a slightly weaker mark.
  The layout is keyed per block and does not repeat within 512 px. (A first version repeated a 32 px tile
  so that any shift could be searched; on flat, smooth or periodic clean images the repeated layout made
  the votes of every tile agree, and 15 % of clean 128 px images tested positive. Independent keys per
  block keep the votes of a clean image independent.)

  Detection (this module only): blind. The detector does not know the shift or the blur, so it tries
  every hypothesis: each shift of the block grid by -16..16 px in each axis (33 x 33 = 1,089: shifts, and
  crops that take up to 16 px off the top or left) x V2_GAIN_POWERS blur compensations (coefficients divided
  by V2_BLUR_GAINS ** power, the attenuation of a 2x bilinear resample, undoing the shrink resampling gives
  the lattice) x V2_TAUS vote weightings, plus the same shifts and weightings on the luma with a 2x bilinear
  up-and-down resample undone exactly (`undo_bilinear_2x`: that resample is the separable tridiagonal filter
  [3/16, 10/16, 3/16], well conditioned, so solving it back restores the coefficients instead of scaling them
  by an average gain; at 64 px it lifts detection after that resample from 88 % to 100 %). Each signature unit votes
  cos(2 pi (u / V2_STEP - dither)) * (+1 if its signature bit is 0 else -1), which on an unmarked image has
  mean 0 and variance 1/2; votes are weighted by w = 1 / (1 + E / tau), E the block's energy outside the
  12 used coefficients (strong edges make noisy votes after resampling; tau = inf weighs all alike).
  z = sum(w * vote) / sqrt(sum(w^2) / 2) is ~N(0, 1) per hypothesis without a mark. Because 10,890
  hypotheses are tried, the image is reported marked only when the best z reaches the Bonferroni
  threshold, the one-sided normal quantile of V2_FALSE_ALARM / V2_HYPOTHESES (5.63): at most 1e-4 false
  alarms per image in theory, and bench/bench_watermark.py counts them on 10,000 clean images. The tag is
  read at the best hypothesis from the weighted votes of its units (no error correction).

charforge-qim-v1 (kept for old outputs; `embed_watermark(..., method=METHOD_V1)` still writes it)
  * Y is cut into 8x8 blocks aligned with JPEG's grid; in each block five low-frequency DCT coefficients
    (zig-zag positions 1-5) are "slots".
  * Each slot carries one bit by dither modulation: the coefficient is moved to the nearest point of the
    lattice `STEP * k + dither + bit * STEP / 2`. Dither and the slot-to-bit assignment come from a fixed key
    and depend on the image size (`_layout`).
  * Detection: each slot gives a soft value in [-1, 1] (+1 = exactly on the lattice of the expected
    signature bit); the score is their mean over the signature slots, compared with 5 standard deviations
    of its null (0.193 at 64 px, 0.098 at 128 px). No search: a shift or crop loses it.

Limits (see docs/privacy.md): the key is public (charforge is open source), so anyone can detect, strip or
forge the mark; it is a provenance label, not security. Rotation and resizing to another size are not
searched for and destroy the mark. Images smaller than 32x32 are not watermarked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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

METHOD_V1 = "charforge-qim-v1"
METHOD_V2 = "charforge-qim-v2"
METHODS = (METHOD_V2, METHOD_V1)  # newest first; detect_watermark tries them in this order

# v2 (see the module docstring for the spec)
V2_GRID = 64  # the keyed layout covers 64x64 blocks (512x512 px) and repeats beyond that
V2_ZIGZAG = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0), (3, 1), (2, 2))
V2_UNIT = 4  # coefficients per unit (spread-transform length)
V2_UNITS = len(V2_ZIGZAG) // V2_UNIT  # 3 units per block
V2_STEP = 36.0  # QIM step of a unit value, in orthonormal-DCT units of 0-255 luma
V2_KEY = 0x63686632  # seeds the v2 signs, dither and bit order; public
V2_ITERATIONS = 4
V2_PSNR_FLOOR = (
    40  # dB, a multiple of 10 (exact integer test): a costlier mark (saturated images) is scaled down
)
V2_PSNR_BACKOFF = 0.995  # the scale's step down while rounding still leaves the image under the floor
# detection only (a port of the embedder does not need these)
V2_SEARCH = 16  # px: every shift of the block grid by -16..16 px in each axis is tried (33 x 33 = 1,089)
V2_BLUR_GAINS = (
    0.85,
    0.86,
    0.79,
    0.78,
    0.78,
    0.68,
    0.73,
    0.74,
    0.69,
    0.55,
    0.64,
    0.69,
)  # 2x bilinear up+down
V2_GAIN_POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)  # blur compensations tried: coefficients / V2_BLUR_GAINS**power
# vote weights tried: 1 / (1 + E / tau), E = the block's energy outside the used coefficients (edges make
# noisy votes under resampling); tau = inf weighs every block the same (best against JPEG)
V2_TAUS = (1e4, float("inf"))
V2_FALSE_ALARM = 1e-4  # per-image false-alarm rate the threshold is set for (checked on 10,000 clean images)
# luma pre-filters tried besides the gain compensations: the exact inverse of a 2x bilinear up+down resample
V2_UNDO = ("bilinear-2x",)
V2_HYPOTHESES = (2 * V2_SEARCH + 1) ** 2 * (len(V2_GAIN_POWERS) + len(V2_UNDO)) * len(V2_TAUS)  # 13,068


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


def embed_watermark(
    image: np.ndarray, tag: int = 0, *, method: str = METHOD_V2, step: float | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 -> watermarked copy, by `method` (METHOD_V2 by default; METHOD_V1 for the old mark).

    Raises ValueError under MIN_SIZE (use `can_watermark`) or for an unknown method."""
    if method == METHOD_V2:
        return embed_v2(image, tag, step=V2_STEP if step is None else step)
    if method == METHOD_V1:
        return embed_v1(image, tag, step=STEP if step is None else step)
    raise ValueError(f"unknown watermark method {method!r}; known: {', '.join(METHODS)}")


def _check_size(img: np.ndarray) -> None:
    if not can_watermark(img):
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is below the {MIN_SIZE}px watermark minimum")


# ---------------------------------------------------------------------------------------------------- v1
def embed_v1(image: np.ndarray, tag: int = 0, *, step: float = STEP) -> np.ndarray:
    """charforge-qim-v1: the embedder every output used before v2 (and the browser port still uses)."""
    img = _check_image(image)
    _check_size(img)
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
    """v1: (soft value per slot in [-1, 1], +1 = on the bit-0 lattice; bit index per slot)."""
    c = _slot_values(_luma(_check_image(image)))
    bit_of_slot, dither = _layout(len(c))
    r = np.mod(c - dither, step) / step  # position within one lattice period, [0, 1)
    dist0 = np.minimum(r, 1.0 - r)  # distance to the bit-0 lattice, in periods, [0, 0.5]
    return 1.0 - 4.0 * dist0, bit_of_slot  # 1 at bit-0 points, -1 at bit-1 points


def detection_threshold(shape: tuple[int, ...]) -> float:
    """v1 score threshold for an image of this (H, W, ...) shape: THRESHOLD_Z null standard deviations."""
    n_slots = (shape[0] // BLOCK) * (shape[1] // BLOCK) * len(COEFFS)
    n_sig = max(int(np.sum(_layout(n_slots)[0] < SIGNATURE_BITS)), 1) if n_slots else 1
    return THRESHOLD_Z * NULL_SD / np.sqrt(n_sig)


def _decode_tag(votes: np.ndarray) -> str:
    """48 bit votes (> 0 means bit 0) -> the model tag as 4 hex digits."""
    tag_bits = (votes[SIGNATURE_BITS:] < 0).astype(int)
    return f"{int(''.join(map(str, tag_bits)), 2):04x}"


def detect_v1(image: np.ndarray, *, threshold: float | None = None) -> tuple[bool, float, str | None]:
    """v1 detection: (detected, score in [-1, 1], payload) at the block grid of the image as it is."""
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
    votes = np.bincount(bit_of_slot, weights=soft0, minlength=SIGNATURE_BITS + TAG_BITS)
    return True, score, _decode_tag(votes)


# ---------------------------------------------------------------------------------------------------- v2
@functools.lru_cache(maxsize=1)
def v2_layout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keyed v2 arrays per block (a, b) of the 64x64-block grid and unit j: signs (64, 64, 3, 4) of +-1.0,
    dither (64, 64, 3) in [0, 1), bit (64, 64, 3) the payload bit index 0-47 (each bit equally often)."""
    rng = np.random.default_rng(V2_KEY)
    g = V2_GRID
    signs = rng.integers(0, 2, size=(g, g, V2_UNITS, V2_UNIT)) * 2.0 - 1.0
    dither = rng.uniform(0.0, 1.0, size=(g, g, V2_UNITS))
    n_bits = SIGNATURE_BITS + TAG_BITS
    bit = (np.arange(g * g * V2_UNITS) % n_bits)[rng.permutation(g * g * V2_UNITS)].reshape(g, g, V2_UNITS)
    return signs, dither, bit


@functools.lru_cache(maxsize=1)
def v2_basis() -> np.ndarray:
    """(12, 8, 8) orthonormal DCT-II basis images of V2_ZIGZAG."""
    n = np.arange(BLOCK)
    d = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * BLOCK)) * np.sqrt(2.0 / BLOCK)
    d[0] /= np.sqrt(2.0)
    return np.stack([np.outer(d[u], d[v]) for u, v in V2_ZIGZAG])


def _v2_coeffs(y: np.ndarray) -> np.ndarray:
    """(H, W) luma -> (H // 8, W // 8, 12) coefficients of the whole blocks."""
    hb, wb = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    bl = y[: hb * BLOCK, : wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK)
    return np.einsum("aibj,kij->abk", bl, v2_basis())


def embed_v2(image: np.ndarray, tag: int = 0, *, step: float = V2_STEP) -> np.ndarray:
    """charforge-qim-v2 (the spec is in the module docstring)."""
    img = _check_image(image)
    _check_size(img)
    signs, dither, bit = v2_layout()
    h, w = img.shape[:2]
    hb, wb = h // BLOCK, w // BLOCK
    ia, ib = np.ix_(np.arange(hb) % V2_GRID, np.arange(wb) % V2_GRID)
    s = signs[ia, ib]  # (hb, wb, 3, 4)
    offset = (dither[ia, ib] + payload_bits(tag)[bit[ia, ib]] / 2.0) * step  # (hb, wb, 3)
    x = img.astype(np.float64)
    out = img
    for _ in range(V2_ITERATIONS):
        c = _v2_coeffs(_luma(out)).reshape(hb, wb, V2_UNITS, V2_UNIT)
        u = np.einsum("abjl,abjl->abj", c, s) / np.sqrt(V2_UNIT)
        target = np.round((u - offset) / step) * step + offset
        dc = (s * ((target - u) / np.sqrt(V2_UNIT))[..., None]).reshape(hb, wb, -1)
        d = np.zeros((h, w))
        d[: hb * BLOCK, : wb * BLOCK] = np.einsum("abk,kij->aibj", dc, v2_basis()).reshape(
            hb * BLOCK, wb * BLOCK
        )
        x = x + d[..., None]
        out = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return _v2_psnr_floor(img, out)


def _v2_psnr_floor(img: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Scale the mark down where it costs more than V2_PSNR_FLOOR dB (see the spec); an exact integer test."""
    base = img.astype(np.int64)
    d = out.astype(np.int64) - base
    limit = 255 * 255 * d.size  # the sum of squared changes allowed, times 10 ** (floor / 10)
    scale_db = 10 ** (V2_PSNR_FLOOR // 10)  # exact, since the floor is a multiple of 10 dB
    if int((d * d).sum()) * scale_db <= limit:
        return out
    k = float(np.sqrt(limit / (scale_db * int((d * d).sum()))))
    while True:
        scaled = np.clip(np.round(base + k * d), 0, 255).astype(np.int64)
        if int(((scaled - base) ** 2).sum()) * scale_db <= limit:
            return scaled.astype(np.uint8)
        k *= V2_PSNR_BACKOFF


# Pillow's BILINEAR resize of n px to 2n and back to n, one axis: interior rows [3/16, 10/16, 3/16]; at each
# edge the upsample clamps and the downsample renormalises, giving [11/14, 3/14]. (tests check it against
# Pillow at several sizes.)
_BILINEAR_2X_EDGE = (11 / 14, 3 / 14)
_BILINEAR_2X_TAPS = (3 / 16, 10 / 16, 3 / 16)


def bilinear_2x_bands(n: int) -> np.ndarray:
    """(3, n) banded form (scipy's solve_banded layout) of the n x n matrix of a 2x bilinear up+down resample."""
    lo, mid, hi = _BILINEAR_2X_TAPS
    ab = np.empty((3, n))
    ab[0], ab[1], ab[2] = hi, mid, lo  # super-diagonal, diagonal, sub-diagonal
    if n >= 2:
        ab[1, 0] = ab[1, -1] = _BILINEAR_2X_EDGE[0]
        ab[0, 1] = ab[2, -2] = _BILINEAR_2X_EDGE[1]
    else:
        ab[1, 0] = 1.0
    return ab


def undo_bilinear_2x(y: np.ndarray) -> np.ndarray:
    """(H, W) luma -> the luma before a 2x bilinear up-and-down resample (exact up to the attack's rounding)."""
    from scipy.linalg import solve_banded

    out = solve_banded((1, 1), bilinear_2x_bands(y.shape[0]), y)
    return solve_banded((1, 1), bilinear_2x_bands(y.shape[1]), out.T).T


_UNDO = {"bilinear-2x": undo_bilinear_2x}


def v2_threshold() -> float:
    """The z a v2 detection needs: Bonferroni over V2_HYPOTHESES at V2_FALSE_ALARM per image."""
    from scipy.stats import norm

    return float(norm.isf(V2_FALSE_ALARM / V2_HYPOTHESES))


def _shifts(r: int) -> list[int]:
    """Block-index offsets q with 8q + r in [-V2_SEARCH, V2_SEARCH], for grid alignment r in 0..7."""
    return [
        q for q in range(-V2_SEARCH // BLOCK - 1, V2_SEARCH // BLOCK + 2) if abs(BLOCK * q + r) <= V2_SEARCH
    ]


@dataclass
class Detection:
    """What the detector found. `score` is the mean (weighted) agreement in [-1, 1] over the signature; for v2,
    `z` is the test statistic, compared with `threshold`, and `offset` (dy, dx) the shift in px at which the
    mark was found (content moved down/right is positive; v1: z and offset are None)."""

    detected: bool
    method: str | None  # which mark was found (None if none)
    score: float
    payload: str | None  # the decoded model tag, 4 hex digits
    z: float | None = None
    threshold: float | None = None
    offset: tuple[int, int] | None = None
    blur_power: float | None = None
    undone: str | None = None  # the resample undone before the best hypothesis (V2_UNDO), or None


def _v2_windows(y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The 12 coefficients of the 8x8 window at every pixel position of luma `y`, (h-7, w-7, 12), and each
    window's vote weights, one array per V2_TAUS."""
    win = np.lib.stride_tricks.sliding_window_view(y, (BLOCK, BLOCK))  # (h-7, w-7, 8, 8)
    c_all = np.einsum("yxij,kij->yxk", win, v2_basis())
    energy = np.maximum(win.var(axis=(2, 3)) * BLOCK * BLOCK - (c_all**2).sum(-1), 0.0)
    return c_all, [1.0 / (1.0 + energy / tau) for tau in V2_TAUS]


def detect_v2(image: np.ndarray, *, step: float = V2_STEP) -> Detection:
    """Search every shift in [-16, 16] px, blur compensation and undone resample for the v2 mark (see the
    module docstring)."""
    img = _check_image(image)
    thr = v2_threshold()
    if not can_watermark(img):
        return Detection(False, None, 0.0, None, 0.0, thr)
    y = _luma(img)
    signs, dither, bit = v2_layout()
    expected = (1.0 - 2.0 * payload_bits(0)[bit]) * (bit < SIGNATURE_BITS)  # +-1 on signature units, else 0
    n_sig = (bit < SIGNATURE_BITS).sum(-1).astype(np.float64)  # signature units per layout block
    gains = np.asarray(V2_BLUR_GAINS)
    # (what was undone, its windows, the gain compensations tried on it)
    views = [(None, _v2_windows(y), V2_GAIN_POWERS)]
    views += [(name, _v2_windows(_UNDO[name](y)), (0.0,)) for name in V2_UNDO]
    best: tuple = (-np.inf,)
    for vi, (_, (c_all, weights), powers) in enumerate(views):
        for ry in range(BLOCK):
            for rx in range(BLOCK):
                c = c_all[ry::BLOCK, rx::BLOCK]  # blocks of the grid that starts at (ry, rx)
                hb, wb = c.shape[:2]
                if hb == 0 or wb == 0:
                    continue
                qy, qx = np.array(_shifts(ry)), np.array(_shifts(rx))
                # layout block of attacked block (m, n) under shift (8 qy + ry, 8 qx + rx): (m - qy, n - qx)
                la = np.arange(hb)[None, :] - qy[:, None]  # (nqy, hb)
                lb = np.arange(wb)[None, :] - qx[:, None]  # (nqx, wb)
                valid = (la[:, None, :, None] >= 0) & (lb[None, :, None, :] >= 0)  # (nqy, nqx, hb, wb)
                ia, ib = la[:, None, :, None] % V2_GRID, lb[None, :, None, :] % V2_GRID
                sg, dt, ex, ns = signs[ia, ib], dither[ia, ib], expected[ia, ib], n_sig[ia, ib] * valid
                ws = [wq[ry::BLOCK, rx::BLOCK][None, None] * valid for wq in weights]
                for pw in powers:
                    cg = (c / gains**pw).reshape(hb, wb, V2_UNITS, V2_UNIT)
                    u = np.einsum("abjl,yxabjl->yxabj", cg, sg) / np.sqrt(V2_UNIT)
                    votes = (np.cos(2.0 * np.pi * (u / step - dt)) * ex).sum(-1)  # (nqy, nqx, hb, wb)
                    for ti, wq in enumerate(ws):
                        total = (votes * wq).sum((2, 3))
                        z = total / np.maximum(np.sqrt(0.5 * (ns * wq**2).sum((2, 3))), 1e-12)
                        k = np.unravel_index(int(np.argmax(z)), z.shape)
                        if z[k] > best[0]:
                            score = float(total[k] / max((ns[k] * wq[k]).sum(), 1e-12))
                            best = (float(z[k]), ry, rx, int(qy[k[0]]), int(qx[k[1]]), pw, ti, score, vi)
    zbest, ry, rx, qy0, qx0, pw, ti, score, vi = best
    undone, (c_all, weights), _ = views[vi]
    offset = (BLOCK * qy0 + ry, BLOCK * qx0 + rx)
    if zbest < thr:
        return Detection(False, None, score, None, zbest, thr, offset, pw, undone)
    c = c_all[ry::BLOCK, rx::BLOCK] / gains**pw
    hb, wb = c.shape[:2]
    la, lb = np.arange(hb) - qy0, np.arange(wb) - qx0
    ok = (la[:, None] >= 0) & (lb[None, :] >= 0)
    ia, ib = np.ix_(la % V2_GRID, lb % V2_GRID)
    u = np.einsum("abjl,abjl->abj", c.reshape(hb, wb, V2_UNITS, V2_UNIT), signs[ia, ib]) / np.sqrt(V2_UNIT)
    soft = np.cos(2.0 * np.pi * (u / step - dither[ia, ib]))
    wq = (weights[ti][ry::BLOCK, rx::BLOCK] * ok)[..., None]
    votes = np.bincount(
        bit[ia, ib].reshape(-1), weights=(soft * wq).reshape(-1), minlength=SIGNATURE_BITS + TAG_BITS
    )
    return Detection(True, METHOD_V2, score, _decode_tag(votes), zbest, thr, offset, pw, undone)


def detect(image: np.ndarray) -> Detection:
    """Look for the v2 mark (any shift or crop), then the v1 mark of older outputs."""
    found = detect_v2(image)
    if found.detected:
        return found
    ok, score, payload = detect_v1(image)
    if ok:
        return Detection(True, METHOD_V1, score, payload, None, detection_threshold(np.shape(image)))
    return found


def detect_watermark(image: np.ndarray, *, threshold: float | None = None) -> tuple[bool, float, str | None]:
    """(detected, score in [-1, 1], payload) where payload is the decoded 4-hex-digit model tag.

    Finds v2 and v1 marks (`detect` says which). `threshold` is a v1 score threshold and restricts the check
    to v1, as before v2 existed. Images below MIN_SIZE give (False, 0.0, None).
    """
    if threshold is not None:
        return detect_v1(image, threshold=threshold)
    img = _check_image(image)
    if not can_watermark(img):
        return False, 0.0, None
    d = detect(img)
    return d.detected, d.score, d.payload
