"""Generator/discriminator shapes, presets and the loss terms, on tiny networks."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charforge.core.tags import make_girls_moe_schema
from charforge.errors import UserError
from charforge.models.acgan import ResNetDiscriminator, SRResNetGenerator
from charforge.models.dcgan import DCGANDiscriminator, DCGANGenerator
from charforge.train.gan import make_loss
from charforge.train.losses import classification_loss
from charforge.train.presets import (
    PRESETS,
    build_discriminator,
    build_generator,
    parse_overrides,
    resolve_preset,
)

SCHEMA = make_girls_moe_schema()
T = len(SCHEMA)


def test_dcgan_layout_matches_the_study():
    g = DCGANGenerator(z_dim=100, n_tags=0, image_size=64, width=64)
    assert g.dense.out_features == 8 * 8 * 512
    ups = [m for m in g.up if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in ups] == [256, 128, 64]
    d = DCGANDiscriminator(n_tags=0, image_size=64, width=64)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 128]
    assert d.cls is None and d.adv.in_features == 128 * 8 * 8


@pytest.mark.parametrize("family", ["dcgan", "acgan"])
def test_tiny_forward_shapes_and_conditioning(family):
    torch.manual_seed(0)
    p = resolve_preset("tiny" if family == "acgan" else "tiny-dcgan")
    G, D = build_generator(p, T), build_discriminator(p, T)
    z, c = torch.randn(3, p.z_dim), torch.from_numpy(SCHEMA.sample_training(3, np.random.default_rng(0)))
    x = G(z, c)
    assert x.shape == (3, 3, 16, 16) and x.abs().max() <= 1
    adv, cls = D(x)
    assert adv.shape == (3,) and cls.shape == (3, T)
    G.eval()
    c2 = c.clone()
    c2[:, :13] = torch.roll(c2[:, :13], 1, dims=1)  # another hair colour
    assert not torch.allclose(G(z, c), G(z, c2)), "the tag vector must reach the output"


def test_acgan_128_has_three_upscalers_and_paper_depths():
    p = resolve_preset("acgan-128")
    g, d = build_generator(p, T), build_discriminator(p, T)
    assert len(g.up) == 3 and len(g.blocks) == 16
    assert sum(type(m).__name__ == "DiscResBlock" for m in d.modules()) == 10
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    g64 = SRResNetGenerator(
        z_dim=128, n_tags=T, image_size=64, width=8, blocks=1, upscalers=2, final_kernel=3
    )
    assert g64(torch.randn(2, 128), torch.zeros(2, T)).shape == (2, 3, 64, 64)


def test_shape_assert_names_the_boundary():
    d = ResNetDiscriminator(n_tags=T, image_size=16, width=4, stages=2, blocks=1, max_width=8)
    with pytest.raises(AssertionError, match="D input"):
        d(torch.zeros(1, 3, 8, 8))


def test_presets_and_overrides():
    assert {"dcgan-64", "acgan-64", "acgan-128", "acgan-64-cpu", "tiny"} <= set(PRESETS)
    o = parse_overrides(["lr=1e-4", "bf16=false", "batch=4", "augment=color"])
    p = resolve_preset("acgan-64", o)
    assert (p.lr, p.bf16, p.batch, p.augment) == (1e-4, False, 4, "color")
    with pytest.raises(UserError, match="Valid presets: dcgan-64"):
        resolve_preset("acgan-65")
    with pytest.raises(UserError, match="Valid fields: .*lr"):
        parse_overrides(["learning_rate=1"])
    with pytest.raises(UserError, match="expected a int"):
        parse_overrides(["batch=lots"])
    with pytest.raises(UserError, match="Valid kinds"):
        resolve_preset("tiny", {"augment": "rotate"})


def _reference_cls(logits, target):
    """Independent reference: loop over samples; CE per labelled group, BCE per independent tag."""
    total = 0.0
    for lg, tg in zip(logits.tolist(), target.tolist()):
        for sl in SCHEMA.group_slices():
            t = tg[sl]
            if sum(t) == 0:
                continue
            row = lg[sl]
            m = max(row)
            lse = m + math.log(sum(math.exp(v - m) for v in row))
            total += lse - row[t.index(1.0)]
        for v, y in zip(lg[SCHEMA.independent_slice], tg[SCHEMA.independent_slice]):
            total += max(v, 0) - v * y + math.log1p(math.exp(-abs(v)))
    return total / len(logits)


def test_classification_loss_masks_unlabelled_groups():
    rng = np.random.default_rng(3)
    target = torch.from_numpy(SCHEMA.sample_training(5, rng))
    target[1, :13] = 0  # image 1: hair colour unlabelled
    target[2, 13:23] = 0  # image 2: eye colour unlabelled
    logits = torch.randn(5, T, generator=torch.Generator().manual_seed(1))
    got = classification_loss(logits, target, SCHEMA, "group-ce").item()
    assert got == pytest.approx(_reference_cls(logits, target), rel=1e-5)
    bce = classification_loss(logits, target, SCHEMA, "bce").item()
    assert bce > 0 and bce != pytest.approx(got)


def test_loss_phases_accumulate_only_their_gradients():
    torch.manual_seed(0)
    p = resolve_preset("tiny")
    G, D = build_generator(p, T), build_discriminator(p, T)
    loss = make_loss(G, D, SCHEMA, p)
    assert loss.adv_weight == T  # lambda_adv = number of tags
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    tags = torch.from_numpy(SCHEMA.sample_training(4, rng))
    z = torch.randn(4, p.z_dim)
    out = loss.accumulate_gradients("D", real, tags, z, tags, g)
    assert all(q.grad is None for q in G.parameters()) and any(q.grad is not None for q in D.parameters())
    gp = loss.accumulate_gradients("Dreg", real, tags, z, tags, g)
    assert set(out) >= {"loss_D", "D_adv", "D_cls"} and gp["D_gp"] >= 0
    expected = loss.adv_weight * out["D_adv"] + out["D_cls"]
    assert out["loss_D"].item() == pytest.approx(expected.item(), rel=1e-6)
    D.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    gl = loss.accumulate_gradients("G", real, tags, z, tags, g)
    assert all(q.grad is not None for q in G.parameters() if q.requires_grad)
    assert gl["G_adv"].item() == pytest.approx(F.softplus(-D(G(z, tags))[0]).mean().item(), rel=1e-4)


def test_fused_real_fake_pass_matches_two_passes():
    """acgan's D has no batch statistics, so the trainer scores [fake; real] in one pass; it must equal two."""
    torch.manual_seed(0)
    p = resolve_preset("tiny")
    G, D = build_generator(p, T), build_discriminator(p, T)
    assert D.per_sample and not getattr(
        build_discriminator(resolve_preset("tiny-dcgan"), T), "per_sample", False
    )
    rng = np.random.default_rng(0)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    tags = torch.from_numpy(SCHEMA.sample_training(4, rng))
    z = torch.randn(4, p.z_dim)
    grads = []
    for fused in (True, False):
        D.per_sample = fused
        D.zero_grad(set_to_none=True)
        out = make_loss(G, D, SCHEMA, p).accumulate_gradients(
            "D", real, tags, z, tags, torch.Generator().manual_seed(0)
        )
        grads.append((out["loss_D"].item(), [q.grad.clone() for q in D.parameters()]))
    (l1, g1), (l2, g2) = grads
    assert l1 == pytest.approx(l2, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g1, g2))


def test_conditional_bn_generator_starts_as_plain_and_uses_tags():
    """g_cond_norm: a plain-BN generator's weights load into it and give the same images; once its tag maps
    are trained, the tags change the picture through every BN, not only through the dense input."""
    torch.manual_seed(0)
    plain = build_generator(resolve_preset("tiny"), T).eval()
    cond = build_generator(resolve_preset("tiny", {"g_cond_norm": True}), T).eval()
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.endswith("embed.weight") for k in missing)
    z = torch.randn(3, 16)
    c1 = torch.from_numpy(SCHEMA.sample_training(3, np.random.default_rng(0)))
    c2 = torch.from_numpy(SCHEMA.sample_training(3, np.random.default_rng(1)))
    with torch.no_grad():
        assert torch.allclose(cond(z, c1), plain(z, c1), atol=1e-6)
        for name, p in cond.named_parameters():
            if name.endswith("embed.weight"):
                p.normal_(0, 0.1)
        cond.dense.weight[:, 16:] = 0  # cut the input path: only conditional BN carries the tags now
        assert not torch.allclose(cond(z, c1), cond(z, c2))


def test_conditional_bn_generator_exports_to_onnx(tmp_path):
    from types import SimpleNamespace

    from charforge.export.onnx import export_generator_onnx, generator_parity

    torch.manual_seed(0)
    net = build_generator(resolve_preset("tiny", {"g_cond_norm": True}), T).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("embed.weight"):
                p.normal_(0, 0.1)
    bundle = SimpleNamespace(
        net=net,
        schema=SCHEMA,
        freqs=np.full(T, 0.2, np.float32),
        z_dim=16,
        image_size=16,
        config={"family": "acgan"},
        model_id="tiny-cbn",
        sha256="cd" * 32,
    )
    path = export_generator_onnx(bundle, tmp_path / "g.onnx")
    assert generator_parity(bundle, path, batch_sizes=(1, 4), seed=1) <= 1e-4


def test_antialias_keeps_state_names_and_removes_checkerboard():
    from charforge.models.blocks import Blur3

    plain = build_generator(resolve_preset("tiny"), T)
    aa = build_generator(resolve_preset("tiny", {"g_antialias": True}), T)
    assert list(aa.state_dict()) == list(plain.state_dict())  # the filter is fixed, not a weight
    checker = torch.ones(1, 2, 8, 8)
    checker[..., ::2, ::2] = checker[
        ..., 1::2, 1::2
    ] = -1  # the 2-px pattern of disagreeing sub-pixel filters
    smooth = Blur3(2)(checker)
    assert (
        smooth[..., 2:-2, 2:-2].abs().max() < 1e-6
        and Blur3(2)(torch.full((1, 2, 4, 4), 0.3)).sub(0.3).abs().max() < 1e-6
    )
    aa.load_state_dict(plain.state_dict())
    z, c = torch.randn(2, 16), torch.from_numpy(SCHEMA.sample_training(2, np.random.default_rng(0)))
    assert aa.eval()(z, c).shape == (2, 3, 16, 16)


def test_antialiased_generator_exports_to_onnx(tmp_path):
    from types import SimpleNamespace

    from charforge.export.onnx import export_generator_onnx, generator_parity

    torch.manual_seed(0)
    net = build_generator(resolve_preset("tiny", {"g_antialias": True, "g_cond_norm": True}), T).eval()
    bundle = SimpleNamespace(
        net=net,
        schema=SCHEMA,
        freqs=np.full(T, 0.2, np.float32),
        z_dim=16,
        image_size=16,
        config={"family": "acgan"},
        model_id="tiny-aa",
        sha256="ef" * 32,
    )
    path = export_generator_onnx(bundle, tmp_path / "g.onnx")
    assert generator_parity(bundle, path, batch_sizes=(1, 3), seed=2) <= 1e-4


def test_conditional_bn_inference_fold_matches_the_plain_formula():
    from charforge.models.blocks import CondBatchNorm2d

    torch.manual_seed(0)
    bn = CondBatchNorm2d(6, T)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.embed.weight.normal_(0, 0.2)
    bn.eval()
    x = torch.randn(3, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    c = torch.from_numpy(SCHEMA.sample_training(3, np.random.default_rng(4)))
    g, b = bn.embed(c).chunk(2, dim=1)
    ref = torch.nn.functional.batch_norm(
        x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
    )
    ref = ref * (1 + g[:, :, None, None]) + b[:, :, None, None]
    with torch.no_grad():
        out = bn(x, c)
    assert torch.allclose(out, ref, atol=1e-5) and out.is_contiguous(memory_format=torch.channels_last)


def test_cls_weight_g_scales_only_g_tag_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    tags = torch.from_numpy(SCHEMA.sample_training(4, rng))
    z = torch.randn(4, 16)
    outs = []
    for w in (1.0, 3.0):
        p = resolve_preset("tiny", {"cls_weight_g": w})
        torch.manual_seed(0)
        G, D = build_generator(p, T), build_discriminator(p, T)
        loss = make_loss(G, D, SCHEMA, p)
        outs.append(loss.accumulate_gradients("G", real, tags, z, tags, torch.Generator().manual_seed(0)))
    a, b = outs
    assert a["G_cls"].item() == pytest.approx(b["G_cls"].item()) and a["G_adv"].item() == pytest.approx(
        b["G_adv"].item()
    )
    assert b["loss_G"].item() == pytest.approx(a["loss_G"].item() + 2.0 * a["G_cls"].item(), rel=1e-5)
