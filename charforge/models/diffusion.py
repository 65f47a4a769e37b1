"""The diffusion family: a tag-conditioned denoiser and its samplers, on diffusers' UNet2DModel and schedulers.

Network: `TagUNet(x_t, t, tags)`. The tag vector (B, T) goes through a two-layer MLP into the UNet's time
embedding (diffusers' `class_embed_type="identity"`: the class embedding is added to the timestep embedding,
which every residual block receives as a per-channel shift). A tag vector is a multi-hot *set* of attributes,
not one class id, so an embedding table does not fit; a projection is the multi-label version of the same
thing, costs 0.1 M parameters, and gives the all-zero vector (no tag known) its own learned embedding: the
"unconditional" branch of classifier-free guidance. The last layer starts at zero, so an untrained model
ignores its tags rather than adding noise to every block.

Sampling (`sample`): DDIM (eta 0) or DPM-Solver++ (2M), deterministic given the initial noise, so the per-image
noise drawn from a seed reproduces the image exactly. Guidance, per step, with eps written for the model's
prediction in any parametrisation (v or epsilon; the combination is linear, so it is the same in both):

    pred = pred(c) + (w - 1) * (pred(c) - pred(0)) + w_neg * (pred(c) - pred(c + n))

pred(0) is the unconditional branch (the all-zero tag vector, which conditioning dropout trained), w the
guidance scale (1 = no guidance). The last term is the *added negative term*: n is the tags the user turned
off ("-hat"), c + n the same request with those tags switched on, so (pred(c) - pred(c + n)) is the direction
"the same character without a hat" and w_neg scales a push along it. The unconditional branch is kept (not
replaced by the negative one) so guidance still sharpens every other tag; the cost is a third batch half
when negatives are given. Batches run the branches as one concatenated forward pass.

img2img (`init` + `strength`): the init image is noised to the timestep a fraction `strength` into the schedule
(with the seed's noise) and denoised from there with the new tags; strength 0 returns the init, 1 ignores it.

The sampler loop takes any `denoise(x, t, tags) -> prediction` callable, so the ONNX backend runs this same
loop (diffusers' schedulers in Python) around an onnxruntime denoiser (charforge.export.onnx).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from charforge.errors import UserError
from charforge.models.config import DiffusionConfig

SAMPLERS = ("dpm++", "ddim")
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 2.0
DEFAULT_SAMPLER = "dpm++"
DEFAULT_STRENGTH = 0.6
MAX_STEPS = 1000
MAX_GUIDANCE = 30.0


class TagUNet(nn.Module):
    """denoiser(x_t (B,3,S,S), t (B,) int, tags (B,T)) -> the model's prediction (B,3,S,S) (v or epsilon)."""

    def __init__(self, cfg: DiffusionConfig, n_tags: int):
        super().__init__()
        from diffusers import UNet2DModel

        mults, attn = cfg.mults(), cfg.attn_levels()
        widths = tuple(cfg.u_width * m for m in mults)
        emb = widths[0] * 4  # diffusers' time-embedding size for positional timesteps
        self.n_tags = n_tags if cfg.conditional else 0
        self.charforge_config = cfg.to_dict()  # the samplers read the noise schedule from here
        down = tuple("AttnDownBlock2D" if i + 1 in attn else "DownBlock2D" for i in range(len(widths)))
        up = tuple("AttnUpBlock2D" if i + 1 in attn else "UpBlock2D" for i in reversed(range(len(widths))))
        self.unet = UNet2DModel(
            sample_size=cfg.resolution,
            in_channels=3,
            out_channels=3,
            block_out_channels=widths,
            layers_per_block=cfg.u_layers,
            down_block_types=down,
            up_block_types=up,
            norm_num_groups=next(g for g in (32, 16, 8, 4, 2, 1) if cfg.u_width % g == 0),
            attention_head_dim=min(32, max(widths)),
            class_embed_type="identity" if self.n_tags else None,
        )
        if self.n_tags:
            self.tag_proj = nn.Sequential(nn.Linear(self.n_tags, emb), nn.SiLU(), nn.Linear(emb, emb))
            nn.init.zeros_(self.tag_proj[2].weight)
            nn.init.zeros_(self.tag_proj[2].bias)
        else:
            self.tag_proj = None

    def forward(self, x: torch.Tensor, t: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        emb = None if self.tag_proj is None else self.tag_proj(tags.to(x.dtype))
        return self.unet(x, t, class_labels=emb, return_dict=False)[0]


def build(cfg: DiffusionConfig, n_tags: int) -> nn.Module:
    return TagUNet(cfg, n_tags)


def scheduler_config(cfg: DiffusionConfig | dict[str, Any]) -> dict[str, Any]:
    """The noise-schedule arguments shared by training (DDPM) and every sampler."""
    get = cfg.get if isinstance(cfg, dict) else lambda k: getattr(cfg, k)
    return {
        "num_train_timesteps": int(get("train_timesteps")),
        "beta_schedule": str(get("beta_schedule")),
        "prediction_type": str(get("prediction")),
    }


def training_scheduler(cfg: DiffusionConfig | dict[str, Any]):
    from diffusers import DDPMScheduler

    return DDPMScheduler(**scheduler_config(cfg), clip_sample=False)


def make_scheduler(cfg: DiffusionConfig | dict[str, Any], sampler: str, steps: int):
    """A fresh sampler scheduler with `steps` timesteps set ("trailing" spacing: the first step starts at the
    last training timestep, which few-step sampling needs to start from pure noise)."""
    sampler = check_sampler(sampler)
    steps = check_steps(steps)
    if sampler == "ddim":
        from diffusers import DDIMScheduler

        s = DDIMScheduler(
            **scheduler_config(cfg), clip_sample=True, set_alpha_to_one=False, timestep_spacing="trailing"
        )
    else:
        from diffusers import DPMSolverMultistepScheduler

        s = DPMSolverMultistepScheduler(
            **scheduler_config(cfg),
            algorithm_type="dpmsolver++",
            solver_order=2,
            timestep_spacing="trailing",
            lower_order_final=True,
        )
    with warnings.catch_warnings():  # diffusers' numpy-2 copy-keyword notice is not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        s.set_timesteps(steps)
    return s


def check_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise UserError(f"sampler {sampler!r}: valid samplers are {', '.join(SAMPLERS)}", field="sampler")
    return sampler


def check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise UserError(f"steps={steps!r}: expected an integer from 1 to {MAX_STEPS}", field="steps")
    return steps


def check_guidance(guidance: Any, name: str = "guidance") -> float:
    try:
        g = float(guidance)
    except (TypeError, ValueError):
        g = float("nan")
    if not 0.0 <= g <= MAX_GUIDANCE:
        raise UserError(
            f"{name}={guidance!r}: expected a number from 0 to {MAX_GUIDANCE:g} (1 = no guidance, "
            "higher = follows the tags more closely, less variety)",
            field=name,
        )
    return g


def check_strength(strength: Any) -> float:
    try:
        s = float(strength)
    except (TypeError, ValueError):
        s = float("nan")
    if not 0.0 <= s <= 1.0:
        raise UserError(
            f"strength={strength!r}: expected a number from 0 to 1 (0 = keep the init image, 1 = ignore it)",
            field="strength",
        )
    return s


Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def torch_denoiser(net: nn.Module) -> Denoiser:
    def run(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return net(x, t, c).float()

    return run


@torch.no_grad()
def sample_loop(
    denoise: Denoiser,
    cfg: DiffusionConfig | dict[str, Any],
    noise: torch.Tensor,
    tags: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    sampler: str = DEFAULT_SAMPLER,
    negative: torch.Tensor | None = None,
    negative_guidance: float | None = None,
    init: torch.Tensor | None = None,
    strength: float = DEFAULT_STRENGTH,
    callback: Callable[[int, int], Any] | None = None,
) -> torch.Tensor:
    """noise (B,3,S,S), tags (B,T) -> images (B,3,S,S) in [-1, 1]; see the module text for the maths.

    negative: (B,T) or (T,) 0/1, the tags to steer away from (None or all zero = no negative term).
    negative_guidance: w_neg, default = guidance. init: (B,3,S,S) in [-1, 1] for img2img at `strength`."""
    w = check_guidance(guidance)
    w_neg = w if negative_guidance is None else check_guidance(negative_guidance, "negative_guidance")
    sched = make_scheduler(cfg, sampler, steps)
    timesteps = sched.timesteps
    x = noise.float()
    if init is not None:
        s = check_strength(strength)
        n_run = min(len(timesteps), int(round(len(timesteps) * s)))
        if n_run == 0:
            return init.float().clamp(-1, 1)
        start = len(timesteps) - n_run
        timesteps = timesteps[start:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start)
        x = sched.add_noise(init.float(), x, timesteps[:1].repeat(len(x)))
    b = len(x)
    c = tags.float()
    branches = [c]
    if w != 1.0:
        branches.append(torch.zeros_like(c))
    neg_on = None
    if negative is not None:
        n = negative.float().expand_as(c)
        if bool((n > 0).any()) and w_neg != 0.0:
            neg_on = torch.clamp(c + n, 0, 1)
            branches.append(neg_on)
    cc = torch.cat(branches).to(x.device)
    for i, t in enumerate(timesteps):
        xin = torch.cat([x] * len(branches))
        tt = torch.full((len(xin),), int(t), dtype=torch.long, device=x.device)
        out = denoise(xin, tt, cc).float()
        pred = out[:b]
        k = 1
        guided = pred
        if w != 1.0:
            guided = guided + (w - 1.0) * (pred - out[b : 2 * b])
            k = 2
        if neg_on is not None:
            guided = guided + w_neg * (pred - out[k * b : (k + 1) * b])
        x = sched.step(guided, t, x, return_dict=False)[0]
        if callback is not None:
            callback(i + 1, len(timesteps))
    return x.clamp(-1, 1)


def sample(net: nn.Module, noise: torch.Tensor, tags: torch.Tensor, **opts: Any) -> torch.Tensor:
    """The family sampler: (net, noise (B,3,S,S), tags (B,T), **sampling options) -> (B,3,S,S) in [-1, 1]."""
    cfg = net_config(net)
    return sample_loop(torch_denoiser(net), cfg, noise, tags, **opts)


def net_config(net: nn.Module) -> dict[str, Any]:
    cfg = getattr(net, "charforge_config", None)
    if cfg is None:
        raise ValueError("a diffusion network built without build_network has no schedule config")
    return cfg
