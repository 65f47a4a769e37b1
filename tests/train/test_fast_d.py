"""The trainer's D fast paths (preset d_fast; train.fast_d): same numbers as torch's modules up to float rounding,
same state dict, and the penalty's double backward no longer runs an all-zero pass through D's forward graph."""

import copy
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from charforge.models.acgan import ResNetDiscriminator
from charforge.models.blocks import to_memory_format
from charforge.train.fast_d import PenaltyLeakyReLU, TapConv2d, speed_up_discriminator
from charforge.train.loop import Trainer, TrainOptions
from tests.train.test_train_resume import one_thread, tiny_data  # noqa: F401  (one_thread: an autouse fixture)


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def pair(fmt=torch.contiguous_format):
    torch.manual_seed(0)
    # 64 px, 5 stages: the last 4x4/2 conv reads a 2x2 map, as in acgan-64-cpu
    d = ResNetDiscriminator(n_tags=5, image_size=64, width=4, stages=5, blocks=1, max_width=16)
    d = to_memory_format(d, fmt)
    fast = copy.deepcopy(d)
    assert speed_up_discriminator(fast) == 22
    # 16 leaky ReLUs (the stem's; per stage 2 in the residual block and 1 after the downsampling conv) and the
    # 6 4x4/2 convs (the last one reads a 2x2 map)
    assert sum(type(m) is PenaltyLeakyReLU for m in fast.modules()) == 16
    assert sum(type(m) is TapConv2d for m in fast.modules()) == 6
    return d, fast


def penalty_grads(d, x, r1=False):
    """DRAGAN (or R1) as the loss computes it: grad of D w.r.t. its input, then backward into D's weights."""
    x = x.detach().requires_grad_(True)
    adv, _ = d(x)
    (g,) = torch.autograd.grad(adv.sum(), x, create_graph=True)
    gp = g.flatten(1).pow(2).sum(1).mean() if r1 else ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    params = list(d.parameters())
    torch.autograd.backward(gp, inputs=params)
    out = [None if q.grad is None else q.grad.clone() for q in params]  # the tag head takes no part
    d.zero_grad(set_to_none=True)
    return gp.detach(), out


def close(a, b, rtol=1e-5):
    scale = b.abs().max().clamp_min(1e-12)
    assert (a - b).abs().max() / scale < rtol


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
def test_fast_d_gives_torch_modules_numbers(fmt):
    d, fast = pair(fmt)
    assert list(d.state_dict()) == list(fast.state_dict())  # checkpoints and resume see the same names
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 64, 64, generator=g).contiguous(memory_format=fmt)
    # first-order passes: D's phase (weights) and G's phase (input)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (aa, ca), (ab, cb) = d(xa), fast(xb)
    close(ab, aa)
    close(cb, ca)
    (aa.square().sum() + ca.sum()).backward()
    (ab.square().sum() + cb.sum()).backward()
    close(xb.grad, xa.grad)
    for qa, qb in zip(d.parameters(), fast.parameters()):
        close(qb.grad, qa.grad)
    d.zero_grad(set_to_none=True)
    fast.zero_grad(set_to_none=True)
    # the penalties' double backward
    for r1 in (False, True):
        (pa, ga), (pb, gb) = penalty_grads(d, x, r1), penalty_grads(fast, x, r1)
        close(pb, pa)
        # a bias enters D's input gradient only through the leaky ReLUs' masks: its penalty gradient is 0, which
        # torch's conv fills in as zeros and the matrix product leaves unset (None): the same sum in the step
        assert sum(a is not None and a.abs().max() > 0 for a in ga) > 10
        for a, b in zip(ga, gb):
            if a is None or b is None:
                assert all(t is None or not t.any() for t in (a, b))
            else:
                close(b, a, rtol=1e-4)


def test_penalty_skips_the_all_zero_backward():
    d, fast = pair(torch.channels_last)
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    counts = []
    for net in (d, fast):
        with CountOps() as c:
            penalty_grads(net, x)
        counts.append(c.n)
    # torch's leaky ReLU records a derivative of its backward w.r.t. its input (zeros), and in the penalty's
    # second backward that zero gradient flows back through every conv of the forward graph (weights and inputs) for nothing
    assert counts[1]["convolution_backward"] < counts[0]["convolution_backward"]
    assert counts[1]["leaky_relu_backward"] < counts[0]["leaky_relu_backward"]


def test_trainer_swaps_only_with_d_fast(tmp_path):
    from charforge.train.presets import resolve_preset

    data = tiny_data(tmp_path / "ds")

    def trainer(run, **over):
        p = resolve_preset("tiny", {"channels_last": True, **over})
        return Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False))

    off, on = trainer(tmp_path / "off"), trainer(tmp_path / "on", d_fast=True)
    assert not any(isinstance(m, PenaltyLeakyReLU) for m in off.D.modules())
    assert any(isinstance(m, PenaltyLeakyReLU) for m in on.D.modules())
    a, b = off.train_step(0), on.train_step(0)  # step 0 runs the penalty (gp_every divides 0)
    assert a.keys() == b.keys() and "D_gp" in a
    for k in a:
        assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-5, abs=1e-6), k
    for (ka, va), (kb, vb) in zip(off.D.state_dict().items(), on.D.state_dict().items()):
        assert ka == kb
        torch.testing.assert_close(vb, va, rtol=0, atol=2 * on.p.lr + 1e-7)  # one Adam step apart at most
