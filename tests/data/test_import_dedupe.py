"""The perceptual hash and near-duplicate removal (charforge.data.dedupe)."""

from __future__ import annotations

import io
import itertools

import numpy as np
from corpus import pattern
from PIL import Image

from charforge.data.dedupe import HashIndex, find_duplicates, hamming, hamming_to_many, phash


def recompressed(img: np.ndarray, scale: float, quality: int) -> np.ndarray:
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((int(w * scale), int(h * scale)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def test_resized_recompressed_copies_are_close_and_others_far():
    originals = [pattern(s, 96, 96) for s in range(12)]
    hashes = [phash(im) for im in originals]
    for im, h in zip(originals, hashes):
        for scale, q in ((0.5, 60), (0.8, 85), (1.5, 75)):
            assert hamming(h, phash(recompressed(im, scale, q))) <= 6
        assert hamming(h, phash(np.clip(im.astype(int) + 12, 0, 255).astype(np.uint8))) <= 6  # brighter
    far = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(far) > 6 and 20 < np.mean(far) < 44  # different pictures differ in about half the bits


def test_hamming_matches_a_reference_popcount():
    rng = np.random.default_rng(0)
    hs = rng.integers(0, 2**63, size=50, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    ref = [bin(int(hs[0]) ^ int(x)).count("1") for x in hs]
    assert hamming_to_many(int(hs[0]), hs).tolist() == ref
    assert [hamming(int(hs[0]), int(x)) for x in hs] == ref


def test_find_duplicates_keeps_the_first_in_order():
    # 128 px: a 64 px colour field shrunk to 0.6x and JPEG'd loses colour at the check's 8x8-cell scale (chroma
    # subsampling of a 38 px picture), and is kept as a picture of its own (dedupe.py's docstring)
    a, b = pattern(100, 128, 128), pattern(101, 128, 128)
    images = [a, b, recompressed(a, 0.7, 70), recompressed(b, 0.6, 80), pattern(102, 128, 128)]
    names = ["a", "b", "a2", "b2", "c"]
    assert find_duplicates(images, names, threshold=6) == {"a2": "a", "b2": "b"}
    assert find_duplicates(images, names, threshold=-1) == {}  # dedupe off
    index = HashIndex(threshold=0)
    index.add(phash(a), "a")
    assert index.find(phash(a)) == "a" and index.find(phash(b)) is None and len(index) == 1


def test_phash_matches_a_matrix_dct_reference():
    img = pattern(7, 70, 90)
    luma = np.asarray(
        Image.fromarray(img).convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64
    )
    k, n = np.arange(32)[:, None], np.arange(32)[None, :]
    c = np.sqrt(2 / 32) * np.cos(np.pi * (2 * n + 1) * k / 64)  # orthonormal DCT-II matrix
    c[0] /= np.sqrt(2)
    low = (c @ luma @ c.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    assert phash(img) == sum(1 << i for i in np.flatnonzero(bits))


def test_expression_variants_are_not_the_same_picture_but_copies_are():
    from corpus import _builtin_renders, closeup

    from charforge.core.images import resize_square
    from charforge.data.dedupe import detail_thumb, same_picture

    def sample(im):
        return detail_thumb(resize_square(np.ascontiguousarray(im), 64))

    renders = {m: _builtin_renders(3, seed=11, mouth=m)[2] for m in ("closed", "smile", "open")}
    for view in (lambda x: x, closeup):  # whole portraits and faces filling the frame
        for j in range(3):
            a, b, c = (sample(view(renders[m][j])) for m in ("closed", "smile", "open"))
            for x, y in ((a, b), (a, c), (b, c)):  # smile vs open mouth of one character: different
                assert hamming(phash(x), phash(y)) <= 6 and not same_picture(x, y)[0]
            original = view(renders["open"][j])
            for scale, q in ((0.5, 60), (0.8, 85), (1.5, 75)):  # resized, re-encoded: the same picture
                assert same_picture(c, sample(recompressed(original, scale, q)))[0]


def _flat_face(hair, skin=(240, 200, 170), background=(235, 235, 235)):
    """A flat cartoon head: a hair cap in one colour, skin, a plain background (DiceBear-like)."""
    y, x = np.mgrid[0:128, 0:128]
    img = np.empty((128, 128, 3), np.uint8)
    img[:] = background
    head = (x - 64) ** 2 + (y - 70) ** 2 < 40**2
    hair_m = ((x - 64) ** 2 + (y - 55) ** 2 < 50**2) & ~((x - 64) ** 2 + (y - 78) ** 2 < 34**2)
    img[hair_m] = hair
    img[head & ~hair_m] = skin
    img[(x - 50) ** 2 + (y - 72) ** 2 < 16] = (30, 30, 30)  # eyes: a few dark pixels, as line art has
    img[(x - 78) ** 2 + (y - 72) ** 2 < 16] = (30, 30, 30)
    return img


def test_characters_differing_in_several_colours_are_not_copies_but_regrades_are():
    """Two DiceBear big-smile characters differ in hair, skin and background at once: the same outline and hash,
    differences everywhere like a resampled copy's; 12 of 600 were dropped as copies before session 17. They are
    two pictures; the same drawing with more contrast, another gamma or brighter is one."""
    from charforge.data.dedupe import detail_thumb, same_picture

    a = _flat_face((120, 60, 40), skin=(230, 180, 140), background=(245, 225, 230))
    for b in (
        _flat_face((60, 90, 150), skin=(200, 150, 110), background=(230, 235, 245)),
        _flat_face((140, 50, 50), skin=(240, 190, 150), background=(235, 240, 225)),
        _flat_face((150, 70, 40), skin=(190, 140, 100), background=(230, 230, 250)),
    ):
        assert hamming(phash(a), phash(b)) <= 6  # the hash alone calls them duplicates
        assert not same_picture(detail_thumb(a), detail_thumb(b))[0]
    f = a.astype(np.float32)
    for copy in (
        np.clip((f - 128) * 1.2 + 128, 0, 255),
        np.clip((f - 128) * 0.8 + 128, 0, 255),
        255 * (f / 255) ** 0.8,
        255 * (f / 255) ** 1.25,
        np.clip(f + 20, 0, 255),
    ):
        assert same_picture(detail_thumb(a), detail_thumb(copy.astype(np.uint8)))[0]


def test_a_recoloured_character_is_not_a_copy():
    """One drawing with brown and with red hair: same hash and outline, patch differences within the copy
    limits, but the coarse colours differ, so both are kept; re-encoded and resized copies are still copies."""
    from charforge.data.dedupe import DETAIL_THRESHOLD, detail_thumb, same_picture

    brown, red = _flat_face((110, 70, 40)), _flat_face((150, 60, 30))
    assert hamming(phash(brown), phash(red)) <= 6  # the hash alone calls them duplicates
    same, top, _ = same_picture(detail_thumb(brown), detail_thumb(red))
    assert top <= DETAIL_THRESHOLD and not same
    buf = io.BytesIO()
    Image.fromarray(brown).save(buf, "JPEG", quality=30)
    jpeg = np.asarray(Image.open(buf).convert("RGB"))
    small = np.asarray(
        Image.fromarray(brown).resize((48, 48), Image.BICUBIC).resize((128, 128), Image.BICUBIC)
    )
    assert same_picture(detail_thumb(brown), detail_thumb(jpeg))[0]
    assert same_picture(detail_thumb(brown), detail_thumb(small))[0]
