"""The training-speed paths of the ACGAN networks give the numbers of the plain paths.

Under channels_last (how the trainer runs them on CPU) the generator's upscalers shuffle sub-pixels with a
reordered conv instead of PixelShuffle, and the discriminator keeps its smallest feature maps in NCHW
(blocks.to_memory_format). The penalty's backward goes into D's weights only. Each must leave values and
gradients as they were, up to float rounding.
"""

import copy

import numpy as np
import pytest
import torch

from charforge.core.tags import make_girls_moe_schema
from charforge.models.acgan import PLAIN_LAYOUT_SIDE, ResNetDiscriminator, SRResNetGenerator
from charforge.models.blocks import SubPixelUp, to_memory_format
from charforge.train.gan import make_loss
from charforge.train.presets import build_discriminator, build_generator, resolve_preset

CL = torch.channels_last
SCHEMA = make_girls_moe_schema()


def grads(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: q.grad.clone() for k, q in net.named_parameters() if q.grad is not None}


@pytest.mark.parametrize("n_tags,antialias,bias", [(0, False, False), (5, True, False), (0, False, True)])
def test_channels_last_subpixel_matches_pixelshuffle(n_tags, antialias, bias):
    torch.manual_seed(0)
    plain = SubPixelUp(8, n_tags, antialias)
    if bias:  # the preset's conv has no bias; the fast path handles one anyway
        conv = plain.body[0]
        plain.body[0] = torch.nn.Conv2d(8, 32, 3, padding=1)
        plain.body[0].weight.data.copy_(conv.weight.data)
        torch.nn.init.normal_(plain.body[0].bias)
    fast = copy.deepcopy(plain).to(memory_format=CL)
    x = torch.randn(4, 8, 6, 6)
    c = torch.rand(4, n_tags) if n_tags else None
    xa = x.clone().requires_grad_(True)
    xb = x.clone().contiguous(memory_format=CL).requires_grad_(True)
    ya, yb = plain(xa, c), fast(xb, c)
    assert yb.is_contiguous(memory_format=CL)
    torch.testing.assert_close(yb, ya, rtol=0, atol=1e-5)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-5)
    ga, gb = grads(plain), grads(fast)
    assert ga.keys() == gb.keys()
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=1e-4, atol=1e-4, msg=k)
    # BN running statistics are updated from the same values
    torch.testing.assert_close(fast.body[2].running_var, plain.body[2].running_var)


def test_channels_last_generator_matches_plain_and_keeps_its_layout():
    torch.manual_seed(0)
    plain = SRResNetGenerator(z_dim=16, n_tags=6, image_size=32, width=8, blocks=2, final_kernel=3)
    fast = copy.deepcopy(plain).to(memory_format=CL)
    z, c = torch.randn(4, 16), torch.rand(4, 6)
    ya, yb = plain(z, c), fast(z, c)
    torch.testing.assert_close(yb, ya, rtol=0, atol=1e-5)
    assert yb.is_contiguous(memory_format=CL)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    ga, gb = grads(plain), grads(fast)
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=1e-4, atol=1e-4, msg=k)
    # the state dict is the plain network's (model files do not change)
    assert list(fast.state_dict()) == list(plain.state_dict())


def test_discriminator_keeps_small_maps_in_nchw_with_the_same_values():
    torch.manual_seed(0)
    plain = ResNetDiscriminator(n_tags=6, image_size=64, width=8, stages=5, blocks=1, max_width=64)
    mixed = to_memory_format(copy.deepcopy(plain), CL)
    # stage inputs are 32, 16, 8, 4, 2 px: the last two stages keep NCHW weights, the others channels_last
    side, stage_weights = 32, []
    for m in mixed.features:
        if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) and m.in_channels != 3:
            stage_weights.append((side, m.weight))
            side //= 2
    assert [s for s, _ in stage_weights] == [32, 16, 8, 4, 2]
    for s, w in stage_weights:
        assert w.is_contiguous() == (s <= PLAIN_LAYOUT_SIDE), s
        assert w.is_contiguous(memory_format=CL) == (s > PLAIN_LAYOUT_SIDE), s
    assert list(mixed.state_dict()) == list(plain.state_dict())

    x = torch.randn(4, 3, 64, 64)
    xa = x.clone().requires_grad_(True)
    xb = x.clone().contiguous(memory_format=CL).requires_grad_(True)
    (aa, ca), (ab, cb) = plain(xa), mixed(xb)
    torch.testing.assert_close(ab, aa, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cb, ca, rtol=1e-5, atol=1e-5)
    # a gradient penalty's double backward reaches the same weight gradients
    for xx, adv in ((xa, aa), (xb, ab)):
        (g,) = torch.autograd.grad(adv.sum(), xx, create_graph=True)
        (g.flatten(1).norm(dim=1) - 1).pow(2).mean().backward()
    ga, gb = grads(plain), grads(mixed)
    assert ga.keys() == gb.keys()
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=1e-4, atol=1e-5, msg=k)


def test_to_memory_format_plain_layout_only_under_channels_last():
    d = to_memory_format(
        ResNetDiscriminator(n_tags=0, image_size=32, width=4, stages=4, blocks=1), torch.contiguous_format
    )
    assert all(q.is_contiguous() for q in d.parameters())


@pytest.mark.parametrize("r1", [0.0, 2.0])
def test_penalty_backward_into_d_only_matches_a_full_backward(r1):
    """The DRAGAN/R1 penalty's backward fills D's weights only; they equal those of a plain .backward()."""
    p = resolve_preset("acgan-64-cpu", {"resolution": 32, "d_width": 8, "d_stages": 4, "r1_weight": r1})
    torch.manual_seed(0)
    G, D = build_generator(p, len(SCHEMA)), build_discriminator(p, len(SCHEMA))
    loss = make_loss(G, D, SCHEMA, p)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    tags = torch.from_numpy(SCHEMA.sample_training(4, np.random.default_rng(0)))
    out = loss.accumulate_gradients("Dreg", real, tags, None, None, torch.Generator().manual_seed(3))
    fast = grads(D)
    D.zero_grad(set_to_none=True)

    # the same terms, written out with a plain backward (which also fills the penalty input's .grad)
    g = torch.Generator().manual_seed(3)
    total = torch.zeros(())
    if r1 > 0:
        x = real.detach().requires_grad_(True)
        (gr,) = torch.autograd.grad(D(x)[0].sum(), x, create_graph=True)
        total = total + gr.flatten(1).pow(2).sum(dim=1).mean() * 0.5 * r1 * p.gp_every
    noise = 0.5 * real.std() * torch.rand(real.shape, generator=g)
    alpha = torch.rand(4, 1, 1, 1, generator=g)
    x_hat = (real + alpha * noise).detach().requires_grad_(True)
    (gd,) = torch.autograd.grad(D(x_hat)[0].sum(), x_hat, create_graph=True)
    gp = ((gd.flatten(1).norm(dim=1) - 1) ** 2).mean()
    total = total + gp * p.gp_weight * p.gp_every
    total.backward()
    assert x_hat.grad is not None  # the work the fast path skips
    torch.testing.assert_close(out["D_gp"], gp.detach())
    slow = grads(D)
    assert fast.keys() == slow.keys()
    for k in slow:
        torch.testing.assert_close(fast[k], slow[k], rtol=1e-5, atol=1e-6, msg=k)
