"""The shipped 128 px generator (issue 14 point 3): `--model 128px` draws 128 px portraits that the judge reads
with the tags asked for, on fixed seeds, and its card records how it was trained."""

from pathlib import Path

import pytest
from shipped_checks import draws_the_tags

from charforge.models.generator import shipped_generators
from charforge.sampling import load_generator

pytestmark = pytest.mark.skipif(
    "128px" not in shipped_generators(), reason="generator_128px is not installed"
)


def test_128px_model_draws_128px_portraits_with_the_tags_asked_for():
    bundle = load_generator("128px")
    assert bundle.image_size == 128 and bundle.config["resolution"] == 128
    draws_the_tags(bundle, ("blonde hair, blue eyes", "black hair, glasses", "red hair, hat"), 16, 7)


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
