"""Built-in renderer: shapes, dtype, bit-exact determinism at 32..512 px, batch independence, variety."""

import numpy as np
import pytest

from charforge.creators import get_creator
from charforge.creators.builtin import BuiltinCreator
from charforge.errors import UserError


@pytest.fixture(scope="module")
def creator():
    return BuiltinCreator()


@pytest.fixture(scope="module")
def batch(creator):
    return creator.sample(6, np.random.default_rng(11))


def test_registry_gives_the_builtin_creator():
    assert isinstance(get_creator("builtin"), BuiltinCreator)


@pytest.mark.parametrize("size", [32, 64, 512])
def test_same_parameters_same_pixels(creator, batch, size):
    few = batch[:2] if size < 512 else batch[:1]
    a, b = creator.render(few, size), creator.render(few, size)
    assert a.shape == (len(few), size, size, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.std() > 20  # a picture, not a flat fill


def test_image_does_not_depend_on_the_rest_of_the_batch(creator, batch):
    together = creator.render(batch, 64)
    for i in (0, 3, 5):
        np.testing.assert_array_equal(creator.render(batch[i], 64)[0], together[i])
    np.testing.assert_array_equal(creator.render(batch[[5, 0, 3]], 64), together[[5, 0, 3]])


def test_sizes_agree_in_content(creator, batch):
    """Downscaling the 128 px render gives nearly the 64 px render (same drawing, any resolution)."""
    big = creator.render(batch[:2], 128).astype(np.float32)
    small = creator.render(batch[:2], 64).astype(np.float32)
    pooled = big.reshape(2, 64, 2, 64, 2, 3).mean((2, 4))
    assert np.abs(pooled - small).mean() < 6


def test_characters_are_distinct(creator):
    images = (
        creator.render(creator.sample(16, np.random.default_rng(0)), 32).reshape(16, -1).astype(np.float32)
    )
    dist = np.abs(images[:, None] - images[None]).mean(-1)
    assert dist[~np.eye(16, dtype=bool)].min() > 8


def test_chunked_rendering_matches(creator, batch, monkeypatch):
    from charforge.creators.builtin import render

    whole = creator.render(batch, 32)
    monkeypatch.setattr(render, "MAX_PIXELS_PER_CHUNK", 2 * 32 * 32)
    np.testing.assert_array_equal(creator.render(batch, 32), whole)


def test_empty_batch_and_bad_sizes(creator, batch):
    assert creator.render(batch[:0], 32).shape == (0, 32, 32, 3)
    with pytest.raises(UserError, match="image size"):
        creator.render(batch, 4)
    with pytest.raises(ValueError, match="columns"):
        creator.render(creator.space.defaults(1).__class__(np.zeros((1, 2)), np.zeros((1, 2))), 32)
