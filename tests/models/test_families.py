"""The contract every model family passes (after diffusers' model tester mixin), run for each registry entry.

Adding a family means adding its tiny config and pinned values here; `test_every_family_is_covered` fails
until that is done.
"""

import hashlib
import json

import numpy as np
import pytest
import torch

from charforge import sampling
from charforge.core.tags import make_girls_moe_schema
from charforge.errors import UserError
from charforge.models.config import ACGANConfig, DCGANConfig, DiffusionConfig
from charforge.models.families import FAMILIES, build_network, config_from_dict, get_family
from charforge.models.generator import read_generator, save_generator
from charforge.models.io import read_metadata
from charforge.train.presets import PRESETS, Preset

SCHEMA = make_girls_moe_schema()
T = len(SCHEMA)
TINY = {
    "acgan": ACGANConfig(
        resolution=16,
        z_dim=16,
        g_width=8,
        g_blocks=2,
        g_upscalers=2,
        g_final_kernel=3,
        g_cond_norm=True,
        g_antialias=True,
    ),
    "dcgan": DCGANConfig(resolution=16, z_dim=16, g_width=4),
    "diffusion": DiffusionConfig(resolution=16, u_width=8, u_mults="1,2", u_layers=1, u_attn="2"),
}
# sorted state_dict names -> sha256 prefix: renaming a layer breaks every saved model, so it must be deliberate
WEIGHT_NAMES = {
    "acgan": (58, "58c6965fc3ac349d"),
    "dcgan": (6, "daa165031f20992d"),
    "diffusion": (148, "c50ba9a51116def9"),
}
# output[1, :, 5, 4:7] for the seeded weights and inputs below
PIXELS = {
    "acgan": [-0.5106, -0.5106, -0.5106, 0.3318, 0.3319, 0.3319, -0.0309, -0.0309, -0.0308],
    "dcgan": [0.0255, 0.0255, -0.0145, -0.1167, -0.0758, -0.1385, -0.1025, -0.0655, -0.1084],
    # the default sampler (DPM-Solver++, 20 steps, guidance 2) over the seeded denoiser
    "diffusion": [0.2585, -0.8034, 0.3095, 1.0, 1.0, 0.2525, 1.0, -0.9024, 1.0],
}
FAMILY_NAMES = sorted(FAMILIES)


def _seeded(net):
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for _, p in sorted(net.named_parameters()):
            p.copy_(torch.rand(p.shape, generator=g) * 0.4 - 0.2)
    return net.eval()


def _inputs(cfg):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, *cfg.noise_shape(), generator=g)
    c = torch.zeros(2, T)
    c[:, 3], c[:, 20] = 1, 1
    return z, c


def _tiny_file(tmp_path, name):
    cfg = TINY[name]
    net = _seeded(build_network(cfg, T))
    freqs = np.full(T, 0.2)
    path = save_generator(
        tmp_path / f"{name}.safetensors",
        net.state_dict(),
        cfg,
        SCHEMA,
        freqs,
        model_id=f"tiny-{name}",
        provenance={"preset": "tiny", "step": 0},
    )
    return path, net


def test_every_family_is_covered():
    assert set(FAMILIES) == set(TINY) == set(WEIGHT_NAMES) == set(PIXELS)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_forward_shapes_and_range(name):
    cfg = TINY[name]
    net = build_network(cfg, T).eval()
    z, c = _inputs(cfg)
    x = get_family(name).sample(net, z, c)
    assert x.shape == (2, 3, cfg.resolution, cfg.resolution)
    assert x.abs().max() <= 1


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_stable_weight_names(name):
    keys = sorted(build_network(TINY[name], T).state_dict())
    assert (len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]) == WEIGHT_NAMES[name]


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_expected_pixels(name):
    cfg = TINY[name]
    net = _seeded(build_network(cfg, T))
    z, c = _inputs(cfg)
    with torch.no_grad():
        x = get_family(name).sample(net, z, c)
    np.testing.assert_allclose(x[1, :, 5, 4:7].flatten().numpy(), PIXELS[name], atol=2e-4)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_save_load_round_trip_through_sampling(tmp_path, name):
    path, net = _tiny_file(tmp_path, name)
    gf = read_generator(path)
    assert gf.format == 2 and gf.config == TINY[name]
    z, c = _inputs(TINY[name])
    with torch.no_grad():
        ref = get_family(name).sample(net, z, c)
        again = get_family(name).sample(gf.build(), z, c)
    assert torch.equal(ref, again)
    bundle = sampling.load_generator(path, device="cpu")
    imgs = sampling.generate(bundle, c.numpy(), z=z)
    expect = ((ref.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(imgs, expect)
    assert bundle.family == f"{name}/tiny"


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_model_file_holds_no_training_fields(tmp_path, name):
    path, _ = _tiny_file(tmp_path, name)
    meta = read_metadata(path)
    cfg = meta["charforge_config"]
    assert set(cfg) == set(TINY[name].to_dict())
    training_only = {f for f in Preset.__dataclass_fields__} - set(cfg)
    assert {"teacher", "lr", "batch", "steps", "seed", "augment"} <= training_only
    text = json.dumps(meta)
    assert '"teacher"' not in text and '"lr"' not in text


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_onnx_export_parity(tmp_path, name):
    from charforge.export.onnx import OnnxGenerator, export_generator_onnx

    path, net = _tiny_file(tmp_path, name)
    bundle = sampling.load_generator(path, device="cpu")
    onnx_path = export_generator_onnx(
        bundle, tmp_path / f"{name}.onnx"
    )  # check=True: parity at batch 1 and 3
    g = OnnxGenerator(onnx_path)
    z, c = _inputs(TINY[name])
    with torch.no_grad():
        ref = get_family(name).sample(net, z, c).numpy()
    assert np.abs(g.run(z.numpy(), c.numpy()) - ref).max() < 1e-4
    assert g.config == TINY[name].to_dict()  # the architecture only: no training fields reach the export


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_every_preset_of_the_family_builds_its_model_config(name):
    for p in PRESETS.values():
        if p.family == name:
            cfg = p.model_config()
            assert type(cfg) is get_family(name).config
            assert config_from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"family": "acgan", "g_width": 60000}, "g_width=60000: must be between"),
        ({"family": "acgan", "g_blocks": 10**6}, "g_blocks"),
        ({"family": "acgan", "z_dim": "128"}, "z_dim='128': expected an integer"),
        ({"family": "acgan", "lr": 0.1}, "unknown fields lr"),
        ({"family": "nope"}, "valid families are"),
        (["acgan"], "expected a JSON object"),
    ],
)
def test_bad_model_configs_are_refused_before_building(bad, match):
    with pytest.raises(UserError, match=match):
        config_from_dict(bad)


def test_a_huge_network_is_refused_without_allocating():
    cfg = ACGANConfig(resolution=1024, g_width=4096, g_blocks=64, g_upscalers=4)
    with pytest.raises(UserError, match="parameters is over the limit"):
        build_network(cfg, T)
