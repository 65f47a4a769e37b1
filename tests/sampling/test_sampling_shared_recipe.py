"""Review fixes in sampling.py and the generate / interpolate commands: NPC thumbnails at any resolution, per-NPC
tag seeds, one shared character recipe, one GIF encoder with provenance, and input checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from charforge import sampling
from charforge.cli import main
from charforge.core.tags import make_girls_moe_schema
from charforge.models.io import save_model
from charforge.provenance import read_png_metadata
from charforge.provenance.metadata import AI_STATEMENT
from charforge.train.presets import build_generator, resolve_preset


def tiny_bundle(resolution: int, seed: int = 0) -> sampling.GeneratorBundle:
    """An untrained tiny SRResNet generator (8 channels) with boosted contrast so seeds give distinct faces."""
    torch.set_num_threads(1)
    preset = resolve_preset("tiny", {"resolution": resolution})
    schema = make_girls_moe_schema()
    torch.manual_seed(seed)
    net = build_generator(preset, len(schema)).eval().requires_grad_(False)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(0.05)
        [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.mul_(8.0)
    freqs = schema.frequencies(schema.sample_training(300, np.random.default_rng(seed)))
    sha = hashlib.sha256(f"fix-{resolution}-{seed}".encode()).hexdigest()
    return sampling.GeneratorBundle(
        net,
        schema,
        freqs,
        preset.to_dict(),
        preset.z_dim,
        resolution,
        "fix-test",
        sha,
        Path("tiny.safetensors"),
    )


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """tiny_bundle(24) saved as a generator file the CLI can load."""
    b = tiny_bundle(24)
    path = tmp_path_factory.mktemp("fixmodel") / "gen.safetensors"
    save_model(
        path,
        b.net.state_dict(),
        kind="generator",
        config=b.config,
        extra={"tag_schema": b.schema.to_dict(), "tag_freqs": b.freqs.tolist(), "model_id": "fix-test"},
    )
    return path


def _cli(capsys, *args):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("size", [8, 20, 24, 32, 40])
def test_thumbnails_are_16x16_at_any_resolution(size):
    imgs = np.random.default_rng(size).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    th = sampling._thumb(imgs)
    assert th.shape == (3, 16 * 16 * 3) and th.dtype == np.float32
    assert 0.0 <= th.min() and th.max() <= 1.0
    halves = np.zeros((1, size, size, 3), np.uint8)
    halves[:, :, size // 2 :] = 200  # left half black, right half grey: the thumbnail keeps the layout
    th2 = sampling._thumb(halves).reshape(16, 16, 3)
    assert np.allclose(th2[:, :7], 0.0) and np.allclose(th2[:, 9:], 200 / 255, atol=1e-6)
    if size == 32:  # a resolution that splits into 16 blocks: exact 2x2 block means
        block = imgs.astype(np.float32).reshape(3, 16, 2, 16, 2, 3).mean(axis=(2, 4)) / 255.0
        assert np.allclose(th, block.reshape(3, -1), atol=1e-6)


@pytest.mark.parametrize("size", [24, 40])
def test_npc_batch_odd_resolutions_and_tag_seeds(size):
    b = tiny_bundle(size)
    c = b.schema.parse("smile")
    recs = sampling.npc_batch(b, 6, seed=2, constraints=c, min_distance=0.02)
    assert len(recs) == 6 and len({r.seed for r in recs}) == 6
    assert all(r.image.shape == (size, size, 3) for r in recs)
    thumbs = sampling._thumb(np.stack([r.image for r in recs]))
    d = np.sqrt(((thumbs[:, None] - thumbs[None]) ** 2).mean(axis=2)) + np.eye(6)
    assert d.min() >= 0.02
    for r in recs[:3]:  # each NPC's seed alone reproduces its tags and its image
        tags = sampling.sample_tags_for_seeds(b, c, [r.seed])
        assert np.array_equal(tags[0], r.tags) and r.tags[b.schema.index("smile")] == 1
        assert np.array_equal(sampling.generate(b, tags, seeds=[r.seed])[0], r.image)


def test_characters_for_seeds_fixed_noise_uses_per_image_tag_seeds():
    b = tiny_bundle(24)
    c = b.schema.parse("blue eyes")
    images, noise, tags = sampling.characters_for_seeds(b, c, [5, 6, 7], fixed_noise=True)
    assert noise == [5, 5, 5]
    assert np.array_equal(tags, sampling.sample_tags_for_seeds(b, c, [5, 6, 7]))
    plain, noise2, tags2 = sampling.characters_for_seeds(b, c, [5, 6, 7])
    assert noise2 == [5, 6, 7] and np.array_equal(tags, tags2)
    assert np.array_equal(images[0], plain[0]) and not np.array_equal(images[1], plain[1])
    req, seeds, tag_m = sampling.characters_for_request(b, "blue eyes", 3, 5, fixed_noise=True)
    assert seeds == noise and np.array_equal(req, images) and np.array_equal(tag_m, tags)


def test_gif_bytes_carries_the_ai_statement():
    frames = np.random.default_rng(0).integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    data = sampling.gif_bytes(frames, 120, {"model_id": "fix-test"})
    with Image.open(__import__("io").BytesIO(data)) as gif:
        assert gif.n_frames == 4 and gif.info["duration"] == 120 and gif.info["loop"] == 0
        comment = gif.info["comment"].decode()
    assert comment.startswith(AI_STATEMENT) and '"model_id": "fix-test"' in comment and "charforge" in comment
    from charforge.serve.engine import gif_bytes as studio_gif

    assert studio_gif(frames, 120, {"model_id": "fix-test"}) == data  # the studio uses the very same encoder


def test_generate_each_runs_the_generator_once(model_file, tmp_path, capsys, monkeypatch):
    calls = []
    real = sampling.generate
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    code, _, err = _cli(
        capsys,
        "generate",
        "-m",
        model_file,
        "--n",
        "4",
        "--seed",
        "3",
        "--cols",
        "4",
        "-o",
        tmp_path / "g.png",
        "--each",
        tmp_path / "each",
        "--no-watermark",
    )
    assert code == 0, err
    assert len(calls) == 1
    grid = np.asarray(Image.open(tmp_path / "g.png").convert("RGB"))
    files = sorted((tmp_path / "each").glob("*.png"))
    assert [f.name for f in files] == [f"{i:04d}_seed{3 + i}.png" for i in range(4)]
    each = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    from charforge.core.images import image_grid

    assert np.array_equal(grid, image_grid(np.stack(each), 4))  # grid and single files are the same images
    meta = read_png_metadata(files[2])
    assert meta["seed"] == 5 and meta["tag_seed"] == 5
    assert read_png_metadata(tmp_path / "g.png")["tag_seeds"] == [3, 4, 5, 6]


@pytest.mark.parametrize("fps", ["0", "-2"])
def test_interpolate_rejects_bad_fps(model_file, tmp_path, capsys, fps):
    code, _, err = _cli(
        capsys, "interpolate", "-m", model_file, "--frames", "2", "--fps", fps, "-o", tmp_path / "i"
    )
    assert code == 2 and "--fps" in err and "0.1" in err
    assert not (tmp_path / "i").exists()


def test_interpolate_gif_has_provenance_comment(model_file, tmp_path, capsys):
    code, _, err = _cli(
        capsys,
        "interpolate",
        "-m",
        model_file,
        "--seed-a",
        "1",
        "--seed-b",
        "2",
        "--frames",
        "3",
        "--fps",
        "4",
        "-o",
        tmp_path / "i",
    )
    assert code == 0, err
    with Image.open(tmp_path / "i" / "interpolation.gif") as gif:
        assert gif.info["duration"] == 250
        comment = gif.info["comment"].decode()
    assert comment.startswith(AI_STATEMENT) and '"model_id": "fix-test"' in comment and '"a": 1' in comment
