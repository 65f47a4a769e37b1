"""generate / npc / interpolate / export with a real tiny diffusion model file: the sampling flags, the records in
every output, the ONNX backend's sampler loop, and clear errors for what a model cannot do."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from PIL import Image

from charforge import sampling
from charforge.core.tags import make_girls_moe_schema
from charforge.models.families import build_network
from charforge.models.generator import save_generator
from charforge.train.presets import resolve_preset


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny-diffusion preset's UNet with random tag weights (so tags and guidance change the picture)."""
    torch.manual_seed(0)
    schema = make_girls_moe_schema()
    cfg = resolve_preset("tiny-diffusion", {"resolution": 32}).model_config()
    net = build_network(cfg, len(schema))
    with torch.no_grad():
        net.tag_proj[2].weight.normal_(0, 0.5)
    freqs = schema.frequencies(schema.sample_training(400, np.random.default_rng(0)))
    path = tmp_path_factory.mktemp("m") / "diff.safetensors"
    return save_generator(
        path,
        net.state_dict(),
        cfg,
        schema,
        freqs,
        model_id="tiny-diff",
        provenance={"preset": "tiny-diffusion"},
    )


def test_generate_records_and_reproduces(model, tmp_path, capsys):
    args = [
        "generate",
        "--model",
        model,
        "--tags",
        "blonde hair, -hat",
        "--n",
        "3",
        "--steps",
        "4",
        "--guidance",
        "3",
    ]
    code, out, err = run_cli(capsys, *args, "-o", tmp_path / "a.png", "--each", tmp_path / "a", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["steps"], doc["guidance"], doc["sampler"], doc["negative_tags"]) == (4, 3.0, "dpm++", ["hat"])
    meta = Image.open(tmp_path / "a.png").text
    assert meta["charforge:steps"] == "4" and json.loads(meta["charforge:negative_tags"]) == ["hat"]
    code, _, err = run_cli(capsys, *args, "-o", tmp_path / "b.png")
    assert code == 0, err
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    )


def test_negative_term_changes_the_picture_and_zero_weight_does_not_steer(model):
    b = sampling.load_generator(model, device="cpu").with_options(steps=4)
    plain = sampling.characters_for_request(b.with_options(negative_guidance=0.0), "-hat", 2, 5)[0]
    pushed = sampling.characters_for_request(b.with_options(negative_guidance=4.0), "-hat", 2, 5)[0]
    free_off = sampling.generate(b, sampling.characters_for_request(b, "-hat", 2, 5)[2], seeds=[5, 6])
    assert np.array_equal(plain, free_off)  # weight 0: the tag only switched off, no extra branch
    assert not np.array_equal(plain, pushed)


def test_img2img_npc_family_and_interpolate(model, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "generate", "--model", model, "--n", "1", "--steps", "3", "-o", tmp_path / "one.png"
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys,
        "npc",
        "--model",
        model,
        "--n",
        "3",
        "--steps",
        "3",
        "--init-image",
        tmp_path / "one.png",
        "--strength",
        "0.4",
        "--min-distance",
        "0",
        "-o",
        tmp_path / "npc",
        "--json",
    )
    assert code == 0, err
    manifest = json.loads((tmp_path / "npc" / "manifest.json").read_text())
    assert manifest["strength"] == 0.4 and len(manifest["init_image_sha256"]) == 64
    b = sampling.load_generator(model, device="cpu").with_options(steps=3)
    ta, tb = sampling.sample_tags_for_seeds(b, None, [1, 2])
    frames = sampling.interpolate(b, (1, ta), (2, tb), 3)
    ends = sampling.generate(b, np.stack([ta, tb]), seeds=[1, 2])
    assert np.array_equal(frames[0], ends[0]) and np.array_equal(frames[-1], ends[1])


def test_onnx_backend_runs_the_same_sampler(model, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "onnx", "--model", model, "-o", tmp_path / "d.onnx")
    assert code == 0, err
    meta = json.loads((tmp_path / "d.json").read_text())
    assert meta["graph"] == "denoiser" and meta["config"]["family"] == "diffusion"
    a = sampling.load_generator(model, device="cpu").with_options(steps=4, guidance=2.5)
    o = sampling.load_generator(str(tmp_path / "d.onnx"), "onnx").with_options(steps=4, guidance=2.5)
    ia = sampling.characters_for_request(a, "red hair, -glasses", 3, 9)[0]
    io = sampling.characters_for_request(o, "red hair, -glasses", 3, 9)[0]
    assert np.abs(ia.astype(int) - io).max() <= 1


@pytest.mark.parametrize(
    "args, says",
    [
        (["--steps", "4"], "steps: the acgan model"),
        (["--init-image", "x.png"], "--init-image"),
        (["--guidance", "2"], "guidance"),
    ],
)
def test_a_gan_refuses_diffusion_flags(tmp_path, capsys, args, says):
    from charforge.models.config import ACGANConfig

    schema = make_girls_moe_schema()
    cfg = ACGANConfig(resolution=16, z_dim=8, g_width=4, g_blocks=1, g_upscalers=2, g_final_kernel=3)
    path = save_generator(
        tmp_path / "g.safetensors",
        build_network(cfg, len(schema)).state_dict(),
        cfg,
        schema,
        np.full(len(schema), 0.2),
        model_id="g",
    )
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    code, _, err = run_cli(
        capsys,
        "generate",
        "--model",
        path,
        *[a.replace("x.png", str(tmp_path / "x.png")) for a in args],
        "-o",
        tmp_path / "o.png",
    )
    assert code == 2 and says in err


@pytest.mark.parametrize(
    "args, says",
    [
        (["--steps", "0"], "steps=0"),
        (["--guidance", "99"], "guidance=99"),
        (["--sampler", "euler"], "valid samplers are"),
        (["--strength", "0.5"], "--strength: only used with --init-image"),
        (["--init-image", "/nope.png"], "no such file"),
        (["--truncation", "0.5"], "truncation=0.5"),
        (["--tags", "-blonde hair"], "exclusive group"),
    ],
)
def test_bad_diffusion_input_is_a_clear_error(model, tmp_path, capsys, args, says):
    code, _, err = run_cli(
        capsys, "generate", "--model", model, "--steps", "2", *args, "-o", tmp_path / "o.png"
    )
    assert code == 2 and says in err, err
