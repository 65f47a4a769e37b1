"""A model trained on pixel art records its data's grid and palette; generation snaps onto them (--pixel-art)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from charforge import sampling
from charforge.core.pixelart import dataset_grid, pixel_grid, snap
from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.errors import UserError
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.presets import resolve_preset
from tests.cli.cli_helpers import run_cli
from tests.train.test_train_resume import one_thread, tiny_data  # noqa: F401  (one_thread: an autouse fixture)


def pixel_data(root, n: int = 48, size: int = 16, cell: int = 2):
    """Blocky portraits on a 2 px grid, drawn from 9 colours."""
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (9, 3), dtype=np.uint8)
    cells = palette[rng.integers(0, 9, (n, size // cell, size // cell))]
    write_packed(
        root, cells.repeat(cell, 1).repeat(cell, 2), schema.sample_training(n, rng).astype(np.uint8), schema
    )
    return root, palette


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    """(data, run folder) of a tiny model trained 2 steps on pixel_data."""
    root = tmp_path_factory.mktemp("pixel")
    data, _ = pixel_data(root / "px")
    opts = TrainOptions(device="cpu", show_progress=False, tensorboard=False)
    Trainer(data, root / "run", resolve_preset("tiny", {"steps": 2}), opts=opts).run()
    return data, root / "run"


def test_snap_is_exact_on_the_data_and_puts_anything_on_the_grid():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    data = palette[rng.integers(0, 5, (20, 12, 12))].repeat(4, 1).repeat(4, 2)  # 48 px, 4 px cells
    g = dataset_grid(data)
    assert g["cell"] == 4 and g["offset"] == [0, 0] and g["share"] == 1.0 and len(g["palette"]) == 5
    assert np.array_equal(snap(data, g), data)
    noise = rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    out = snap(noise, g)
    assert all(
        pixel_grid(o) in (None, (4, 0, 0)) for o in out
    )  # flat cells (a cell may equal its neighbours)
    assert np.array_equal(out, out[:, ::4, ::4].repeat(4, 1).repeat(4, 2))
    assert {tuple(c) for c in out.reshape(-1, 3)} <= {tuple(c) for c in palette}
    assert dataset_grid(noise) is None
    shifted = dict(g, offset=[1, 3])  # part cells at the edges are cells too
    s = snap(noise, shifted)
    assert np.array_equal(s[:, 1:45, 3:47], s[:, 1:45:4, 3:47:4].repeat(4, 1).repeat(4, 2))


def test_a_pixel_art_model_snaps_its_outputs_and_says_so(tmp_path, capsys):
    data, palette = pixel_data(tmp_path / "px")
    run = tmp_path / "run"
    p = resolve_preset("tiny", {"steps": 3})
    Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False)).run()
    assert "your data is pixel art on a 2 px grid" in capsys.readouterr().err
    with Image.open(sorted((run / "samples").glob("step_*.png"))[-1]) as im:  # snapped, then watermarked
        sheet, note = np.asarray(im.convert("RGB")).astype(float), im.info["charforge:pixel_art"]
    h, w, _ = sheet.shape
    cells = sheet.reshape(h // 2, 2, w // 2, 2, 3).mean((1, 3))
    assert "snapped" in note and np.abs(sheet - cells.repeat(2, 0).repeat(2, 1)).mean() < 2.0
    bundle = sampling.load_generator(str(run), device="cpu")
    assert bundle.pixel_art["cell"] == 2 and len(bundle.pixel_art["palette"]) == 9
    tags = np.zeros((4, len(bundle.schema)), np.float32)
    out = sampling.generate(bundle, tags, seeds=[0, 1, 2, 3])
    assert np.array_equal(out, out[:, ::2, ::2].repeat(2, 1).repeat(2, 2))
    assert {tuple(c) for c in out.reshape(-1, 3)} <= {tuple(int(v) for v in c) for c in palette}
    raw = sampling.generate(
        bundle.__class__(**{**vars(bundle), "pixel_snap": False}), tags, seeds=[0, 1, 2, 3]
    )
    assert not np.array_equal(raw, out) and np.array_equal(snap(raw, bundle.pixel_art), out)
    assert "pixel grid (2 px cells)" in bundle.png_meta(0, tags[0])["pixel_art"]
    code, _, err = run_cli(capsys, "generate", "--model", run, "-n", "4", "-o", tmp_path / "g.png")
    assert code == 0 and "trained on pixel art" in err
    with Image.open(tmp_path / "g.png") as im:
        assert "snapped" in im.info["charforge:pixel_art"]
    code, _, err = run_cli(
        capsys, "generate", "--model", run, "-n", "4", "-o", tmp_path / "r.png", "--pixel-art", "off"
    )
    assert code == 0 and "trained on pixel art" not in err
    with Image.open(tmp_path / "r.png") as im:
        assert "charforge:pixel_art" not in im.info
    code, _, err = run_cli(
        capsys, "generate", "--model", run, "-o", tmp_path / "x.png", "--pixel-art", "always"
    )
    assert code == 2 and "--pixel-art 'always'" in err and "Traceback" not in err


def test_other_data_records_no_grid_and_a_damaged_record_names_the_file(tmp_path):
    data = tiny_data(tmp_path / "tiny")
    run = tmp_path / "run"
    Trainer(
        data, run, resolve_preset("tiny", {"steps": 2}), opts=TrainOptions(device="cpu", show_progress=False)
    ).run()
    assert sampling.load_generator(str(run), device="cpu").pixel_art is None
    with pytest.raises(UserError, match="model.safetensors: its pixel_art record"):
        sampling._pixel_art_meta(
            {"cell": 1, "offset": [0, 0], "palette": [[0, 0, 0]]}, run / "model.safetensors", 16
        )
    with pytest.raises(UserError, match="is damaged"):
        sampling._pixel_art_meta({"cell": 2, "offset": [0, 0], "palette": [[0, 0, 300]]}, run / "m", 16)
    assert json.loads(
        json.dumps(sampling._pixel_art_meta({"cell": 2, "offset": [1, 0], "palette": [[1, 2, 3]]}, run, 16))
    )


def test_eval_measures_a_pixel_art_model_snapped_or_raw(pixel_run, tmp_path):
    from charforge.metrics.report import evaluate_model

    data, run = pixel_run
    kw = dict(metrics=["sharpness"], n=16, runs=1, sample_n=16, device="cpu")
    snapped = evaluate_model(str(run), data, tmp_path / "e1", **kw)
    raw = evaluate_model(str(run), data, tmp_path / "e2", pixel_art="off", **kw)
    assert "snapped" in snapped["model"]["pixel_art"] and "pixel_art" not in raw["model"]
    assert snapped["metrics"]["sharpness"]["generated"] != raw["metrics"]["sharpness"]["generated"]
    with pytest.raises(UserError, match="--pixel-art 'on'"):
        evaluate_model(str(run), data, tmp_path / "e3", pixel_art="on", **kw)


def test_onnx_exports_carry_the_grid_and_snap_alike(pixel_run, tmp_path):
    from charforge.export.onnx import export_generator_onnx

    data, run = pixel_run
    torch_b = sampling.load_generator(str(run), device="cpu")
    onnx_path = export_generator_onnx(torch_b, tmp_path / "g.onnx")
    meta = json.loads((tmp_path / "g.json").read_text())
    assert meta["pixel_art"]["cell"] == 2 and "nearest palette colour" in meta["pixel_art_snap"]
    tags = np.zeros((4, len(torch_b.schema)), np.float32)
    ref = sampling.generate(torch_b, tags, seeds=[0, 1, 2, 3])
    for b in (sampling.load_generator(str(onnx_path), "onnx"), sampling.load_generator(str(run), "onnx")):
        assert b.pixel_art["palette"] == torch_b.pixel_art["palette"]
        out = sampling.generate(b, tags, seeds=[0, 1, 2, 3])
        assert np.array_equal(out, out[:, ::2, ::2].repeat(2, 1).repeat(2, 2))
        assert (out == ref).all(-1).mean() > 0.95  # float rounding may move a cell to a neighbouring colour
