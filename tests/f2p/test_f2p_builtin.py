"""Integration with the real built-in creator through the shipped model (charforge/weights/f2p_builtin.*)."""

from __future__ import annotations

import numpy as np
import pytest

from charforge.f2p import fit, load_f2p
from charforge.f2p.model import default_f2p_path

pytest.importorskip("charforge.creators.builtin")
pytestmark = pytest.mark.skipif(not default_f2p_path().is_file(), reason="shipped f2p model not trained yet")


@pytest.fixture(scope="module")
def shipped():
    return load_f2p()  # None = the shipped default


def test_shipped_model_fits_a_builtin_render(shipped):
    creator = shipped.creator
    assert shipped.creator_spec == "builtin" and shipped.embedder.name == "learned"
    batch = creator.sample(3, np.random.default_rng(4321))
    images = creator.render(batch, shipped.render_size)
    for im in images:
        r = fit(shipped, [im], "fast")
        creator.space.validate(r.params, partial=False)
        assert r.similarity > 0.8 and r.preview.shape == (256, 256, 3)
    r = fit(shipped, [images[0]], "search", iters=20)
    assert r.similarity > 0.8 and r.timings["search"] < 10


def test_attribute_mode_maps_a_photo_onto_the_builtin_creator(shipped):
    skdata = pytest.importorskip("skimage.data")
    r = fit(shipped, [skdata.astronaut()], "attributes")
    assert r.params["mouth"] == "open_smile" and r.params["glasses"] == "none"
    assert r.preview.shape == (256, 256, 3)
    assert any("faces found, used the largest" in n for n in r.notes)


def test_shipped_model_self_reconstruction_quality(shipped):
    from charforge.f2p.evaluate import evaluate_f2p

    res = evaluate_f2p(shipped, n=60, seed=99, n_search=20)
    assert res["modes"]["fast"]["mean_cosine"] > res["random_pair_cosine"] + 0.2
    assert res["modes"]["search"]["mean_cosine"] >= res["modes"]["fast"]["mean_cosine"] - 0.02
