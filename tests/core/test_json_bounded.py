"""json_loads_bounded: a too-deep JSON is refused before the parser recurses (no "Exception ignored" noise from a
garbage collection at Python's recursion limit), and ordinary JSON, brackets inside strings included, parses."""

import json

import pytest

from charforge.utils.io import JSON_MAX_DEPTH, json_loads_bounded


def test_deep_json_is_refused_without_recursing_and_ordinary_json_parses():
    with pytest.raises(RecursionError, match=f"deeper than {JSON_MAX_DEPTH}"):
        json_loads_bounded("[" * 100_000 + "]" * 100_000)
    ok = "[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH
    assert json_loads_bounded(ok) == json.loads(ok)
    text = json.dumps({"a": ["[[[[" * 300, {"b": '{"\\"'}], "c": [[1], [2]]})
    assert json_loads_bounded(text) == json.loads(text)  # brackets inside strings do not count
    with pytest.raises(ValueError):
        json_loads_bounded("{broken")
