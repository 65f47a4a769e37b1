"""`charforge fit --json`: one JSON document on stdout with the fitted parameters and the files written."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
from f2p_helpers import TOY_SPEC
from PIL import Image

from charforge.cli import main


def test_fit_json_document(toy_model, toy, tmp_path):
    batch = toy.space.sample(1, np.random.default_rng(3))
    Image.fromarray(toy.render(batch, 48)[0]).save(tmp_path / "a.png")
    out, err = io.StringIO(), io.StringIO()
    args = ["fit", str(tmp_path / "a.png"), "--f2p", str(toy_model), "-o", str(tmp_path / "o")]
    args += ["--mode", "fast", "--creator", TOY_SPEC, "--json"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code
    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["command"] == "fit" and doc["mode"] == "fast"
    assert doc["params"] == json.loads((tmp_path / "o" / "params.json").read_text())
    assert doc["summary"] == json.loads((tmp_path / "o" / "fit.json").read_text())
    assert set(doc["files"]) == {"params", "render", "summary"} and doc["input_copies"] == []
    assert 0 <= doc["similarity"] <= 1
