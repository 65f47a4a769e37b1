"""ParamSpace: JSON round-trip, encode/decode, seeded sampling and validation errors."""

import json

import numpy as np
import pytest

from charforge.core.space import Categorical, Continuous, ParamBatch, ParamSpace
from charforge.errors import UserError


@pytest.fixture
def space():
    return ParamSpace(
        [Categorical("hair", ("red", "blue", "green"), "blue"), Categorical("hat", ("none", "cap"), "none")],
        [Continuous("eye_size", 0.5, 1.5, 1.0), Continuous("tilt", -10.0, 10.0, 0.0)],
        name="toy",
    )


def test_json_round_trip_keeps_everything(space):
    again = ParamSpace.from_json(space.to_json())
    assert again.to_dict() == space.to_dict()
    assert again.names == ["hair", "hat", "eye_size", "tilt"]
    assert again.vector_dim == 3 + 2 + 2


def test_from_json_rejects_bad_text_with_user_error():
    with pytest.raises(UserError, match="not valid JSON"):
        ParamSpace.from_json("{not json", source="space.json")
    with pytest.raises(UserError, match="space.json: not a valid parameter space"):
        ParamSpace.from_json(
            json.dumps({"continuous": [{"name": "a", "lo": 1, "hi": 0}]}), source="space.json"
        )


def test_encode_decode_round_trip(space):
    batch = space.sample(50, np.random.default_rng(3))
    vec = space.encode(batch)
    assert vec.shape == (50, space.vector_dim) and vec.dtype == np.float32
    assert np.all(vec[:, :3].sum(1) == 1) and np.all(vec[:, 3:5].sum(1) == 1)
    assert vec[:, -2:].min() >= 0 and vec[:, -2:].max() <= 1
    back = space.decode(vec)
    np.testing.assert_array_equal(back.cat, batch.cat)
    np.testing.assert_allclose(back.cont, batch.cont, atol=1e-5)


def test_encode_known_values(space):
    batch = space.from_dicts([{"hair": "green", "hat": "cap", "eye_size": 1.5, "tilt": -5.0}])
    np.testing.assert_allclose(space.encode(batch)[0], [0, 0, 1, 0, 1, 1.0, 0.25])


def test_decode_clips_and_takes_argmax_of_logits(space):
    vec = np.array([[0.1, 2.0, -1.0, 5.0, 4.0, 1.7, -0.3]], dtype=np.float32)
    d = space.to_dicts(space.decode(vec))[0]
    assert d == {"hair": "blue", "hat": "none", "eye_size": 1.5, "tilt": -10.0}


def test_sampling_is_seeded_and_in_range(space):
    a, b = space.sample(200, np.random.default_rng(7)), space.sample(200, np.random.default_rng(7))
    np.testing.assert_array_equal(a.cat, b.cat)
    np.testing.assert_array_equal(a.cont, b.cont)
    c = space.sample(200, np.random.default_rng(8))
    assert not np.array_equal(a.cont, c.cont)
    assert a.cont[:, 0].min() >= 0.5 and a.cont[:, 0].max() <= 1.5
    assert set(np.unique(a.cat[:, 0])) == {0, 1, 2}


def test_defaults_and_partial_validation(space):
    assert space.validate({"tilt": 3}) == {"hair": "blue", "hat": "none", "eye_size": 1.0, "tilt": 3.0}
    assert (
        space.to_dicts(space.defaults(2))
        == [{"hair": "blue", "hat": "none", "eye_size": 1.0, "tilt": 0.0}] * 2
    )
    with pytest.raises(UserError, match="missing parameter 'hat'"):
        space.validate({"hair": "red", "eye_size": 1.0, "tilt": 0.0}, partial=False)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"hiar": "red"}, "hiar", "unknown parameter 'hiar'"),
        ({"eye_size": 2.0}, "eye_size", r"out of range \[0.5, 1.5\]"),
        ({"hair": "purple"}, "hair", "unknown option 'purple'. Valid options: red, blue, green"),
        ({"tilt": "left"}, "tilt", "must be a finite number"),
        ({"tilt": float("nan")}, "tilt", "must be a finite number"),
        ({"tilt": True}, "tilt", "must be a finite number"),
    ],
)
def test_validation_errors_name_the_parameter(space, params, field, message):
    with pytest.raises(UserError, match=message) as info:
        space.validate(params, source="p.json")
    assert info.value.field == field
    assert str(info.value).startswith("p.json")


def test_validation_rejects_non_object(space):
    with pytest.raises(UserError, match="expected a JSON object"):
        space.validate([1, 2])


def test_dicts_round_trip(space):
    batch = space.sample(10, np.random.default_rng(0))
    again = space.from_dicts(space.to_dicts(batch))
    np.testing.assert_array_equal(again.cat, batch.cat)
    np.testing.assert_allclose(again.cont, batch.cont, atol=1e-5)


def test_batches_slice_concat_and_empty(space):
    batch = space.sample(5, np.random.default_rng(0))
    assert len(batch[2]) == 1 and len(batch[1:4]) == 3
    both = ParamBatch.concat([batch[:2], batch[2:]])
    np.testing.assert_array_equal(both.cat, batch.cat)
    empty = space.sample(0, np.random.default_rng(0))
    assert empty.cat.shape == (0, 2) and empty.cont.shape == (0, 2)
    assert space.encode(empty).shape == (0, space.vector_dim)
    assert batch[5:].cat.shape == (0, 2)


def test_bad_space_definitions_raise():
    with pytest.raises(ValueError, match="repeated"):
        ParamSpace([Categorical("a", ("x",), "x")], [Continuous("a", 0, 1, 0.5)])
    with pytest.raises(ValueError, match="default"):
        Continuous("b", 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="not one of its options"):
        Categorical("c", ("x", "y"), "z")
