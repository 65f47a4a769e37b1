"""The shipped multi-style face-to-parameter model (issue 16 point 5): found by name, and it fits the render
style of a drawing as well as its tags."""

import numpy as np
import pytest

from charforge.creators.builtin import BuiltinCreator
from charforge.errors import UserError
from charforge.f2p import fit, load_f2p
from charforge.f2p.model import resolve_f2p_path


def test_shipped_names_resolve(tmp_path, monkeypatch):
    assert resolve_f2p_path("styles").name == "f2p_styles.safetensors"
    assert resolve_f2p_path("builtin").name == "f2p_builtin.safetensors"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="shipped name: builtin, styles"):
        resolve_f2p_path("nonsense")


def test_styles_model_fits_the_style():
    model = load_f2p("styles", detect=False)
    assert "style" in model.space.names
    params = BuiltinCreator().sample(6, np.random.default_rng(11))
    hits = 0
    for style in ("pixel", "manga", "flat"):
        for im in BuiltinCreator(style=style).render(params, 64):
            hits += (
                fit(model, [im], "fast", detect=False, check=False, preview_size=None).params["style"]
                == style
            )
    assert hits >= 15  # of 18 (the bench: 0.92-1.00 per style)
