"""bench/foreign/tagger_heldout.py: held-out creator renders (clean, shifted, framed) scored per tagger, on a
plain and a multi-style dataset, with test-time views; tiny sizes, fixed seeds."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "foreign" / "tagger_heldout.py"


def _load():
    spec = importlib.util.spec_from_file_location("foreign_tagger_heldout", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_heldout_bench_scores_clean_shifted_and_framed(tmp_path, capsys):
    from charforge.core.tags import make_girls_moe_schema
    from charforge.data.build import build_from_creator
    from charforge.tagger.net import TaggerConfig, TaggerNet, save_tagger

    th = _load()
    build_from_creator(tmp_path / "cel", n=40, size=32, seed=0, show_progress=False)
    build_from_creator(
        tmp_path / "sty", creator="builtin-styles=manga,pixel", n=40, size=32, seed=0, show_progress=False
    )
    schema = make_girls_moe_schema()
    torch.manual_seed(0)
    net = TaggerNet(TaggerConfig(n_tags=len(schema), image_size=32, channels=4, feat_dim=8))
    path = save_tagger(tmp_path / "t.safetensors", net, schema)
    out = tmp_path / "out"
    argv = [f"t={path}", f"tv={path}#flip,zoom:1.25", "--data", f"cel={tmp_path / 'cel'}"]
    argv += ["--data", f"sty={tmp_path / 'sty'}", "--out", str(out)]
    assert th.main(argv) == 0
    res = json.loads((out / "tagger_heldout.json").read_text())["results"]
    assert set(res) == {"t", "tv"}
    keys = {f"{d}/{s}" for d in ("cel", "sty") for s in ("clean", "shifted", "framed")}
    assert set(res["t"]) == keys
    for m in res["t"].values():
        assert m["n"] == 4 and 0 <= m["mean_precision"] <= 1 and "hair color accuracy" in m
    assert "hair color accuracy per style" in res["t"]["sty/clean"]  # multi-style: per render style
    assert "hair color accuracy per style" not in res["t"]["cel/clean"]
    assert "| tv | sty/framed |" in (out / "tagger_heldout.md").read_text()

    # the framed split: same tags as a recolour with its seed, images zoomed (not the clean renders)
    from charforge.data.packed import load_packed
    from charforge.train import tagger_augment as ta

    data = load_packed(tmp_path / "cel")
    parts = ta.cached_part_renders(data, np.arange(6), None)
    a, ta_ = th.framed_validation(parts, data.schema, seed=0)
    b, tb = th.framed_validation(parts, data.schema, seed=0)
    np.testing.assert_array_equal(a, b)  # deterministic
    np.testing.assert_array_equal(ta_, tb)
    assert a.shape == (6, 32, 32, 3) and np.abs(a.astype(int) - parts.base.astype(int)).mean() > 10
