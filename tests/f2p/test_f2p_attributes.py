"""The attribute path on a real photo available offline (scikit-image's astronaut)."""

from __future__ import annotations

import numpy as np
import pytest

from charforge.errors import UserError
from charforge.f2p.attributes import (
    attributes_to_params,
    average_attributes,
    colour_distance,
    estimate_attributes,
)

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut_attrs():
    return estimate_attributes(skdata.astronaut())


def test_astronaut_attributes_are_plausible(astronaut_attrs):
    a = astronaut_attrs
    assert a.n_faces >= 1
    assert a.smile and a.mouth_open and not a.glasses  # she smiles with teeth showing, no glasses
    assert a.hair_length_score < 0.5  # short hair
    assert 0.8 < a.face_ratio < 1.2 and 0.35 < a.eye_spacing < 0.6
    assert np.mean(a.skin_rgb) > np.mean(a.eye_rgb)  # irises darker than cheeks
    assert a.skin_rgb[0] > a.skin_rgb[2]  # skin is warm (red above blue)


def test_drawn_glasses_are_detected():
    img = skdata.astronaut().copy()
    img[100:104, 190:262] = 20  # a dark bar across the nose bridge at eye level
    assert estimate_attributes(img).glasses


def test_mapping_to_the_builtin_space_is_valid(astronaut_attrs):
    builtin = pytest.importorskip("charforge.creators.builtin")
    space = builtin.BuiltinCreator().space
    params = attributes_to_params(astronaut_attrs, space)
    assert space.validate(params, partial=False) == params
    assert (
        params["mouth"] == "open_smile" and params["glasses"] == "none" and params["hair_length"] == "short"
    )
    assert params["hair_color"] in ("blonde", "brown") and params["skin_tone"] in (
        "porcelain",
        "light",
        "warm",
    )


def test_mapping_to_a_space_without_matching_names_keeps_defaults(astronaut_attrs):
    from tests.f2p.f2p_toy import toy_space

    space = toy_space()
    assert attributes_to_params(astronaut_attrs, space) == space.to_dicts(space.defaults())[0]


def test_no_face_and_averaging(astronaut_attrs):
    with pytest.raises(UserError, match="no face found"):
        estimate_attributes(np.full((100, 100, 3), 200, np.uint8))
    avg = average_attributes([astronaut_attrs, astronaut_attrs])
    assert avg.hair_rgb == astronaut_attrs.hair_rgb and avg.smile == astronaut_attrs.smile
    assert colour_distance((200, 40, 40), (160, 50, 35)) < colour_distance((200, 40, 40), (60, 90, 170))
