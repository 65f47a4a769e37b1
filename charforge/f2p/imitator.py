"""The imitator: a network that learns the creator + embedder, parameters -> (embedding, low-res image).

As in NetEase's Face-to-Parameter the imitator makes the creator differentiable; as in the Dragon's Dogma 2
study it maps parameters straight into the embedding space, so search never renders or embeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charforge.f2p.learned import mlp_trunk, optimiser_step, warmup_cosine
from charforge.utils.progress import progress


@dataclass
class ImitatorConfig:
    in_dim: int = 1  # encoded parameter vector length (space.vector_dim)
    emb_dim: int = 128  # embedding size of the embedder it imitates
    hidden: int = 512  # MLP width
    depth: int = 3  # hidden layers
    img_size: int = 32  # side of the low-res image output, px (power of two >= 8)
    img_ch: int = 32  # channels at the 4x4 start of the image decoder


class Imitator(nn.Module):
    def __init__(self, cfg: ImitatorConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = mlp_trunk(cfg.in_dim, cfg.hidden, cfg.depth)
        self.emb_head = nn.Linear(cfg.hidden, cfg.emb_dim)
        self.img_in = nn.Linear(cfg.hidden, cfg.img_ch * 16)
        ups, c = [], cfg.img_ch
        for _ in range(int(np.log2(cfg.img_size // 4))):
            ups += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c, max(c // 2, 16), 3, 1, 1),
                nn.SiLU(),
            ]
            c = max(c // 2, 16)
        self.decoder = nn.Sequential(*ups, nn.Conv2d(c, 3, 3, 1, 1))

    def embed(self, vec: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, emb_dim) unit vectors."""
        return F.normalize(self.emb_head(self.trunk(vec)), dim=-1)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Trunk features (B, hidden) -> (B, 3, img_size, img_size) in [0, 1]."""
        img = self.img_in(h).view(-1, self.cfg.img_ch, 4, 4)  # (B, C, 4, 4)
        return torch.sigmoid(self.decoder(img))

    def forward(self, vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(vec)  # (B, hidden)
        return F.normalize(self.emb_head(h), dim=-1), self.decode(h)


@dataclass
class ImitatorTrainConfig:
    steps: int = 4000  # optimiser steps
    batch: int = 256  # samples per step
    lr: float = 2e-3  # AdamW peak learning rate (warm-up, then cosine decay)
    img_weight: float = 1.0  # weight of the L1 image loss next to the embedding MSE
    img_batch: int = 32  # samples per step that also train the image decoder (it costs far more than the MLP)
    seed: int = 0


def low_res(images: np.ndarray, size: int, chunk: int = 2048) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, size, size) uint8 (kept small: 20k x 32 px is 60 MB)."""
    from charforge.f2p.learned import to_tensor

    out = [
        (to_tensor(images[i : i + chunk], size) * 255).round().byte() for i in range(0, len(images), chunk)
    ]
    return torch.cat(out) if out else torch.zeros((0, 3, size, size), dtype=torch.uint8)


def train_imitator(
    vectors: np.ndarray,
    embeddings: np.ndarray,
    images_low: torch.Tensor,
    cfg: ImitatorConfig,
    tcfg: ImitatorTrainConfig,
) -> Imitator:
    """vectors (N, V), embeddings (N, D) unit rows, images_low (N, 3, s, s) uint8 -> a trained Imitator."""
    torch.manual_seed(tcfg.seed)
    g = torch.Generator().manual_seed(tcfg.seed)
    net = Imitator(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=tcfg.lr, weight_decay=1e-5)
    sched = warmup_cosine(opt, tcfg.steps, 0.05)
    v = torch.from_numpy(np.asarray(vectors, np.float32))
    e = torch.from_numpy(np.asarray(embeddings, np.float32))
    with progress(tcfg.steps, desc="train imitator", unit="step") as bar:
        for _ in range(tcfg.steps):
            idx = torch.randint(0, len(v), (min(tcfg.batch, len(v)),), generator=g)
            h = net.trunk(v[idx])  # (B, hidden)
            emb = F.normalize(net.emb_head(h), dim=-1)
            sub = idx[: tcfg.img_batch]
            img_loss = (net.decode(h[: tcfg.img_batch]) - images_low[sub].float() / 255.0).abs().mean()
            loss = (emb - e[idx]).pow(2).sum(1).mean() + tcfg.img_weight * img_loss
            optimiser_step(opt, sched, loss, bar, ".4f")
    return net.eval()


@torch.no_grad()
def imitator_metrics(net: Imitator, vectors: np.ndarray, embeddings: np.ndarray) -> dict[str, float]:
    """Held-out fidelity: embedding MSE (squared distance summed over dims, mean over samples) and cosine."""
    pred = net.embed(torch.from_numpy(np.asarray(vectors, np.float32))).numpy()
    e = np.asarray(embeddings, np.float32)
    return {
        "embedding_mse": float(((pred - e) ** 2).sum(1).mean()),
        "embedding_cosine": float((pred * e).sum(1).mean()),
        "n": len(e),
    }
