"""`charforge fit` and `charforge f2p eval` end to end on the tiny toy model, including bad input."""

from __future__ import annotations

import json

import numpy as np
from f2p_helpers import TOY_SPEC, run_cli
from PIL import Image

from charforge.provenance import read_png_metadata


def _photo(toy, path, seed=3):
    batch = toy.space.sample(1, np.random.default_rng(seed))
    Image.fromarray(toy.render(batch, 48)[0]).save(path)
    return path


def test_fit_writes_params_render_and_score_but_no_input(toy_model, toy, tmp_path):
    a, b = _photo(toy, tmp_path / "a.png"), _photo(toy, tmp_path / "b.png", seed=4)
    out = tmp_path / "out"
    code, log = run_cli(
        [
            "fit",
            str(a),
            str(b),
            "--f2p",
            str(toy_model),
            "-o",
            str(out),
            "--mode",
            "both",
            "--iters",
            "10",
            "--creator",
            TOY_SPEC,
        ]
    )
    assert code == 0, log
    assert "similarity" in log and "--keep-inputs" in log
    assert sorted(p.name for p in out.iterdir()) == [
        "fit.json",
        "params.json",
        "render.png",
    ]  # nothing holds an input
    params = json.loads((out / "params.json").read_text())
    toy.space.validate(params, partial=False)
    summary = json.loads((out / "fit.json").read_text())
    assert summary["n_inputs"] == 2 and set(summary["scores"]) == {"fast", "search"}
    assert "% of random creator renders" in log and "search-space cosine" in log
    assert summary["check_space"] == "generic" and 0 <= summary["percentile"] <= 100
    assert summary["similarity"] == summary["percentile"] / 100 and summary["search_cosine"] > 0
    assert summary["faces"] == ["drawing (whole image)"] * 2 and summary["preview"].startswith("re-render")
    assert read_png_metadata(out / "render.png")["params"] == params


def test_fit_keep_inputs_adds_side_by_side_and_copies(toy_model, toy, tmp_path):
    a, b = _photo(toy, tmp_path / "a.png"), _photo(toy, tmp_path / "b.png", seed=4)
    out = tmp_path / "out"
    code, log = run_cli(
        [
            "fit",
            str(a),
            str(b),
            "--f2p",
            str(toy_model),
            "-o",
            str(out),
            "--mode",
            "fast",
            "--keep-inputs",
            "--creator",
            TOY_SPEC,
        ]
    )
    assert code == 0, log
    strip = np.asarray(Image.open(out / "side_by_side.png"))
    assert strip.shape[0] == 256 and strip.shape[1] > 3 * 256  # two inputs + the render
    assert read_png_metadata(out / "side_by_side.png")["params"] == json.loads(
        (out / "params.json").read_text()
    )
    assert (out / "input_0.png").read_bytes() == a.read_bytes() and (out / "input_1.png").is_file()


def test_fit_bad_inputs_are_clear_errors(toy_model, toy, tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(tiny)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path, words in (
        (tiny, "tiny.png"),
        (corrupt, "corrupt.jpg"),
        (text, "notes.txt"),
        (tmp_path / "missing.png", "missing.png"),
    ):
        code, log = run_cli(
            ["fit", str(path), "--f2p", str(toy_model), "-o", str(tmp_path / "o"), "--creator", TOY_SPEC]
        )
        assert code == 2 and words in log and "Traceback" not in log, log
    code, log = run_cli(
        [
            "fit",
            str(_photo(toy, tmp_path / "p.png")),
            "--f2p",
            str(tmp_path / "nowhere"),
            "-o",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "nowhere" in log
    code, log = run_cli(
        [
            "fit",
            str(tmp_path / "p.png"),
            "--f2p",
            str(toy_model),
            "-o",
            str(tmp_path / "o"),
            "--mode",
            "magic",
            "--creator",
            TOY_SPEC,
        ]
    )
    assert code == 2 and "unknown fit mode" in log


def test_eval_writes_table_json_and_png(toy_model, tmp_path):
    out = tmp_path / "ev"
    code, log = run_cli(
        [
            "f2p",
            "eval",
            "--f2p",
            str(toy_model),
            "-o",
            str(out),
            "--n",
            "16",
            "--n-search",
            "4",
            "--iters",
            "5",
            "--creator",
            TOY_SPEC,
        ]
    )
    assert code == 0, log
    res = json.loads((out / "eval.json").read_text())
    assert res["n"] == 16 and res["modes"]["fast"]["n"] == 16 and res["modes"]["search"]["n"] == 4
    assert res["split"]["name"] == "fresh renders" and "Split: fresh renders" in (out / "eval.md").read_text()
    for r in res["modes"].values():
        assert -1 <= r["mean_cosine"] <= 1 and 0 <= r["cont_mae"] <= 1 and r["ms_per_image"] > 0
        assert set(r["cat_accuracy"]) == {"face_color", "background", "eyes"}
    assert "| fast | 16 |" in (out / "eval.md").read_text()
    assert Image.open(out / "examples.png").size[0] > 100


def test_unknown_embedder_is_refused(tmp_path):
    code, log = run_cli(
        [
            "f2p",
            "train",
            "--creator",
            "tests.f2p.f2p_toy:make",
            "--embedder",
            "arcface",
            "-o",
            str(tmp_path / "m"),
        ]
    )
    assert code == 2 and "unknown embedder" in log
