"""Built-in creator: tags derived from parameters, the dataset distribution, tag-conditioned sampling,
and that every tag is visible in the rendered image where it should be."""

import numpy as np
import pytest

from charforge.core.tags import EYE_COLORS, HAIR_COLORS, TagConstraints
from charforge.creators.builtin import BuiltinCreator
from charforge.creators.builtin.palette import EYE_RGB, HAIR_RGB
from charforge.creators.builtin.sdf import HEAD_ZOOM, NECK_Y
from charforge.errors import UserError

SIZE = 64


@pytest.fixture(scope="module")
def creator():
    return BuiltinCreator()


def test_space_is_rich_enough(creator):
    assert creator.space.n_cont >= 20
    assert creator.space.n_cat >= 15
    assert len(creator.schema) == 34


def test_derive_tags_from_known_parameters(creator):
    rows = [
        {
            "hair_color": "aqua",
            "eye_color": "orange",
            "hair_length": "long",
            "hair_extra": "drill",
            "mouth": "open_smile",
            "glasses": "square",
        },
        {
            "hair_color": "gray",
            "eye_color": "black",
            "hair_length": "short",
            "hat": "cap",
            "ribbon": "on",
            "blush": "on",
        },
        {"hair_length": "medium", "hair_extra": "ponytail", "mouth": "smile"},
    ]
    tags = creator.derive_tags(creator.space.from_dicts(rows))
    assert tags.shape == (3, 34) and tags.dtype == np.float32
    names = [set(creator.schema.from_vector(t)) for t in tags]
    assert names[0] == {
        "aqua hair",
        "orange eyes",
        "long hair",
        "drill hair",
        "smile",
        "open mouth",
        "glasses",
    }
    assert names[1] == {"gray hair", "black eyes", "short hair", "hat", "ribbon", "blush"}
    assert names[2] == {"brown hair", "blue eyes", "ponytail", "smile"}


def test_sample_distribution(creator):
    batch = creator.sample(6000, np.random.default_rng(0))
    tags = creator.derive_tags(batch)
    freq = tags.mean(0)
    assert np.all(np.abs(freq[:13] - 1 / 13) < 0.02) and np.all(np.abs(freq[13:23] - 1 / 10) < 0.02)
    for tag in (
        "long hair",
        "short hair",
        "twintails",
        "drill hair",
        "ponytail",
        "blush",
        "smile",
        "open mouth",
        "hat",
        "ribbon",
        "glasses",
    ):
        assert 0.22 < freq[creator.schema.index(tag)] < 0.36, tag
    assert not np.any(
        tags[:, creator.schema.index("long hair")] * tags[:, creator.schema.index("short hair")]
    )
    again = creator.sample(6000, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.cat, again.cat)
    u = creator.space.normalise(batch.cont)
    assert u.min() >= 0 and u.max() <= 1 and np.all(np.abs(u.mean(0) - 0.5) < 0.03)


@pytest.mark.parametrize(
    "text",
    [
        "blonde hair, red eyes, long hair, twintails, smile, -open mouth, hat, glasses",
        "short hair, -smile, open mouth, -hat, ribbon, blush",
        "silver hair, drill hair, -long hair, -short hair",
        "-twintails, -ponytail, -drill hair, -glasses, -ribbon",
        "ponytail, smile, open mouth",
    ],
)
def test_sample_for_tags_shows_the_constraints(creator, text):
    c = creator.schema.parse(text)
    batch = creator.sample_for_tags(c, 300, np.random.default_rng(1))
    tags = creator.derive_tags(batch)
    for chosen in c.groups.values():
        if chosen is not None:
            assert np.all(tags[:, creator.schema.index(chosen)] == 1)
    for tag, on in c.independent.items():
        col = tags[:, creator.schema.index(tag)]
        if on is None:
            continue
        assert np.all(col == float(on)), tag
    free = [t for t, v in c.independent.items() if v is None and t in ("hat", "blush", "glasses")]
    for tag in free:  # unconstrained tags keep their dataset frequency
        assert 0.15 < tags[:, creator.schema.index(tag)].mean() < 0.45


def test_sample_for_tags_rejects_undrawable_combinations(creator):
    with pytest.raises(UserError, match="hair_extra"):
        creator.sample_for_tags(
            TagConstraints(independent={"twintails": True, "ponytail": True}), 4, np.random.default_rng(0)
        )


def _pixels(box, head=True):
    """Pixel rows/cols of a box (u0, u1, v0, v1) in head units (default head placement) or image units."""
    u0, u1, v0, v1 = box
    if head:
        u0, u1 = u0 * HEAD_ZOOM, u1 * HEAD_ZOOM
        v0, v1 = NECK_Y + (v0 - NECK_Y) * HEAD_ZOOM, NECK_Y + (v1 - NECK_Y) * HEAD_ZOOM
    px = lambda t: int(np.clip(round((t + 1) / 2 * SIZE), 0, SIZE))  # noqa: E731
    return slice(px(v0), px(v1)), slice(px(u0), px(u1))


REGIONS = {  # tag: (parameter change from the tag-free default, boxes where the change must show)
    "hat/beret": ({"hat": "beret"}, [(-0.6, 0.6, -0.95, -0.45)]),
    "hat/witch": ({"hat": "witch"}, [(-0.6, 0.6, -0.95, -0.45)]),
    "hat/cap": ({"hat": "cap"}, [(-0.6, 0.6, -0.95, -0.45)]),
    "ribbon": ({"ribbon": "on"}, [(0.1, 0.6, -0.75, -0.25)]),
    "glasses/round": ({"glasses": "round"}, [(-0.4, 0.4, -0.15, 0.2)]),
    "glasses/square": ({"glasses": "square"}, [(-0.4, 0.4, -0.15, 0.2)]),
    "smile": ({"mouth": "smile"}, [(-0.12, 0.12, 0.15, 0.35)]),
    "open mouth": ({"mouth": "open"}, [(-0.12, 0.12, 0.15, 0.35)]),
    "blush": ({"blush": "on"}, [(-0.35, -0.1, 0.1, 0.3), (0.1, 0.35, 0.1, 0.3)]),
    "twintails": ({"hair_extra": "twintails"}, [(-0.95, -0.4, -0.5, 0.9), (0.4, 0.95, -0.5, 0.9)]),
    "drill hair": ({"hair_extra": "drill"}, [(-0.6, -0.3, -0.2, 0.9), (0.3, 0.6, -0.2, 0.9)]),
    "ponytail": ({"hair_extra": "ponytail"}, [(0.25, 1.0, -0.8, 0.8)]),
    "short hair": ({"hair_length": "short"}, [(-0.75, -0.3, 0.3, 0.75), (0.3, 0.75, 0.3, 0.75)]),
    "long hair": ({"hair_length": "long"}, [(-1.0, -0.3, 0.72, 1.0), (0.3, 1.0, 0.72, 1.0)]),
}


@pytest.mark.parametrize("name", sorted(REGIONS))
def test_every_tag_changes_its_region(creator, name):
    change, boxes = REGIONS[name]
    batch = creator.space.from_dicts([{}, change])
    tags = creator.derive_tags(batch)
    assert tags[1].sum() == tags[0].sum() + 1  # exactly one more tag on
    base, with_tag = creator.render(batch, SIZE).astype(np.float32)
    diff = np.abs(with_tag - base).sum(-1)  # (S, S), 0..765
    inside = np.zeros_like(diff, dtype=bool)
    for box in boxes:
        rows, cols = _pixels(box, head=name != "long hair")
        inside[rows, cols] = True
    assert diff[inside].mean() > 40, f"{name}: too little change in its region"
    assert diff[inside].mean() > 4 * diff[~inside].mean(), f"{name}: change is not where the tag is"


def _nearest(color, table, names):
    ref = np.array([table[n] for n in names], dtype=np.float32)
    return names[int(np.linalg.norm(ref - color, axis=1).argmin())]


def test_hair_and_eye_colours_are_identifiable(creator):
    """At 64 px the mean colour of the hair / iris pixels is nearest to the tag's own palette colour."""
    rows = [{"hair_color": h, "eye_color": EYE_COLORS[i % 10]} for i, h in enumerate(HAIR_COLORS)]
    images = creator.render(creator.space.from_dicts(rows), SIZE).astype(np.float32)
    hair_r, hair_c = _pixels((-0.25, 0.25, -0.5, -0.36))
    for row, im in zip(rows, images):
        assert _nearest(im[hair_r, hair_c].reshape(-1, 3).mean(0), HAIR_RGB, HAIR_COLORS) == row["hair_color"]
    eyes = creator.render(creator.space.from_dicts([{"eye_color": e} for e in EYE_COLORS]), SIZE).astype(
        np.float32
    )
    iris = np.abs(eyes - np.roll(eyes, 1, axis=0)).sum(-1).min(0) > 60  # pixels every eye colour changes
    assert 20 < iris.sum() < 200
    rows_, cols_ = np.nonzero(iris)
    assert rows_.min() >= _pixels((0, 0, -0.15, 0))[0].start and rows_.max() < _pixels((0, 0, 0, 0.2))[0].stop
    for name, im in zip(EYE_COLORS, eyes):
        assert _nearest(im[iris].mean(0), EYE_RGB, EYE_COLORS) == name
