"""Model configs: exactly the arguments that rebuild a family's network, validated against bounds.

A model file stores one of these (as JSON), never a training preset: loading a generator needs no training
field, and an untrusted file cannot ask for a network that would not fit in memory (every size is bounded
here, before anything is allocated).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from charforge.errors import UserError

MAX_TAGS = 4096  # tags in a model's schema
MAX_RESOLUTION = 1024  # px
MAX_WIDTH = 4096  # channels
MAX_Z = 4096  # latent size
MAX_BLOCKS = 64  # residual blocks
MAX_PARAMS = 500_000_000  # network parameters a model file may ask for (2 GB in fp32)


def _bounded(name: str, value: Any, lo: int | float, hi: int | float, typ: type, source: str) -> None:
    ok = (
        isinstance(value, typ) and not isinstance(value, bool) if typ is not bool else isinstance(value, bool)
    )
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        kind = {int: "an integer", float: "a number", bool: "true or false"}.get(typ, typ.__name__)
        raise UserError(f"{source} {name}={value!r}: expected {kind}", field=name)
    if typ is not bool and not (lo <= value <= hi and math.isfinite(value)):
        raise UserError(f"{source} {name}={value!r}: must be between {lo} and {hi}", field=name)


@dataclass
class ModelConfig:
    """Base of every family's config. `family` names the registry entry that builds it."""

    family: ClassVar[str] = ""
    BOUNDS: ClassVar[dict[str, tuple[Any, Any, type]]] = {}

    resolution: int = 64  # output image side, px
    conditional: bool = True  # the network takes the tag vector

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dataclasses.asdict(self)}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "model config") -> ModelConfig:
        """Strict: a dict whose keys are this config's fields (plus 'family'); values checked against BOUNDS."""
        if not isinstance(d, dict):
            raise UserError(f"{source}: expected a JSON object, got {type(d).__name__}")
        names = set(cls.field_names())
        unknown = sorted(set(d) - names - {"family"})
        if unknown:
            raise UserError(
                f"{source}: unknown fields {', '.join(unknown)} for the {cls.family} family "
                f"(valid: {', '.join(sorted(names))})"
            )
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        cfg.validate(source=source)
        return cfg

    def validate(self, *, source: str = "model config") -> ModelConfig:
        bounds = {"resolution": (8, MAX_RESOLUTION, int), "conditional": (0, 1, bool), **self.BOUNDS}
        for name, (lo, hi, typ) in bounds.items():
            _bounded(name, getattr(self, name), lo, hi, typ, source)
        return self

    def noise_shape(self) -> tuple[int, ...]:
        """The per-image noise the family's sampler draws (standard normal)."""
        raise NotImplementedError


@dataclass
class GANGeneratorConfig(ModelConfig):
    z_dim: int = 128  # latent size

    def noise_shape(self) -> tuple[int, ...]:
        return (self.z_dim,)


@dataclass
class DCGANConfig(GANGeneratorConfig):
    """The DCGAN baseline's generator (seed 001)."""

    family: ClassVar[str] = "dcgan"
    BOUNDS: ClassVar[dict[str, tuple[Any, Any, type]]] = {
        "z_dim": (1, MAX_Z, int),
        "g_width": (1, MAX_WIDTH, int),
    }

    z_dim: int = 100
    g_width: int = 64  # channels of the last up-layer; the first has width * 2**(n_up)


@dataclass
class ACGANConfig(GANGeneratorConfig):
    """make.girls.moe's SRResNet generator."""

    family: ClassVar[str] = "acgan"
    BOUNDS: ClassVar[dict[str, tuple[Any, Any, type]]] = {
        "z_dim": (1, MAX_Z, int),
        "g_width": (1, MAX_WIDTH, int),
        "g_blocks": (0, MAX_BLOCKS, int),
        "g_upscalers": (0, 6, int),
        "g_final_kernel": (1, 15, int),
        "g_cond_norm": (0, 1, bool),
        "g_antialias": (0, 1, bool),
        "g_top_blocks": (0, 8, int),
    }

    g_width: int = 64  # channels in the residual trunk
    g_blocks: int = 16  # residual blocks
    g_upscalers: int = 2  # sub-pixel x2 steps (2 for 64 px, 3 for 128 px)
    g_final_kernel: int = 9  # output conv kernel, px
    g_cond_norm: bool = False  # tag-conditional batch norm in every layer (tags also enter the dense input)
    g_antialias: bool = False  # fixed 3x3 low-pass after each PixelShuffle
    g_top_blocks: int = (
        0  # residual blocks at the output resolution, after the last upscaler (start as identity)
    )


DIFFUSION_PREDICTIONS = ("v_prediction", "epsilon")
DIFFUSION_BETA_SCHEDULES = ("squaredcos_cap_v2", "linear", "scaled_linear")


@dataclass
class DiffusionConfig(ModelConfig):
    """A tag-conditioned denoiser: diffusers' UNet2DModel with the tag vector projected into its time embedding,
    plus the noise schedule it was trained under (the samplers need it to be the same)."""

    family: ClassVar[str] = "diffusion"
    BOUNDS: ClassVar[dict[str, tuple[Any, Any, type]]] = {
        "u_width": (8, MAX_WIDTH, int),
        "u_layers": (1, 8, int),
        "train_timesteps": (10, 10_000, int),
    }

    resolution: int = 32
    u_width: int = 32  # channels of the first UNet level; later levels multiply it by u_mults
    u_mults: str = (
        "1,2,2"  # channel multiplier per resolution level (each level after the first halves the size)
    )
    u_layers: int = 1  # residual blocks per level (the decoder has one more, as in diffusers)
    u_attn: str = "3"  # 1-based levels with self-attention ("" = none), e.g. "3" = the 8x8 level at 32 px
    prediction: str = "v_prediction"  # what the network predicts: v_prediction | epsilon
    train_timesteps: int = 1000  # DDPM steps of the training schedule
    beta_schedule: str = (
        "squaredcos_cap_v2"  # noise schedule: squaredcos_cap_v2 (cosine) | linear | scaled_linear
    )

    def noise_shape(self) -> tuple[int, ...]:
        return (3, self.resolution, self.resolution)

    def mults(self) -> list[int]:
        return [int(m) for m in self.u_mults.split(",") if m.strip()]

    def attn_levels(self) -> set[int]:
        return {int(a) for a in self.u_attn.split(",") if a.strip()}

    def validate(self, *, source: str = "model config") -> ModelConfig:
        super().validate(source=source)
        try:
            mults, attn = self.mults(), self.attn_levels()
        except (ValueError, AttributeError) as e:
            raise UserError(
                f"{source} u_mults={self.u_mults!r} / u_attn={self.u_attn!r}: expected comma lists of "
                "integers, e.g. u_mults=1,2,2 u_attn=3",
                field="u_mults",
            ) from e
        if not 1 <= len(mults) <= 6 or not all(1 <= m <= 16 for m in mults):
            raise UserError(
                f"{source} u_mults={self.u_mults!r}: 1 to 6 levels, each multiplier 1..16", field="u_mults"
            )
        if not attn <= set(range(1, len(mults) + 1)):
            raise UserError(
                f"{source} u_attn={self.u_attn!r}: levels are 1..{len(mults)} (one per u_mults entry)",
                field="u_attn",
            )
        if self.u_width * max(mults) > MAX_WIDTH:
            raise UserError(f"{source} u_width x u_mults: over {MAX_WIDTH} channels", field="u_width")
        if self.resolution % (2 ** (len(mults) - 1)):
            raise UserError(
                f"{source} resolution={self.resolution}: must divide by 2^(levels-1) = {2 ** (len(mults) - 1)}",
                field="resolution",
            )
        if self.prediction not in DIFFUSION_PREDICTIONS:
            raise UserError(
                f"{source} prediction={self.prediction!r}: valid values are {', '.join(DIFFUSION_PREDICTIONS)}",
                field="prediction",
            )
        if self.beta_schedule not in DIFFUSION_BETA_SCHEDULES:
            raise UserError(
                f"{source} beta_schedule={self.beta_schedule!r}: valid values are "
                f"{', '.join(DIFFUSION_BETA_SCHEDULES)}",
                field="beta_schedule",
            )
        if not isinstance(self.u_mults, str) or not isinstance(self.u_attn, str):
            raise UserError(f"{source}: u_mults and u_attn are strings like '1,2,2'", field="u_mults")
        return self
