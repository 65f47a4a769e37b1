"""The super-resolution network: one trunk at the input resolution, a x2 and a x4 tail.

Design (measured in docs/upscale.md): every heavy layer runs at the *input* resolution (a plain residual trunk
of 3x3 convolutions), and each tail upsamples with pixel shuffles through few channels, so a 64 -> 256 px image
costs about 3 GFLOP. The network predicts a residual over bicubic interpolation: the bicubic image carries the
colours, the network adds the outlines and edges that a 64 px render cannot hold. One file serves both scales.

A file is a safetensors with `charforge_kind = "upscaler"` and the `SRConfig` as JSON in its metadata; loading
never unpickles and every size is bounded before anything is allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from charforge.errors import UserError
from charforge.models.config import _bounded

KIND = "upscaler"
SCALES = (2, 4)


@dataclass
class SRConfig:
    """Exactly the constructor arguments of SRNet."""

    channels: int = 48  # trunk width (at the input resolution)
    blocks: int = 8  # residual blocks in the trunk
    up_channels: int = 24  # channels after the first pixel shuffle (x2 resolution)
    scales: list[int] = field(default_factory=lambda: list(SCALES))

    BOUNDS: ClassVar[dict[str, tuple[int, int, type]]] = {
        "channels": (4, 256, int),
        "blocks": (0, 64, int),
        "up_channels": (4, 256, int),
    }

    def to_dict(self) -> dict[str, Any]:
        return {"family": "sr", **asdict(self)}

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "upscaler config") -> SRConfig:
        if not isinstance(d, dict):
            raise UserError(f"{source}: expected a JSON object, got {type(d).__name__}")
        names = {"channels", "blocks", "up_channels", "scales"}
        unknown = sorted(set(d) - names - {"family"})
        if unknown:
            raise UserError(
                f"{source}: unknown fields {', '.join(unknown)} (valid: {', '.join(sorted(names))})"
            )
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        return cfg.validate(source=source)

    def validate(self, *, source: str = "upscaler config") -> SRConfig:
        for name, (lo, hi, typ) in self.BOUNDS.items():
            _bounded(name, getattr(self, name), lo, hi, typ, source)
        if not isinstance(self.scales, list) or not self.scales or any(s not in SCALES for s in self.scales):
            raise UserError(
                f"{source} scales={self.scales!r}: must be a non-empty list of 2 and/or 4", field="scales"
            )
        return self


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class _Tail(nn.Module):
    """Features at the input resolution -> an RGB residual at `scale` x: pixel shuffle x2 through
    `up` channels, then (x4) a second shuffle straight to RGB, or (x2) a 3x3 conv to RGB."""

    def __init__(self, c: int, up: int, scale: int):
        super().__init__()
        self.scale = scale
        self.up1 = nn.Conv2d(c, 4 * up, 3, padding=1)
        self.out = nn.Conv2d(up, 3 * (4 if scale == 4 else 1), 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.pixel_shuffle(self.up1(h), 2))
        y = self.out(y)
        return F.pixel_shuffle(y, 2) if self.scale == 4 else y


class SRNet(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 3, s*H, s*W), roughly [0, 1] (callers clamp)."""

    def __init__(self, cfg: SRConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        c = cfg.channels
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(c) for _ in range(cfg.blocks)])
        self.body = nn.Conv2d(c, c, 3, padding=1)
        self.tails = nn.ModuleDict({f"x{s}": _Tail(c, cfg.up_channels, s) for s in sorted(cfg.scales)})
        for t in self.tails.values():  # start as plain bicubic: the residual is zero
            nn.init.zeros_(t.out.weight)
            nn.init.zeros_(t.out.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x - 0.5)
        return h + self.body(self.blocks(h))

    def residual(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        key = f"x{scale}"
        if key not in self.tails:
            raise UserError(
                f"this upscaler has no x{scale} tail (it has {', '.join(sorted(self.tails))})", field="scale"
            )
        return self.tails[key](self.features(x))

    def forward(self, x: torch.Tensor, scale: int = 4) -> torch.Tensor:
        return bicubic(x, scale) + self.residual(x, scale).float()

    def forward_all(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every tail from one trunk pass (training): {scale: residual}."""
        h = self.features(x)
        return {int(k[1:]): t(h) for k, t in self.tails.items()}


def bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The base image the residual is added to (fp32, PyTorch's bicubic: a = -0.75, half-pixel centres)."""
    return F.interpolate(x.float(), scale_factor=scale, mode="bicubic", align_corners=False)


class FixedScale(nn.Module):
    """One scale of an SRNet as a single-input module (ONNX export): uint8-range float in, [0, 255] out."""

    def __init__(self, net: SRNet, scale: int):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x / 255.0, self.scale)
        return (y * 255.0).clamp(0, 255)


def count_params(cfg: SRConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in SRNet(cfg).parameters())


def save_upscaler(path: str | Path, net: SRNet, *, model_id: str, provenance: dict[str, Any]) -> Path:
    from charforge.models.io import save_model

    return save_model(
        path,
        net.state_dict(),
        kind=KIND,
        config=net.cfg.to_dict(),
        extra={"model_id": model_id, "provenance": provenance},
    )


def load_upscaler_file(path: str | Path) -> tuple[SRNet, dict[str, Any]]:
    """(SRNet in eval mode, decoded metadata). Names the file on any mismatch."""
    from charforge.models.io import load_model

    tensors, meta = load_model(path, kind=KIND)
    cfg = SRConfig.from_dict(meta.get("charforge_config"), source=f"{path}: config")
    net = SRNet(cfg)
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "the file is damaged or was written by another version"
        )
    return net.eval(), meta
