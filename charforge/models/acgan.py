"""make.girls.moe generator and discriminator: SRResNet-like G, residual D without batch norm.

G: [z (Z,) ++ tags c (T,)] -> dense -> (W, S0, S0) -> n residual blocks -> BN, ReLU, + long skip
   -> `upscalers` sub-pixel x2 steps -> conv -> tanh.  S = S0 * 2**upscalers.
   With cond_norm every BN is tag-conditional (scale and shift linear in c), so the tags reach every layer,
   not only the dense input: fine colour detail such as eye colour is set where it is drawn.
   With antialias each sub-pixel upscaler is followed by a fixed 3x3 low-pass (see blocks.Blur3).
   With top_blocks > 0, that many residual blocks run at the output resolution after the last upscaler,
   before the output conv (capacity where outlines are drawn; they start as the identity).
D: conv 4x4/2 -> `stages` x [blocks x DiscResBlock, conv 4x4/2 doubling width] -> flatten ->
   a real/fake logit (B,) and tag logits (B, T).
   With highpass, a second small branch reads the Laplacian of the image at full resolution (the first conv's
   stride 2 cannot see 1-px detail) and adds its own term to the real/fake logit (see HighPassBranch).
"""

from __future__ import annotations

import torch
from torch import nn

from charforge.models.blocks import (
    CondBatchNorm2d,
    DiscResBlock,
    GenResBlock,
    SubPixelUp,
    assert_shape,
    init_he,
    init_normal,
    norm2d,
    run_conditioned,
)


class SRResNetGenerator(nn.Module):
    def __init__(
        self,
        *,
        z_dim: int,
        n_tags: int,
        image_size: int,
        width: int = 64,
        blocks: int = 16,
        upscalers: int = 2,
        final_kernel: int = 9,
        cond_norm: bool = False,
        antialias: bool = False,
        top_blocks: int = 0,
    ):
        super().__init__()
        if image_size % (2**upscalers):
            raise ValueError(f"image_size {image_size} is not divisible by 2**upscalers ({2**upscalers})")
        self.z_dim, self.n_tags, self.image_size, self.width = z_dim, n_tags, image_size, width
        self.base = image_size // 2**upscalers
        self.dense = nn.Linear(z_dim + n_tags, width * self.base * self.base)
        k = n_tags if cond_norm else 0  # tag-conditional BN everywhere when cond_norm
        self.head = nn.Sequential(norm2d(width, k), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[GenResBlock(width, k) for _ in range(blocks)])
        self.tail = nn.Sequential(norm2d(width, k), nn.ReLU(inplace=True))
        self.up = nn.Sequential(*[SubPixelUp(width, k, antialias) for _ in range(upscalers)])
        # absent (not an empty list) when 0, so older files' state-dict names are exactly this network's
        self.top = nn.ModuleList([GenResBlock(width, k) for _ in range(top_blocks)]) if top_blocks else None
        self.out = nn.Conv2d(width, 3, final_kernel, padding=final_kernel // 2)
        init_normal(self)
        for m in self.modules():
            if isinstance(m, CondBatchNorm2d):
                nn.init.zeros_(m.embed.weight)  # starts as plain BN (init_normal touched it)
        for block in self.top or []:
            nn.init.zeros_(block.body[-1].weight)  # last BN scale 0: each block starts as the identity

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        assert_shape(z, (None, self.z_dim), "z")
        h = torch.cat([z, c.to(z.dtype)], dim=1) if self.n_tags else z  # (B, Z+T)
        h = self.dense(h).view(-1, self.width, self.base, self.base)  # (B, W, S0, S0)
        w_out = self.out.weight
        if w_out.is_contiguous(memory_format=torch.channels_last) and not w_out.is_contiguous():
            # a channels_last G (training on CPU): the trunk's skips add to this tensor, and a plain-layout h
            # would make every residual sum plain-layout again, so each conv would convert its input
            h = h.contiguous(memory_format=torch.channels_last)
        cc = c.to(z.dtype) if self.n_tags else None
        h = run_conditioned(self.head, h, cc)
        t = h
        for block in self.blocks:
            t = block(t, cc)
        h = h + run_conditioned(self.tail, t, cc)  # long skip over the residual trunk
        for up in self.up:
            h = up(h, cc)
        for block in self.top or []:
            h = block(h, cc)  # (B, W, S, S)
        x = torch.tanh(self.out(h))  # (B, 3, S, S)
        assert_shape(x, (z.shape[0], 3, self.image_size, self.image_size), "G output")
        return x


PLAIN_LAYOUT_SIDE = 4  # D's feature maps this small run in NCHW even when the rest is channels_last


class ResNetDiscriminator(nn.Module):
    per_sample = (
        True  # no batch statistics: real and fake may share one forward pass (the trainer fuses them)
    )

    def __init__(
        self,
        *,
        n_tags: int,
        image_size: int,
        width: int = 32,
        stages: int = 5,
        blocks: int = 2,
        max_width: int = 1024,
        slope: float = 0.2,
        projection: bool = False,
        highpass: bool = False,
    ):
        super().__init__()
        final = image_size // 2 ** (stages + 1)
        if final < 1:
            raise ValueError(f"{stages} stages downsample a {image_size}px image below 1px")
        self.n_tags, self.image_size = n_tags, image_size
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(slope)]
        ch, side = width, image_size // 2
        self.plain_from = None  # index in `features` from which feature maps are at most PLAIN_LAYOUT_SIDE px
        for _ in range(stages):
            nxt = min(ch * 2, max_width)
            if side <= PLAIN_LAYOUT_SIDE and self.plain_from is None:
                self.plain_from = len(layers)
            layers += [DiscResBlock(ch, slope) for _ in range(blocks)]
            layers += [nn.Conv2d(ch, nxt, 4, stride=2, padding=1), nn.LeakyReLU(slope)]
            ch, side = nxt, side // 2
        self.features = nn.Sequential(*layers)
        for m in layers[len(layers) if self.plain_from is None else self.plain_from :]:
            m.plain_layout = True  # blocks.to_memory_format keeps these weights NCHW (a speed choice only)
        flat = ch * final * final
        self.adv = nn.Linear(flat, 1)
        self.cls = nn.Linear(flat, n_tags) if n_tags else None
        # projection term (Miyato & Koyama 2018): the real/fake logit also scores how well the picture fits the tag
        # vector it is shown with, so "purple eyes" drawn pinkish reads as fake, not just as a weak classification
        self.proj = nn.Linear(n_tags, flat, bias=False) if projection and n_tags else None
        self.highpass = HighPassBranch(width, slope) if highpass else None
        init_he(self, slope)
        if self.proj is not None:
            nn.init.zeros_(self.proj.weight)  # starts as the plain logit, so it can be added to a trained D
        if self.highpass is not None:
            nn.init.zeros_(self.highpass.head.weight)  # likewise: a trained D gains the branch unchanged

    def forward(
        self, x: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, 3, S, S); c (B, T) the tags x is paired with (used only by the projection term)."""
        assert_shape(x, (None, 3, self.image_size, self.image_size), "D input")
        h = x
        for i, layer in enumerate(self.features):
            if i == self.plain_from:  # the small maps run in NCHW (blocks.to_memory_format); no-op if already
                h = h.contiguous()
            h = layer(h)
        h = h.flatten(1)  # (B, C*f*f)
        adv = self.adv(h).squeeze(1)  # (B,)
        if self.proj is not None and c is not None:
            adv = adv + (self.proj(c.to(h.dtype)) * h).sum(dim=1)
        if self.highpass is not None:
            adv = adv + self.highpass(x)
        return adv, (self.cls(h) if self.cls is not None else None)  # (B,), (B, T)


class HighPassBranch(nn.Module):
    """D's view of fine detail: the per-channel Laplacian of the image (a fixed 3x3 filter, so flat colour and
    smooth shading give 0 and outlines give large values), a stride-1 conv at full resolution, two stride-2
    convs, then the mean over positions of each channel and a linear score. The mean pools statistics of the
    high-frequency content (how crisp and how noisy edges are) rather than where they are, which the main
    trunk already judges. (B, 3, S, S) -> (B,)."""

    def __init__(self, width: int, slope: float = 0.2):
        super().__init__()
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("kernel", lap.expand(3, 1, 3, 3).clone(), persistent=False)
        w = max(4, width)
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.LeakyReLU(slope),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.LeakyReLU(slope),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1),
            nn.LeakyReLU(slope),
        )
        self.head = nn.Linear(2 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")  # no false edge at the border
        hp = torch.nn.functional.conv2d(pad, self.kernel.to(x.dtype), groups=3)  # (B, 3, S, S)
        h = self.body(hp).mean(dim=(2, 3))  # (B, 2w)
        return self.head(h).squeeze(1)  # (B,)
