"""Painted hats for the part reader (issue 13): placed on the head the hair mask shows, marked exactly where
painted, reproducible from the seed, never on a portrait that already wears a hat, and absent from the batches
of a run that does not ask for them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from charforge.errors import UserError
from charforge.train import partseg
from charforge.train import synth_hats as sh
from charforge.train import tagger_augment as ta


def _head(size=64):
    """A (S, S, 3) portrait in [0, 1] and its hair mask: a hair disc round a skin face, white ground."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size * 0.45, xx - size / 2)
    hair = (r < size * 0.3) & ~(r < size * 0.18)
    image = np.ones((size, size, 3))
    image[hair] = (0.2, 0.3, 0.8)
    image[r < size * 0.18] = (0.95, 0.8, 0.7)
    return image, hair


def test_head_box_reads_the_hair_top_and_width():
    _, hair = _head()
    top, cx, width = sh.head_box(hair)
    assert top == pytest.approx(64 * 0.45 - 64 * 0.3, abs=1.5)
    # the widest row of the upper third of a 38 px disc: its chord 13 px below the top, about 36 px
    assert cx == pytest.approx(32, abs=1) and width == pytest.approx(36, abs=2)
    assert sh.head_box(np.zeros((64, 64), bool)) is None  # no hair, no head


@pytest.mark.parametrize("kind", sh.KINDS)
def test_every_kind_sits_on_the_top_of_the_head(kind):
    _, hair = _head()
    top, cx, width = sh.head_box(hair)
    for seed in range(5):
        parts = sh.hat_parts(kind, 64, top, cx, width, np.random.default_rng(seed))
        whole = np.logical_or.reduce(parts)
        rows, cols = np.flatnonzero(whole.any(1)), np.flatnonzero(whole.any(0))
        assert whole.sum() > 0.02 * 64 * 64, (kind, seed)
        assert rows[0] < top + 0.3 * width  # it covers the top of the head
        assert rows[-1] < top + 1.2 * width  # and stops above the chin
        assert cols[0] < cx < cols[-1]  # across the head's centre
        assert (whole & hair).sum() > 0.25 * hair[: int(top + 0.3 * width)].sum()  # it hides hair


def test_paint_changes_only_the_hat_pixels_and_is_seeded():
    image, hair = _head()
    a, b = image.copy(), image.copy()
    mask = sh.paint(a, hair, np.random.default_rng(3))
    mask_b = sh.paint(b, hair, np.random.default_rng(3))
    np.testing.assert_array_equal(mask, mask_b)
    np.testing.assert_array_equal(a, b)
    changed = (a != image).any(-1)
    assert changed.any() and not (changed & ~mask).any()  # outside the mask nothing moved
    assert sh.paint(image.copy(), np.zeros((64, 64), bool), np.random.default_rng(0)) is None


def test_paint_batch_marks_the_hat_and_skips_portraits_that_wear_one():
    image, hair = _head(32)
    x = np.repeat((image.transpose(2, 0, 1) * 2 - 1)[None], 4, axis=0).astype(np.float32)
    names = ("hair", "hat", "skin")
    m = np.zeros((4, 3, 32, 32), np.float32)
    m[:, 0] = hair
    m[3, 1, :3] = 1  # the fourth already wears a hat
    painted = sh.paint_batch(x, m, names, np.random.default_rng(0), share=1.0)
    assert painted.tolist() == [True, True, True, False]
    for r in range(3):
        assert m[r, 1].sum() > 0 and (m[r].sum(0) <= 1).all()  # one part per pixel
        assert not (m[r, 0].astype(bool) & m[r, 1].astype(bool)).any()  # hair under the hat is hat now
    known = np.zeros_like(m)
    known[:, 0] = 1  # a foreign file: hair known, the rest unknown
    x2, m2 = x.copy(), np.zeros_like(m)
    m2[:, 0] = hair
    sh.paint_batch(x2, m2, names, np.random.default_rng(0), share=1.0, known=known)
    assert all((known[r, 1][m2[r, 1] > 0] == 1).all() for r in range(4))  # painted hats are known hats
    assert sh.paint_batch(x.copy(), m.copy(), ("hair", "skin"), np.random.default_rng(0), 1.0).sum() == 0


def test_make_batch_paints_hats_only_when_asked(tmp_path):
    from charforge.data.build import build_from_creator
    from charforge.train.tagger import split_indices

    data = build_from_creator(tmp_path / "ds", creator="builtin", n=12, size=32, seed=0, show_progress=False)
    parts = ta.cached_part_renders(data, split_indices(len(data), 0.1, 0)[0], None)
    names = ("hair", "hat", "skin")
    plain = partseg.PartSegOptions(batch_size=8)
    x0, m0, _ = partseg.make_batch(parts, 2, plain, data.schema, names, 32)
    again = partseg.make_batch(
        parts, 2, partseg.PartSegOptions(batch_size=8, synth_hats=0.0), data.schema, names, 32
    )
    assert torch.equal(x0, again[0]) and torch.equal(m0, again[1])
    hats = partseg.PartSegOptions(batch_size=8, synth_hats=1.0)
    x1, m1, _ = partseg.make_batch(parts, 2, hats, data.schema, names, 32)
    x1b, m1b, _ = partseg.make_batch(parts, 2, hats, data.schema, names, 32)
    assert torch.equal(x1, x1b) and torch.equal(m1, m1b)  # still (seed, step) only
    worn = m0[:, 1].flatten(1).sum(1) > 0
    assert (m1[~worn, 1].flatten(1).sum(1) > 0).all()  # every hatless portrait now wears one
    assert not torch.equal(x0, x1)


def test_training_refuses_a_bad_share(tmp_path):
    from charforge.data.build import build_from_creator

    build_from_creator(tmp_path / "ds", creator="builtin", n=10, size=32, seed=0, show_progress=False)
    with pytest.raises(UserError, match="--synth-hats 1.5"):
        partseg.train_partseg(
            tmp_path / "ds", tmp_path / "r", partseg.PartSegOptions(steps=1, synth_hats=1.5)
        )
    with pytest.raises(UserError, match="must include hair and hat"):
        partseg.train_partseg(
            tmp_path / "ds",
            tmp_path / "r",
            partseg.PartSegOptions(steps=1, synth_hats=0.5),
            parts=("hair", "skin"),
        )
