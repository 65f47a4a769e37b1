"""The shipped 128 px generator (issue 14 point 3): `--model 128px` draws 128 px portraits that the judge reads
with the tags asked for, on fixed seeds, and its card records how it was trained."""

from pathlib import Path

import numpy as np
import pytest

from charforge.models.generator import shipped_generators
from charforge.sampling import characters_for_request, load_generator
from charforge.tagger.net import judge_for, load_tagger

pytestmark = pytest.mark.skipif(
    "128px" not in shipped_generators(), reason="generator_128px is not installed"
)


def test_128px_model_draws_128px_portraits_with_the_tags_asked_for():
    bundle = load_generator("128px")
    assert bundle.image_size == 128 and bundle.config["resolution"] == 128
    tagger = load_tagger(judge_for(bundle.schema.tags))
    for tags in ("blonde hair, blue eyes", "black hair, glasses", "red hair, hat"):
        images, _, _ = characters_for_request(bundle, tags, 16, 7)
        assert images.shape == (16, 128, 128, 3) and images.dtype == np.uint8
        judged = tagger.predict_tags(images)
        for t in tags.split(", "):
            assert judged[:, bundle.schema.index(t)].mean() >= 0.75, (tags, t)
    again, _, _ = characters_for_request(bundle, "blonde hair, blue eyes", 16, 7)
    first, _, _ = characters_for_request(bundle, "blonde hair, blue eyes", 16, 7)
    assert np.array_equal(again, first)


def test_128px_card_records_command_data_steps_and_time():
    card = (Path(shipped_generators()["128px"]).with_suffix(".md")).read_text().lower()
    for needed in (
        "charforge train",
        "acgan-128-cpu",
        "data build",
        "steps",
        "wall",
        "sharpness",
        "fid_domain",
    ):
        assert needed in card, needed
