"""Small building blocks shared by the generator families: residual blocks, init, shape checks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def assert_shape(t: torch.Tensor, shape: Sequence[int | None], name: str = "tensor") -> None:
    """Cheap check at module boundaries; None matches any size."""
    if t.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        raise AssertionError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """Gaussian init N(0, 0.02) for conv/dense weights, as in the make.girls.moe paper (§5.1.1)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_he(module: nn.Module, slope: float = 0.2) -> None:
    """He-normal init for LeakyReLU nets without normalisation (our residual D).

    The paper's N(0, 0.02) shrinks activations by ~3x per conv when nothing renormalises them: through the
    7+ convs of the norm-free D the tag head saw almost no signal, and its classification loss stayed at
    chance for the first 150+ steps. With He init it falls from 14 to 7 in 125 steps (same data, lr 2e-4).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CondBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose scale and shift also depend on the tag vector (conditional BN, as in SNGAN/BigGAN):
    y = BN(x) * (1 + gamma(c)) + beta(c), gamma and beta linear in c. The tag map starts at zero, so the layer
    starts as plain BN and keeps its state-dict names: a plain-BN generator loads into it (fine-tuning)."""

    def __init__(self, ch: int, n_tags: int):
        super().__init__(ch)
        self.embed = nn.Linear(n_tags, 2 * ch, bias=False)
        nn.init.zeros_(self.embed.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is None:
            return super().forward(x)
        gamma, beta = self.embed(c.to(x.dtype)).chunk(2, dim=1)  # (B, C) each
        if self.training or self.running_var is None:
            y = super().forward(x)
            return y * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        # inference: BN's running-statistics affine and the tag affine folded into one scale and shift per
        # image and channel, one pass over x instead of three (same result up to rounding)
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)  # (C,)
        shift = self.bias - self.running_mean * scale
        s, t = scale * (1 + gamma), shift * (1 + gamma) + beta  # (B, C)
        return torch.addcmul(t[:, :, None, None], x, s[:, :, None, None])


def to_memory_format(net: nn.Module, fmt: torch.memory_format) -> nn.Module:
    """`net.to(memory_format=fmt)`, except that submodules marked `plain_layout = True` keep their 4-D weights
    in the plain (NCHW) layout under channels_last. On one CPU core oneDNN runs convs on tiny feature maps
    (4x4 and smaller, wide channels) faster in NCHW, while the large maps before them gain from channels_last;
    the network's forward converts its activations where the layouts meet. Values are unchanged."""
    net = net.to(memory_format=fmt)
    if fmt == torch.channels_last:
        for m in net.modules():
            if getattr(m, "plain_layout", False):
                for q in m.parameters():
                    if q.dim() == 4:
                        q.data = q.data.contiguous()
    return net


def norm2d(ch: int, n_tags: int = 0) -> nn.BatchNorm2d:
    """Plain BN, or tag-conditional BN when n_tags > 0."""
    return CondBatchNorm2d(ch, n_tags) if n_tags else nn.BatchNorm2d(ch)


def run_conditioned(seq: nn.Sequential, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """Run a Sequential, handing the tag vector to its conditional-BN layers."""
    for m in seq:
        x = m(x, c) if isinstance(m, CondBatchNorm2d) else m(x)
    return x


class GenResBlock(nn.Module):
    """SRResNet block: conv-BN-ReLU-conv-BN plus identity. With n_tags > 0 the BNs are tag-conditional."""

    def __init__(self, ch: int, n_tags: int = 0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, bias=False),
            norm2d(ch, n_tags),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1, bias=False),
            norm2d(ch, n_tags),
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return x + run_conditioned(self.body, x, c)


class DiscResBlock(nn.Module):
    """Discriminator block without batch norm (it would couple samples inside the gradient penalty)."""

    def __init__(self, ch: int, slope: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1),
        )
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class SubPixelUp(nn.Module):
    """x2 upscaler: conv to 4C channels, PixelShuffle, BN, ReLU. (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, ch: int, n_tags: int = 0, antialias: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch * 4, 3, padding=1, bias=False),
            nn.PixelShuffle(2),
            norm2d(ch, n_tags),
            nn.ReLU(inplace=True),
        )
        self.aa = Blur3(ch) if antialias else None  # outside `body`, so the state-dict names do not move

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            x = self._conv_shuffle_nhwc(x)  # channels_last data (training on CPU)
        else:
            x = self.body[1](self.body[0](x))  # (B, C, 2H, 2W)
        if self.aa is not None:
            x = self.aa(x)
        return run_conditioned(self.body[2:], x, c)

    def _conv_shuffle_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """conv + PixelShuffle for channels_last input, the same numbers in a cheaper memory order.

        PixelShuffle reads output pixel (c, 2h+i, 2w+j) from conv channel 4c + 2i + j. On channels_last data
        torch's pixel_shuffle (and, in the backward, pixel_unshuffle) gathers single floats at a stride of 4,
        which costs as much as the conv itself at 64 px on one core. Here the conv's output channels are
        reordered to (i, j, c) by permuting the weight, so each pixel's (j, c) run of 2C floats is already
        contiguous and the shuffle is a copy of whole runs. Each output channel is the same dot product as
        before, so the result equals the plain path (tests/models/test_blocks_fast.py)."""
        conv = self.body[0]
        w = conv.weight  # (4C, Cin, k, k), out channel 4c + 2i + j
        c = w.shape[0] // 4
        w = w.view(c, 4, *w.shape[1:]).transpose(0, 1).reshape(w.shape)  # out channel (2i + j) * C + c
        y = conv._conv_forward(x, w, None if conv.bias is None else conv.bias.view(c, 4).t().reshape(-1))
        b, _, h, wd = y.shape
        t = y.permute(0, 2, 3, 1).reshape(b, h, wd, 2, 2, c)  # a view of the NHWC memory: (b, h, w, i, j, c)
        t = t.permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * wd, c)  # (b, h, i, w, j, c): copies 2C-runs
        return t.permute(0, 3, 1, 2)  # (B, C, 2H, 2W), channels_last


class Blur3(nn.Module):
    """Fixed 3x3 binomial low-pass ([1, 2, 1] outer product / 16) per channel. After a PixelShuffle it removes
    the 2-px checkerboard that the four interleaved sub-pixel filters leave when they disagree."""

    def __init__(self, ch: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer(
            "kernel", (k[:, None] * k[None, :] / 16).expand(ch, 1, 3, 3).clone(), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        return torch.nn.functional.conv2d(pad, self.kernel.to(x.dtype), groups=x.shape[1])
