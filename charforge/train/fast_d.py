"""Faster execution of the trainer's discriminator, same math (preset option d_fast; bench/results/train.md,
session 14).

Two swaps on the trainer's own D, in place; parameters, buffers and state-dict names stay the module's own, so
checkpoints, model files and a resume are those of an unswapped run:

- Each `nn.LeakyReLU` becomes `PenaltyLeakyReLU`: its backward reads the sign of the saved output as a
  constant. torch's own leaky ReLU records a derivative of its backward with respect to its input, which is
  zero; the DRAGAN/R1 penalty differentiates D's input gradient again (create_graph), so torch ran a second,
  all-zero backward through D's whole forward graph (weights and activations) for nothing. First derivatives
  are computed by the same kernel as before (y > 0 exactly where x > 0 for a positive slope), and the
  penalty's weight gradients equal the old ones up to float rounding.
- A 4x4 stride-2 pad-1 conv on a 2x2 map (D's last downsampling conv at 64 px) reads only the 4 central taps
  of its kernel, the rest fall on padding: `TapConv2d` runs it as one matrix product over those taps
  (a quarter of oneDNN's multiply-adds; other inputs go through the conv as before).

The plain fp32 loop of bench/bench_train.py builds its own D and keeps torch's modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _LeakyReLUConstSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        y = F.leaky_relu(x, slope)
        ctx.save_for_backward(y)
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        (y,) = ctx.saved_tensors
        # y detached: differentiable in gy (the penalty's second backward), with no edge back into D's forward
        return torch.ops.aten.leaky_relu_backward(gy, y.detach(), ctx.slope, False), None


class PenaltyLeakyReLU(nn.LeakyReLU):
    """nn.LeakyReLU (same slope; `inplace` ignored) whose backward treats the sign of its output as constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LeakyReLUConstSign.apply(x, self.negative_slope)


class TapConv2d(nn.Conv2d):
    """nn.Conv2d that runs a 4x4 stride-2 pad-1 conv on a 2x2 map (out: 1x1) as one matrix product."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[-2:] == (2, 2):
            # out = sum over the 2x2 input of weight[:, :, 1 + i, 1 + j] * x[:, :, i, j]
            w = self.weight[:, :, 1:3, 1:3].reshape(self.out_channels, -1)  # (out, in * 4), (c, i, j) order
            h = x.reshape(x.shape[0], -1)  # (B, in * 4), same order
            y = h @ w.t() if self.bias is None else torch.addmm(self.bias, h, w.t())
            return y.view(x.shape[0], self.out_channels, 1, 1)
        return super().forward(x)


def _tap_conv_fits(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.kernel_size == (4, 4)
        and m.stride == (2, 2)
        and m.padding == (1, 1)
        and m.dilation == (1, 1)
        and m.groups == 1
        and m.padding_mode == "zeros"
    )


def speed_up_discriminator(d: nn.Module) -> int:
    """Swap D's leaky ReLUs and 4x4/2 convs for the classes above, in place; returns how many were swapped."""
    n = 0
    for m in d.modules():
        if type(m) is nn.LeakyReLU:
            m.__class__ = PenaltyLeakyReLU
            n += 1
        elif _tap_conv_fits(m):
            m.__class__ = TapConv2d
            n += 1
    return n
