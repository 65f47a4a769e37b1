"""The `learned` embedder: a small CNN charforge trains on a creator's own renders.

Objective: parameter regression (cross-entropy per categorical block, MSE on normalised continuous values)
read from the L2-normalised embedding, so the embedding has to carry everything that tells two settings
apart. Training runs under bf16 autocast only where the CPU has native bf16 (on AVX2-only CPUs it is ~10x slower
than fp32, so there it runs in fp32 and says so once). Augmentation (mild colour jitter, small shifts and scale, blur, optional grayscale) makes it robust
to drawings and crops that are not pixel-exact renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charforge.core.device import use_bf16
from charforge.utils.progress import progress


@dataclass
class EncoderConfig:
    in_size: int = 64  # input side the encoder sees, px (inputs are resized to it)
    width: int = 16  # channels after the first stage; doubles per stage
    stages: int = 4  # stride-2 stages (64 px -> 4x4 map)
    dim: int = 128  # embedding size
    out_dim: int = 1  # length of the parameter vector the regression head predicts (space.vector_dim)


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        layers, c_in = [], 3
        for i in range(cfg.stages):
            c = cfg.width * 2 ** min(i, 3)
            layers += [nn.Conv2d(c_in, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i > 0:  # a second conv per stage, skipped at full resolution where it would cost the most
                layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        side = cfg.in_size // 2**cfg.stages
        self.proj = nn.Linear(c_in * side * side, cfg.dim)
        self.head = nn.Sequential(nn.Linear(cfg.dim, 256), nn.ReLU(inplace=True), nn.Linear(256, cfg.out_dim))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, S, S) in [0, 1] -> (B, dim) unit vectors."""
        h = self.convs(x * 2 - 1)  # (B, C, S/16, S/16)
        return F.normalize(self.proj(h.flatten(1)).float(), dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(x)
        return e, self.head(e)


def optimiser_step(opt: torch.optim.Optimizer, sched, loss: torch.Tensor, bar, fmt: str = ".4f") -> None:
    """One step of the f2p training loops: backward, optimiser and schedule step, progress bar update."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    bar.set_postfix(loss=f"{loss.item():{fmt}}")
    bar.update(1)


def warmup_cosine(
    opt: torch.optim.Optimizer, total: int, warmup: float = 0.05
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first `warmup` fraction of `total` steps, then cosine decay to zero."""
    w = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        return 0.5 * (1 + np.cos(np.pi * min(1.0, (step - w) / max(1, total - w))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, size, size) float in [0, 1], area-resized."""
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear", align_corners=None
        )
    return x


@dataclass
class AugmentConfig:
    jitter: float = 0.08  # max relative change of brightness / contrast / saturation
    shift: float = 0.05  # max translation, fraction of the image side
    scale: float = 0.06  # max relative zoom in or out
    blur_p: float = 0.3  # probability of a 3x3 blur
    gray_p: float = 0.0  # probability of grayscale (raise it for line drawings)


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Random photometric + geometric changes to a (B, 3, S, S) batch in [0, 1]."""
    b = x.shape[0]

    def u(*shape):  # uniform in [-1, 1]
        return torch.rand(*shape, generator=g) * 2 - 1

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + cfg.jitter * u(b, 1, 1, 1)) + mean * (1 + cfg.jitter * u(b, 1, 1, 1))
    gray = x.mean(dim=1, keepdim=True)
    x = gray + (x - gray) * (1 + cfg.jitter * u(b, 1, 1, 1))
    s = 1 + cfg.scale * u(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = s, s
    theta[:, :, 2] = cfg.shift * 2 * u(b, 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    blur = (torch.rand(b, generator=g) < cfg.blur_p).view(b, 1, 1, 1)
    x = torch.where(blur, F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), x)
    gmask = (torch.rand(b, generator=g) < cfg.gray_p).view(b, 1, 1, 1)
    x = torch.where(gmask, x.mean(dim=1, keepdim=True).expand_as(x), x)
    return x.clamp(0, 1)


def mlp_trunk(in_dim: int, hidden: int, depth: int) -> nn.Sequential:
    """`depth` Linear+SiLU layers of width `hidden`: the shared body of the imitator and the translator."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(in_dim, hidden), nn.SiLU()]
        in_dim = hidden
    return nn.Sequential(*layers)


def param_loss(
    pred: torch.Tensor, target: torch.Tensor, cat_slices: list[slice], n_cont: int
) -> torch.Tensor:
    """Cross-entropy per categorical block + MSE on continuous (both over the encoded vector)."""
    loss = pred.new_zeros(())
    for sl in cat_slices:
        loss = loss + F.cross_entropy(pred[:, sl], target[:, sl].argmax(1))
    if n_cont:  # summed over parameters, weight 10 each: a guess (MSE 1/12) then weighs like a 2-way CE guess
        loss = loss + 10.0 * (pred[:, -n_cont:] - target[:, -n_cont:]).pow(2).mean(0).sum()
    return loss


@dataclass
class EncoderTrainConfig:
    steps: int = 3000  # optimiser steps
    batch: int = 64  # images per step
    lr: float = 2e-3  # AdamW peak learning rate (10% warm-up, then cosine decay to 0)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    seed: int = 0
    bf16: bool = (
        True  # bf16 autocast where the CPU computes it natively (charforge.core.device.use_bf16), else fp32
    )


def train_encoder(
    images: np.ndarray,
    vectors: np.ndarray,
    cat_slices: list[slice],
    n_cont: int,
    enc_cfg: EncoderConfig,
    train_cfg: EncoderTrainConfig,
    aug: AugmentConfig | None = None,
) -> Encoder:
    """Fit an Encoder on (N, S, S, 3) uint8 renders and their (N, V) encoded parameter vectors."""
    torch.manual_seed(train_cfg.seed)
    g = torch.Generator().manual_seed(train_cfg.seed)
    net = Encoder(enc_cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    sched = warmup_cosine(opt, train_cfg.steps, 0.1)
    aug = aug or AugmentConfig()
    vec = torch.from_numpy(np.asarray(vectors, np.float32))
    bf16 = use_bf16("cpu", train_cfg.bf16, what="f2p embedder training")
    net.train()
    with progress(train_cfg.steps, desc="train learned embedder", unit="step") as bar:
        for _ in range(train_cfg.steps):
            idx = torch.randint(0, len(images), (min(train_cfg.batch, len(images)),), generator=g)
            x = augment(to_tensor(images[np.sort(idx.numpy())], enc_cfg.in_size), aug, g)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                _, pred = net(x)
            loss = param_loss(pred.float(), vec[np.sort(idx.numpy())], cat_slices, n_cont)
            optimiser_step(opt, sched, loss, bar, ".3f")
    return net.eval()
