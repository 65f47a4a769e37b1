"""The onnx backend of charforge.sampling (and the CLI's --backend), and --no-watermark on CLI outputs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from charforge import sampling
from charforge.cli import main
from charforge.core.tags import make_girls_moe_schema
from charforge.errors import UserError
from charforge.models.io import save_model
from charforge.provenance import read_png_metadata
from charforge.provenance.watermark import detect_watermark
from charforge.train.presets import build_generator, resolve_preset

PIXEL_TOL = 2  # uint8 levels: onnxruntime vs PyTorch after rounding to pixels
WEIGHT_STD = 0.3  # std of the random test weights (the default init gives near-constant grey images)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained 64 px tiny acgan saved the way the trainer writes generator files. Its weights are redrawn
    wider than the default init so the images are textured (pixel std ~90), not flat grey."""
    torch.manual_seed(0)
    schema = make_girls_moe_schema()
    preset = resolve_preset("tiny", {"resolution": 64, "g_upscalers": 3})
    net = build_generator(preset, len(schema))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, WEIGHT_STD)
    freqs = np.random.default_rng(0).uniform(0.05, 0.6, len(schema))
    path = tmp_path_factory.mktemp("gen") / "generator-0000001.safetensors"
    save_model(
        path,
        net.state_dict(),
        kind="generator",
        config=preset.to_dict(),
        extra={
            "tag_schema": schema.to_dict(),
            "tag_freqs": [float(f) for f in freqs],
            "model_id": "tiny64@1",
        },
    )
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sampling, "_CACHE", {})
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cli(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_onnx_backend_matches_torch_and_caches_export(model_file, tmp_path):
    bt = sampling.load_generator(model_file)
    bo = sampling.load_generator(model_file, "onnx", onnx_threads=1)
    assert bo.backend == "onnx" and bt.backend == "torch"
    assert (bo.sha256, bo.model_id, bo.image_size) == (bt.sha256, "tiny64@1", 64)
    cached = tmp_path / "cache" / "onnx" / f"generator-{bt.sha256}.onnx"
    assert cached.is_file() and sorted(p.name for p in cached.parent.iterdir()) == [cached.name]
    tags = sampling.sample_tags(bt, bt.schema.parse("blonde hair"), 5, np.random.default_rng(3))
    a = sampling.generate(bt, tags, seeds=[4, 5, 6, 7, 8], batch_size=2)
    b = sampling.generate(bo, tags, seeds=[4, 5, 6, 7, 8], batch_size=2)
    assert a.shape == b.shape == (5, 64, 64, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= PIXEL_TOL
    assert b.std() > 30 and not np.array_equal(b[0], b[1])
    fa = sampling.interpolate(bt, (1, tags[0]), (2, tags[1]), 3)
    fb = sampling.interpolate(bo, (1, tags[0]), (2, tags[1]), 3)
    assert np.abs(fa.astype(int) - fb.astype(int)).max() <= PIXEL_TOL
    na, nb = (
        sampling.npc_batch(bt, 3, seed=9, min_distance=0),
        sampling.npc_batch(bo, 3, seed=9, min_distance=0),
    )
    assert [r.seed for r in na] == [r.seed for r in nb]
    assert all(np.array_equal(r.tags, s.tags) for r, s in zip(na, nb))
    assert max(np.abs(r.image.astype(int) - s.image.astype(int)).max() for r, s in zip(na, nb)) <= PIXEL_TOL
    # second load (fresh process cache) reuses the export; a .onnx file loads directly
    stamp = cached.stat().st_mtime_ns
    sampling._CACHE.clear()
    again = sampling.load_generator(model_file, "onnx")
    assert cached.stat().st_mtime_ns == stamp and again.net is not bo.net
    direct = sampling.load_generator(cached, "onnx")
    assert (
        direct.path == cached.resolve()
        and direct.sha256 == bt.sha256
        and direct.schema.tags == bt.schema.tags
    )
    assert (
        np.abs(sampling.generate(direct, tags, seeds=[4, 5, 6, 7, 8]).astype(int) - a.astype(int)).max()
        <= PIXEL_TOL
    )


def test_backend_errors(model_file, tmp_path, capsys):
    with pytest.raises(UserError, match="valid backends are torch, onnx"):
        sampling.load_generator(model_file, "tensorrt")
    with pytest.raises(UserError, match="no such ONNX file"):
        sampling.load_generator(tmp_path / "missing.onnx", "onnx")
    with pytest.raises(UserError, match="--backend onnx"):
        sampling.load_generator(str(tmp_path / "gen.onnx"), "torch")
    for cmd in ("generate", "interpolate", "npc"):
        code, _, err = _cli(
            capsys, cmd, "-m", str(model_file), "--backend", "tensorrt", "-o", str(tmp_path / cmd)
        )
        assert code == 2 and "valid backends are torch, onnx" in err, (cmd, err)


def test_generate_cli_watermark_on_by_default_and_off_when_asked(model_file, tmp_path, capsys):
    code, _, err = _cli(
        capsys,
        "generate",
        "-m",
        str(model_file),
        "--n",
        "2",
        "--seed",
        "3",
        "--backend",
        "onnx",
        "-o",
        str(tmp_path / "wm.png"),
        "--each",
        str(tmp_path / "wm"),
    )
    assert code == 0, err
    code, _, err = _cli(
        capsys,
        "generate",
        "-m",
        str(model_file),
        "--n",
        "2",
        "--seed",
        "3",
        "--no-watermark",
        "-o",
        str(tmp_path / "plain.png"),
        "--each",
        str(tmp_path / "plain"),
    )
    assert code == 0, err
    for marked, plain in [
        (tmp_path / "wm.png", tmp_path / "plain.png"),
        (tmp_path / "wm" / "0000_seed3.png", tmp_path / "plain" / "0000_seed3.png"),
    ]:
        assert detect_watermark(np.asarray(Image.open(marked).convert("RGB")))[0], marked
        assert not detect_watermark(np.asarray(Image.open(plain).convert("RGB")))[0], plain
        assert (
            read_png_metadata(marked)["watermark"] != "none"
            and read_png_metadata(plain)["watermark"] == "none"
        )
    a = np.asarray(Image.open(tmp_path / "wm" / "0001_seed4.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "plain" / "0001_seed4.png"), dtype=int)
    assert np.abs(a - b).max() <= 16  # onnx + watermark still shows the same character


def test_interpolate_and_npc_cli_no_watermark_and_onnx(model_file, tmp_path, capsys):
    code, _, err = _cli(
        capsys,
        "interpolate",
        "-m",
        str(model_file),
        "--seed-a",
        "1",
        "--seed-b",
        "2",
        "--frames",
        "2",
        "--backend",
        "onnx",
        "--no-watermark",
        "-o",
        str(tmp_path / "i"),
    )
    assert code == 0, err
    for f in ("frame_000.png", "frame_001.png"):
        assert read_png_metadata(tmp_path / "i" / f)["watermark"] == "none"
        assert not detect_watermark(np.asarray(Image.open(tmp_path / "i" / f).convert("RGB")))[0]
    for wm in (False, True):
        out = tmp_path / f"npc_{wm}"
        extra = [] if wm else ["--no-watermark"]
        code, _, err = _cli(
            capsys,
            "npc",
            "-m",
            str(model_file),
            "--n",
            "2",
            "--min-distance",
            "0",
            "--backend",
            "onnx",
            *extra,
            "-o",
            str(out),
        )
        assert code == 0, err
        man = json.loads((out / "manifest.json").read_text())
        img = out / man["items"][0]["file"]
        assert detect_watermark(np.asarray(Image.open(img).convert("RGB")))[0] is wm
        assert (read_png_metadata(img)["watermark"] == "none") is not wm


def test_studio_loader_uses_the_same_backends(model_file, tmp_path):
    from charforge.serve.server import load_generator_backend

    bo = load_generator_backend(str(model_file), "onnx")  # a safetensors model: exported into the cache
    assert bo.backend == "onnx" and bo.net.gen.session.get_session_options().intra_op_num_threads == 1
    direct = load_generator_backend(str(tmp_path / "cache" / "onnx" / f"generator-{bo.sha256}.onnx"), "onnx")
    tags = sampling.sample_tags(bo, None, 2, np.random.default_rng(0))
    assert (
        np.abs(sampling.generate(direct, tags).astype(int) - sampling.generate(bo, tags).astype(int)).max()
        <= PIXEL_TOL
    )
    assert load_generator_backend(str(model_file), "torch").backend == "torch"
    with pytest.raises(UserError, match="valid backends are torch, onnx"):
        load_generator_backend(str(model_file), "tvm")
