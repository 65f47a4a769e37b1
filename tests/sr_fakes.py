"""A tiny upscaler for tests: non-zero tails, so it does more than bicubic."""

from __future__ import annotations

from pathlib import Path


def tiny_upscaler(path: Path, *, blocks: int = 2, up_channels: int = 8, model_id: str = "tiny-sr") -> Path:
    import torch

    from charforge.models.sr import SRConfig, SRNet, save_upscaler

    torch.manual_seed(0)
    net = SRNet(SRConfig(channels=8, blocks=blocks, up_channels=up_channels))
    with torch.no_grad():
        for t in net.tails.values():
            t.out.weight.normal_(0, 0.05)
    return save_upscaler(path, net.eval(), model_id=model_id, provenance={})
