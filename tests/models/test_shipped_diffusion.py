"""The shipped diffusion model: a small safetensors file with its card, loaded by name, reproducible per seed,
and drawing the tags it is asked for (judged by the shipped tagger)."""

from __future__ import annotations

import numpy as np
import pytest

from charforge import sampling
from charforge.models.generator import shipped_generators
from charforge.models.io import read_metadata

pytestmark = pytest.mark.skipif(
    "diffusion" not in shipped_generators(), reason="diffusion_default is not installed"
)


def test_file_card_and_config():
    path = shipped_generators()["diffusion"]
    assert path.stat().st_size < 8_000_000
    meta = read_metadata(path)
    assert meta["charforge_config"]["family"] == "diffusion"
    card = path.with_suffix(".md").read_text()
    # the card names the file's model id and the project's own commands that made it (both training runs)
    assert meta["model_id"] in card and "diffusion_ship@4000" in card
    assert "charforge train --data data/builtin64 --preset diffusion-32-cpu" in card and "--init-from" in card


def test_seeds_reproduce_and_tags_are_drawn():
    from charforge.tagger.net import load_tagger

    b = sampling.load_generator("diffusion", device="cpu").with_options(steps=8)
    a, _, tags = sampling.characters_for_request(b, "blonde hair, -hat", 8, 40)
    again, _, _ = sampling.characters_for_request(b, "blonde hair, -hat", 8, 40)
    assert np.array_equal(a, again) and a.shape == (8, 32, 32, 3)
    tagger = load_tagger(sampling.WEIGHTS_DIR / "tagger_default.safetensors")
    hair = b.schema.groups[0]
    j = list(hair.tags).index("blonde hair")
    judged = tagger.predict_proba(a)[:, : len(hair.tags)].argmax(1)
    assert (judged == j).mean() >= 0.75
    assert tagger.predict_tags(a)[:, b.schema.index("hat")].mean() <= 0.25
