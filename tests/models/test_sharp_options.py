"""The sharpness options (session 7): G's residual blocks at the output resolution, D's high-pass branch and
the R1 penalty. Each starts as the network it is added to, so the shipped model can be fine-tuned with it."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from charforge.core.tags import make_girls_moe_schema
from charforge.errors import UserError
from charforge.train.gan import make_loss
from charforge.train.presets import build_discriminator, build_generator, resolve_preset

SCHEMA = make_girls_moe_schema()
T = len(SCHEMA)


def _zc(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.from_numpy(SCHEMA.sample_training(n, np.random.default_rng(seed)))
    return torch.randn(n, 16, generator=g), c


def test_top_blocks_start_as_the_identity_and_then_change_the_output():
    torch.manual_seed(0)
    plain = build_generator(resolve_preset("tiny", {"g_cond_norm": True, "g_antialias": True}), T).eval()
    top = build_generator(
        resolve_preset("tiny", {"g_cond_norm": True, "g_antialias": True, "g_top_blocks": 2}), T
    )
    missing, unexpected = top.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("top.") for k in missing)
    top.eval()
    z, c = _zc()
    assert torch.equal(top(z, c), plain(z, c))  # the new blocks add exactly zero until trained
    with torch.no_grad():
        top.top[0].body[-1].weight.fill_(1.0)
    diff = (top(z, c) - plain(z, c)).abs().max() / plain(z, c).abs().max()
    assert diff > 0.01  # relative: an untrained G's output is tiny
    assert top(z, c).shape == (3, 3, 16, 16)


def test_highpass_branch_starts_silent_and_reads_fine_detail():
    torch.manual_seed(0)
    plain = build_discriminator(resolve_preset("tiny"), T)
    hp = build_discriminator(resolve_preset("tiny", {"d_highpass": True}), T)
    missing, _ = hp.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("highpass.") for k in missing)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.equal(hp(x)[0], plain(x)[0])  # zero-initialised head: a trained D gains it unchanged
    branch = hp.highpass
    flat = torch.full((1, 3, 16, 16), 0.4)
    ramp = torch.linspace(-1, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    checker = torch.ones(1, 3, 16, 16)
    checker[..., ::2, ::2] = checker[..., 1::2, 1::2] = -1

    def feats(t):
        pad = torch.nn.functional.pad(t, (1, 1, 1, 1), mode="replicate")
        return branch.body(torch.nn.functional.conv2d(pad, branch.kernel, groups=3)).abs().mean()

    # flat colour gives nothing; linear shading only at the border (replicate padding), 1-px detail a lot
    assert feats(flat) == 0 and feats(ramp) < 0.05 * feats(checker)
    with torch.no_grad():
        branch.head.weight.normal_()
    adv, _ = hp(checker)
    assert torch.isfinite(adv).all() and adv.shape == (1,)


def test_r1_penalty_is_gamma_half_squared_gradient_at_the_reals():
    p = resolve_preset("tiny", {"r1_weight": 2.0, "gp_weight": 0.0, "gp_every": 3})
    torch.manual_seed(0)
    G, D = build_generator(p, T), build_discriminator(p, T)
    loss = make_loss(G, D, SCHEMA, p)
    assert [ph.name for ph in loss.phases()] == ["D", "Dreg", "G"]
    assert loss.phases()[1].interval == 3
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    tags = torch.from_numpy(SCHEMA.sample_training(4, np.random.default_rng(1)))
    out = loss.accumulate_gradients("Dreg", real, tags, None, None, torch.Generator().manual_seed(0))
    assert "D_gp" not in out and out["D_r1"] > 0
    grads = lambda: [torch.zeros_like(q) if q.grad is None else q.grad.clone() for q in D.parameters()]  # noqa: E731
    got = grads()
    D.zero_grad(set_to_none=True)
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x)[0].sum(), x, create_graph=True)
    want = g.flatten(1).pow(2).sum(1).mean()
    assert float(out["D_r1"]) == pytest.approx(float(want.detach()), rel=1e-5)
    (want * 0.5 * 2.0 * 3).backward()
    for a, b in zip(got, grads()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert any(a.abs().sum() > 0 for a in got)
    # beside DRAGAN both terms are logged from the one regulariser phase
    both = make_loss(G, D, SCHEMA, resolve_preset("tiny", {"r1_weight": 1.0}))
    out = both.accumulate_gradients("Dreg", real, tags, None, None, torch.Generator().manual_seed(0))
    assert {"D_r1", "D_gp"} <= set(out)


@pytest.mark.parametrize(
    ("preset", "over", "field"),
    [
        ("tiny", {"r1_weight": -1.0}, "r1_weight"),
        ("tiny-dcgan", {"r1_weight": 1.0}, "r1_weight"),
        ("tiny-dcgan", {"d_highpass": True}, "d_highpass"),
        ("tiny", {"g_top_blocks": 9}, "g_top_blocks"),
    ],
)
def test_bad_settings_name_the_field(preset, over, field):
    with pytest.raises(UserError) as e:
        resolve_preset(preset, over)
    assert e.value.field == field or field in str(e.value)


def test_top_blocks_export_to_onnx(tmp_path):
    from charforge.export.onnx import export_generator_onnx, generator_parity

    torch.manual_seed(0)
    net = build_generator(
        resolve_preset("tiny", {"g_antialias": True, "g_cond_norm": True, "g_top_blocks": 1}), T
    )
    with torch.no_grad():
        net.top[0].body[-1].weight.fill_(0.5)
    bundle = SimpleNamespace(
        net=net.eval(),
        schema=SCHEMA,
        freqs=np.full(T, 0.2, np.float32),
        z_dim=16,
        image_size=16,
        config={"family": "acgan"},
        model_id="tiny-top",
        sha256="ab" * 32,
    )
    path = export_generator_onnx(bundle, tmp_path / "g.onnx")
    assert generator_parity(bundle, path, batch_sizes=(1, 3), seed=2) <= 1e-4
