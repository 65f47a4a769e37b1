"""TagSchema: the 34-tag schema, parsing, contradictions, dict constraints, vectors and sampling."""

import numpy as np
import pytest

from charforge.core.tags import (
    TagConstraints,
    TagSchema,
    make_girls_moe_schema,
    normalise_tag,
    tags_from_names,
)
from charforge.errors import UserError


@pytest.fixture
def schema():
    return make_girls_moe_schema()


def test_schema_layout(schema):
    assert len(schema) == 34
    assert [g.name for g in schema.groups] == ["hair color", "eye color"]
    assert [len(g.tags) for g in schema.groups] == [13, 10]
    assert schema.independent_slice == slice(23, 34)
    assert schema.group_of("aqua eyes") == "eye color" and schema.group_of("hat") is None
    assert TagSchema.from_json(schema.to_json()).to_dict() == schema.to_dict()


def test_normalise_tag():
    assert normalise_tag("  Blonde_Hair ") == "blonde hair"
    assert normalise_tag("open   MOUTH") == "open mouth"


def test_parse_on_off_and_groups(schema):
    c = schema.parse("Blonde_hair, blue eyes, -hat, no glasses, smile")
    assert c.groups == {"hair color": "blonde hair", "eye color": "blue eyes"}
    assert c.independent["hat"] is False and c.independent["glasses"] is False
    assert c.independent["smile"] is True and c.independent["ribbon"] is None
    assert schema.parse(["red hair", "", "No_Ribbon"]).independent["ribbon"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blonde hair, red hair", "contradicting tags 'blonde hair' and 'red hair'"),
        ("long hair, short hair", "contradicting tags 'long hair' and 'short hair'"),
        ("hat, -hat", "tag 'hat' is both on and off"),
        ("-blue eyes", "exclusive group 'eye color'"),
        ("cat ears", "unknown tag 'cat ears'"),
    ],
)
def test_parse_errors(schema, text, message):
    with pytest.raises(UserError, match=message):
        schema.parse(text, source="--tags")


def test_constraints_from_dict(schema):
    c = schema.constraints_from_dict(
        {"hair color": "Pink_Hair", "eye color": "any", "smile": True, "hat": "any", "glasses": False}
    )
    assert c.groups["hair color"] == "pink hair" and c.groups["eye color"] is None
    assert (
        c.independent["smile"] is True and c.independent["hat"] is None and c.independent["glasses"] is False
    )
    for bad, message in [
        ({"hair color": "plaid hair"}, "unknown value 'plaid hair'"),
        ({"wings": True}, "unknown tag or group 'wings'"),
        ({"smile": "yes"}, "expected true, false"),
        ({"long hair": True, "short hair": True}, "contradicting"),
    ]:
        with pytest.raises(UserError, match=message):
            schema.constraints_from_dict(bad)


def test_vectors_round_trip(schema):
    names = ["silver hair", "aqua eyes", "twintails", "glasses"]
    v = schema.to_vector(names)
    assert v.sum() == 4 and v[schema.index("glasses")] == 1
    assert sorted(schema.from_vector(v)) == sorted(names)
    with pytest.raises(UserError, match="unknown tag 'wings'"):
        schema.to_vector(["wings"])
    m = tags_from_names(schema, [names, ["red hair"]])
    assert m.shape == (2, 34)
    schema.validate_matrix(m)
    m[1, schema.index("blue hair")] = 1
    with pytest.raises(UserError, match="row 1 has more than one tag of the exclusive group 'hair color'"):
        schema.validate_matrix(m)


def test_sample_training_frequencies_and_seed(schema):
    a = schema.sample_training(4000, np.random.default_rng(0))
    np.testing.assert_array_equal(a, schema.sample_training(4000, np.random.default_rng(0)))
    for sl in schema.group_slices():
        assert np.all(a[:, sl].sum(1) == 1)
        assert np.all(np.abs(a[:, sl].mean(0) - 1 / (sl.stop - sl.start)) < 0.03)
    f = schema.frequencies(a)
    assert 0.2 < f[schema.index("hat")] < 0.3
    assert not np.any(a[:, schema.index("long hair")] * a[:, schema.index("short hair")])


def test_sample_conditional_honours_constraints(schema):
    freqs = schema.frequencies(schema.sample_training(2000, np.random.default_rng(1)))
    c = schema.parse("green hair, long hair, -hat")
    out = schema.sample_conditional(500, np.random.default_rng(2), freqs, c)
    assert np.all(out[:, schema.index("green hair")] == 1)
    assert np.all(out[:, schema.index("long hair")] == 1) and np.all(out[:, schema.index("short hair")] == 0)
    assert np.all(out[:, schema.index("hat")] == 0)
    assert 0.15 < out[:, schema.index("smile")].mean() < 0.35
    free = schema.sample_conditional(500, np.random.default_rng(2), freqs, TagConstraints())
    assert len(np.unique(free[:, :13].argmax(1))) == 13


def _style_matrix(schema, n=400, seed=0):
    """Rows with exactly one of twintails / drill hair / ponytail, smile independent of all."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, len(schema)), np.uint8)
    m[np.arange(n), schema.index("twintails") + rng.integers(0, 3, n)] = (
        1  # twintails, drill hair, ponytail adjacent
    )
    m[:, schema.index("smile")] = rng.random(n) < 0.5
    return m


def test_learn_conflicts_finds_pairs_never_seen_together(schema):
    assert [schema.tags[schema.index("twintails") + k] for k in range(3)] == [
        "twintails",
        "drill hair",
        "ponytail",
    ]
    m = _style_matrix(schema)
    pairs = schema.learn_conflicts(m)
    assert sorted(map(sorted, pairs)) == [
        ["drill hair", "ponytail"],
        ["drill hair", "twintails"],
        ["ponytail", "twintails"],
    ]
    # smile meets every style, and hat never occurs (expected together 0 < 20): neither is a conflict
    assert all("smile" not in p and "hat" not in p for p in pairs)
    assert schema.learn_conflicts(m[:40]) == []  # 40 rows: ~5 expected together, too few to call it a rule
    assert schema.learn_conflicts(m, min_expected=1e9) == []
    both = m.copy()
    both[np.flatnonzero(both[:, schema.index("twintails")])[0], schema.index("ponytail")] = (
        1  # one twintails+ponytail
    )
    assert len(schema.learn_conflicts(both)) == 2
    m[:, schema.index("long hair")] = 1 - (np.arange(len(m)) % 2)
    m[:, schema.index("short hair")] = np.arange(len(m)) % 2
    assert ("long hair", "short hair") not in schema.learn_conflicts(m)  # already a declared conflict


def test_learned_conflicts_shape_sampling(schema):
    s2 = schema.with_conflicts(schema.learn_conflicts(_style_matrix(schema)))
    assert len(s2.conflicts) == 4 and len(schema.conflicts) == 1  # the original schema is untouched
    assert s2.with_conflicts([("ponytail", "twintails")]).conflicts == s2.conflicts  # no duplicates
    ix = [schema.index(t) for t in ("twintails", "drill hair", "ponytail")]
    train = s2.sample_training(3000, np.random.default_rng(0))
    assert train[:, ix].sum(axis=1).max() == 1
    cond = s2.sample_conditional(2000, np.random.default_rng(1), np.full(len(s2), 0.5), s2.parse("twintails"))
    assert cond[:, ix[0]].all() and not cond[:, ix[1:]].any()  # the asked tag stays, its rivals go
    with pytest.raises(
        UserError, match="contradicting tags 'twintails' and 'ponytail'.*never shows them together"
    ):
        s2.parse("twintails, ponytail")
    free = np.ones((5, len(s2)), np.float32)
    fixed = np.zeros(len(s2), bool)
    fixed[ix[2]] = True
    s2.resolve_conflicts(free, np.random.default_rng(0), fixed)
    assert free[:, ix[2]].all() and not free[:, ix[:2]].any()
