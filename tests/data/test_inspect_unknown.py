"""`charforge data inspect` says which exclusive groups are unknown (no tag of the group set), apart from the
frequencies, which count an unknown group as absent."""

from __future__ import annotations

import numpy as np

from charforge.core.tags import make_girls_moe_schema
from charforge.data.inspect import summarise
from charforge.data.packed import load_packed, write_packed


def test_summary_names_groups_unknown_on_the_images(tmp_path):
    """Line-art avatars draw no irises: eye colour is unknown on every image, and the summary listed "green eyes
    0.00, blue eyes 0.00" among the least common tags as if no eye had a colour."""
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    tags = schema.sample_training(10, rng).astype(np.uint8)
    hair, eyes = schema.group_slices()[0], schema.group_slices()[1]
    tags[:, eyes] = 0  # unknown everywhere
    tags[:2, hair] = 0  # and hair colour on two
    write_packed(tmp_path / "d", rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8), tags, schema)
    text = summarise(load_packed(tmp_path / "d"))
    (line,) = [x for x in text.splitlines() if x.startswith("unknown")]
    assert f"{schema.groups[0].name} on 2 of 10, {schema.groups[1].name} on 10 of 10" in line, line
    assert "training masks it" in line
    full = schema.sample_training(10, rng).astype(np.uint8)
    write_packed(tmp_path / "e", rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8), full, schema)
    lines = summarise(load_packed(tmp_path / "e")).splitlines()
    assert not [x for x in lines if x.startswith("unknown")]  # every group known: no line
