import json

import numpy as np
import pytest

from charforge.core.space import Categorical, Continuous, ParamSpace
from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import PackedWriter, load_packed, write_packed
from charforge.errors import UserError


def _arrays(n=10, size=8, seed=0):
    rng = np.random.default_rng(seed)
    schema = make_girls_moe_schema()
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    tags = schema.sample_training(n, rng).astype(np.uint8)
    return schema, images, tags


def test_write_and_load_round_trip(tmp_path):
    schema, images, tags = _arrays()
    space = ParamSpace([Categorical("c", ("a", "b"), "a")], [Continuous("x", 0, 2, 1)])
    params = space.encode(space.sample(10, np.random.default_rng(1)))
    ds = write_packed(tmp_path / "d", images, tags, schema, params=params, space=space)
    ds2 = load_packed(tmp_path / "d", verify=True)
    assert len(ds2) == 10 and ds2.size == 8
    np.testing.assert_array_equal(ds2.images, images)
    np.testing.assert_array_equal(ds2.tags, tags)
    np.testing.assert_allclose(ds2.params, params)
    assert ds2.schema.tags == schema.tags
    assert ds2.space.names == ["c", "x"]
    assert ds2.licence_counts() == {"unknown": 10}
    assert isinstance(ds.images, np.memmap) or ds.images.base is not None


def test_checksum_detects_corruption(tmp_path):
    schema, images, tags = _arrays()
    write_packed(tmp_path / "d", images, tags, schema)
    arr = np.load(tmp_path / "d" / "images.npy", mmap_mode="r+")
    arr[0, 0, 0, 0] ^= 1
    arr.flush()
    del arr
    load_packed(tmp_path / "d")  # shapes still fine
    with pytest.raises(UserError, match="checksum mismatch"):
        load_packed(tmp_path / "d", verify=True)


def test_missing_manifest_and_bad_shapes_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no such dataset folder"):
        load_packed(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no manifest.json"):
        load_packed(tmp_path / "empty")
    schema, images, tags = _arrays()
    write_packed(tmp_path / "d", images, tags, schema)
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    m["count"] = 11
    m["items"].append({"source": "extra", "license": "unknown"})
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="does not match the manifest"):
        load_packed(tmp_path / "d")


def test_writer_resumes_finished_chunks_and_refuses_other_settings(tmp_path):
    schema, images, tags = _arrays(n=6)
    cfg = {"job": 1}
    w = PackedWriter(tmp_path / "d", n=6, size=8, schema=schema, space=None, config=cfg)
    w.write_chunk(0, 0, images[:3], tags[:3])
    del w  # "killed" before finishing
    with pytest.raises(UserError, match="no manifest.json.*resume"):
        load_packed(tmp_path / "d")
    with pytest.raises(UserError, match="different settings"):
        PackedWriter(tmp_path / "d", n=6, size=8, schema=schema, space=None, config={"job": 2})
    w2 = PackedWriter(tmp_path / "d", n=6, size=8, schema=schema, space=None, config=cfg)
    assert w2.is_done(0) and not w2.is_done(1)
    w2.write_chunk(1, 3, images[3:], tags[3:])
    ds = w2.finalize([{"source": str(i), "license": "CC0"} for i in range(6)])
    np.testing.assert_array_equal(ds.images, images)
    assert not (tmp_path / "d" / ".build_state.json").exists()


def test_finalize_truncates_to_kept_rows(tmp_path):
    schema, images, tags = _arrays(n=6)
    w = PackedWriter(tmp_path / "d", n=6, size=8, schema=schema, space=None, config={})
    w.write_chunk(0, 0, images[:4], tags[:4])
    ds = w.finalize([{"source": str(i)} for i in range(4)], count=4)
    assert len(ds) == 4
    np.testing.assert_array_equal(ds.images, images[:4])
    assert load_packed(tmp_path / "d", verify=True).manifest["count"] == 4


def test_kill_during_finalize_truncation_resumes(tmp_path):
    """A kill after one array was truncated but before the manifest must not lose the finished build."""
    from charforge.data.packed import _truncate_rows

    schema, images, tags = _arrays(n=6)
    w = PackedWriter(tmp_path / "d", n=6, size=8, schema=schema, space=None, config={"j": 1})
    w.write_chunk(0, 0, images[:4], tags[:4])
    w.finalizing = 4
    w._save_state()
    _truncate_rows(tmp_path / "d" / "images.npy", w.images, 4)  # "killed" here: tags.npy still has 6 rows
    del w
    w2 = PackedWriter(tmp_path / "d", n=6, size=8, schema=schema, space=None, config={"j": 1})
    ds = w2.finalize([{"source": str(i)} for i in range(4)], count=4)
    np.testing.assert_array_equal(ds.images, images[:4])
    np.testing.assert_array_equal(ds.tags, tags[:4])
    assert load_packed(tmp_path / "d", verify=True).manifest["count"] == 4
