"""Training recipe of the diffusion family: one network (the denoiser "U"), one phase ("denoise").

Each step: timesteps t ~ U{0..T-1}, noise eps ~ N(0, 1), x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps (DDPM's
forward process from diffusers' DDPMScheduler), the tag vector dropped to all-zero with probability
`cond_drop` (classifier-free guidance's unconditional branch), and the loss

    L = mean_b  w(t_b) * || U(x_t, t, c) - target ||^2

with target v = sqrt(a_t) eps - sqrt(1 - a_t) x_0 (v-prediction) or eps, and min-SNR-gamma weights
(Hang et al. 2023): w = min(SNR, gamma) / (SNR + 1) for v, min(SNR, gamma) / SNR for eps (gamma 0 = off).
All randomness comes from the trainer's per-step generator, so a resumed run replays the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from charforge.core.tags import TagSchema
from charforge.models.diffusion import training_scheduler
from charforge.train.losses import Phase
from charforge.train.presets import Preset, build_generator


class DiffusionLoss:
    def __init__(
        self,
        U: nn.Module,
        schema: TagSchema,
        *,
        prediction: str,
        cond_drop: float,
        min_snr_gamma: float,
        conditional: bool = True,
        autocast=None,
        memory_format=torch.contiguous_format,
        sched_config: dict[str, Any],
        **_unused: Any,
    ):
        import contextlib

        self.U, self.schema = U, schema
        self.prediction, self.cond_drop, self.gamma = prediction, float(cond_drop), float(min_snr_gamma)
        self.conditional = conditional
        self.autocast = autocast or contextlib.nullcontext
        self.memory_format = memory_format
        self.sched = training_scheduler(sched_config)
        ac = self.sched.alphas_cumprod.double()
        self.snr = (ac / (1 - ac)).float()  # (T,)
        self.aug_kinds: list[str] = []  # the trainer's ADA hook looks for it; diffusion uses no augmentation
        self.aug_p: float | None = None

    def phases(self) -> list[Phase]:
        return [Phase("denoise", "U")]

    def weights(self, t: torch.Tensor) -> torch.Tensor:
        snr = self.snr.to(t.device)[t]
        if self.gamma <= 0:
            return torch.ones_like(snr)
        clipped = torch.clamp(snr, max=self.gamma)
        return clipped / (snr + 1) if self.prediction == "v_prediction" else clipped / snr

    def accumulate_gradients(
        self,
        phase: str,
        real: torch.Tensor,
        real_tags: torch.Tensor,
        z: torch.Tensor,
        c: torch.Tensor,
        g: torch.Generator,
        gain: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        if phase != "denoise":
            raise ValueError(f"unknown phase {phase!r}")
        b, dev = len(real), real.device
        t = torch.randint(0, self.sched.config.num_train_timesteps, (b,), generator=g)
        eps = torch.randn(real.shape, generator=g)
        keep = (torch.rand(b, generator=g) >= self.cond_drop).float()[:, None]
        t, eps, keep = t.to(dev), eps.to(dev), keep.to(dev)
        x0 = real.float()
        x_t = self.sched.add_noise(x0, eps, t)
        if self.prediction == "v_prediction":
            target = self.sched.get_velocity(x0, eps, t)
        else:
            target = eps
        tags = real_tags.float() * keep if self.conditional else real_tags.float() * 0
        with self.autocast():
            pred = self.U(x_t.contiguous(memory_format=self.memory_format), t, tags)
        per = ((pred.float() - target) ** 2).mean(dim=(1, 2, 3))  # (B,)
        loss = (self.weights(t) * per).mean()
        (loss * gain).backward()
        return {"loss_U": loss.detach(), "U_mse": per.mean().detach()}


LOSS_FIELDS = ("cond_drop", "min_snr_gamma", "conditional")


@dataclass(frozen=True)
class DiffusionRecipe:
    generator: str = "U"

    def modules(self, p: Preset, n_tags: int) -> dict[str, nn.Module]:
        return {"U": build_generator(p, n_tags)}

    def loss(
        self, modules: dict[str, nn.Module], schema: TagSchema, p: Preset, **runtime: Any
    ) -> DiffusionLoss:
        runtime.pop("teacher", None)
        cfg = p.model_config()
        return DiffusionLoss(
            modules["U"],
            schema,
            prediction=cfg.prediction,
            sched_config=cfg.to_dict(),
            **{k: getattr(p, k) for k in LOSS_FIELDS},
            **runtime,
        )


DIFFUSION_RECIPE = DiffusionRecipe()
