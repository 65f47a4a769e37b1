"""Embedder registry: identity (dlib), learned (charforge CNN), generic (EfficientNet-Lite0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from charforge.errors import UserError
from charforge.f2p.embedders import available_embedders, get_embedder
from charforge.f2p.learned import AugmentConfig, Encoder, EncoderConfig, augment

skdata = pytest.importorskip("skimage.data")


def _unit_rows(x):
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_registry_lists_and_refuses_unknown_names():
    assert available_embedders() == ["generic", "identity", "learned"]
    with pytest.raises(UserError, match="unknown embedder 'arcface'.*generic, identity, learned"):
        get_embedder("arcface")
    with pytest.raises(UserError, match="needs trained weights"):
        get_embedder("learned")


def test_learned_embedder_shapes_and_crops():
    torch.manual_seed(0)
    emb = get_embedder(
        "learned", encoder=Encoder(EncoderConfig(in_size=16, width=4, stages=2, dim=8, out_dim=5))
    )
    rng = np.random.default_rng(0)
    square = rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    out = emb.embed(square)
    assert out.shape == (3, 8) and out.dtype == np.float32
    _unit_rows(out)
    wide = np.zeros((1, 16, 40, 3), np.uint8)
    wide[:, :, 12:28] = square[0]  # the centre square of a wide image is what gets embedded
    np.testing.assert_allclose(emb.embed(wide), out[:1], atol=1e-5)


def test_augment_keeps_range_and_changes_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    y = augment(x, AugmentConfig(gray_p=1.0), g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    torch.testing.assert_close(y[:, 0], y[:, 1])  # grayscale with p = 1
    assert (y - x).abs().mean() > 0.01


def test_generic_embedder_separates_different_photos():
    emb = get_embedder("generic", size=96)
    images = np.stack(
        [
            np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(im).resize((96, 96)))
            for im in (skdata.chelsea(), skdata.coffee(), skdata.chelsea()[:, ::-1].copy())
        ]
    )
    out = emb.embed(images)
    assert out.shape == (3, 1280)
    _unit_rows(out)
    assert out[0] @ out[2] > out[0] @ out[1]  # the mirrored cat is closer to the cat than the coffee is


def test_identity_embedder_on_a_photo_and_without_a_face():
    photo = skdata.astronaut()
    notes: list[str] = []
    emb = get_embedder("identity")
    a = emb.embed(photo, notes)
    assert a.shape == (1, 128)
    _unit_rows(a)
    assert notes and "faces found, used the largest" in notes[0]
    shifted = np.roll(photo, 7, axis=1)
    assert float((emb.embed(shifted) @ a[0])[0]) > 0.95  # the same face, moved: same identity
    blank = np.full((120, 120, 3), 128, np.uint8)
    with pytest.raises(UserError, match="no face found.*--no-detect"):
        emb.embed(blank)
    _unit_rows(get_embedder("identity", detect=False).embed(blank))  # --no-detect uses the whole image
