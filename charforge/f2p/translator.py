"""The translator: embedding -> parameters in one pass (NetEase AAAI 2020; the DD2 amortised predictors).

One MLP trunk with a logits block per categorical parameter and a sigmoid per continuous one. Trained first
on the ground-truth parameters of renders, then fine-tuned on search-optimised targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charforge.f2p.learned import mlp_trunk, optimiser_step, param_loss, warmup_cosine
from charforge.utils.progress import progress


@dataclass
class TranslatorConfig:
    emb_dim: int = 128  # embedding size (input)
    cat_sizes: list[int] = field(default_factory=list)  # options per categorical parameter
    n_cont: int = 0  # continuous parameters
    hidden: int = 512  # MLP width
    depth: int = 3  # hidden layers


class Translator(nn.Module):
    def __init__(self, cfg: TranslatorConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = mlp_trunk(cfg.emb_dim, cfg.hidden, cfg.depth)
        self.out = nn.Linear(cfg.hidden, sum(cfg.cat_sizes) + cfg.n_cont)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, V): raw logits per categorical block, then continuous in [0, 1]."""
        raw = self.out(self.trunk(emb))
        n_logit = sum(self.cfg.cat_sizes)
        return torch.cat([raw[:, :n_logit], torch.sigmoid(raw[:, n_logit:])], dim=1)

    def cat_slices(self) -> list[slice]:
        out, s = [], 0
        for k in self.cfg.cat_sizes:
            out.append(slice(s, s + k))
            s += k
        return out

    @torch.no_grad()
    def predict(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, V) encoded vectors: one-hot per categorical (argmax), continuous in [0, 1]."""
        out = self(emb)
        for sl in self.cat_slices():
            block = out[:, sl]
            out[:, sl] = F.one_hot(block.argmax(1), block.shape[1]).float()
        return out


def translator_loss(net: Translator, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The same objective as the learned embedder's head: CE per categorical block + weighted continuous MSE."""
    return param_loss(pred, target, net.cat_slices(), net.cfg.n_cont)


@dataclass
class TranslatorTrainConfig:
    steps: int = 3000  # optimiser steps
    batch: int = 256  # samples per step
    lr: float = 2e-3  # AdamW peak learning rate (warm-up, then cosine decay)
    noise: float = 0.02  # std of Gaussian noise added to input embeddings (then re-normalised), robustness
    seed: int = 0


def train_translator(
    embeddings: np.ndarray,
    vectors: np.ndarray,
    cfg: TranslatorConfig,
    tcfg: TranslatorTrainConfig,
    init: Translator | None = None,
    desc: str = "train translator",
) -> Translator:
    """embeddings (N, D) unit rows, vectors (N, V) encoded targets -> a trained Translator."""
    torch.manual_seed(tcfg.seed)
    g = torch.Generator().manual_seed(tcfg.seed)
    net = init if init is not None else Translator(cfg)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=tcfg.lr, weight_decay=1e-5)
    sched = warmup_cosine(opt, tcfg.steps, 0.05)
    e = torch.from_numpy(np.asarray(embeddings, np.float32))
    v = torch.from_numpy(np.asarray(vectors, np.float32))
    with progress(tcfg.steps, desc=desc, unit="step") as bar:
        for _ in range(tcfg.steps):
            idx = torch.randint(0, len(e), (min(tcfg.batch, len(e)),), generator=g)
            x = F.normalize(e[idx] + tcfg.noise * torch.randn(e[idx].shape, generator=g), dim=1)
            loss = translator_loss(net, net(x), v[idx])
            optimiser_step(opt, sched, loss, bar, ".4f")
    return net.eval()
