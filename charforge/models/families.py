"""The family registry: one entry per model family, naming everything the rest of charforge needs.

A family is
  config    the model config dataclass (charforge.models.config): exactly what rebuilds the network
  build     (config, n_tags) -> the network that makes images (a torch module)
  sample    (net, noise (B, *noise_shape), tags (B, T), **options) -> images (B, 3, S, S) in [-1, 1]; the
            options a family accepts are listed in `sample_options` (diffusion: steps, guidance, negatives, ...)
  recipe    "module:attribute" of its training recipe (networks it trains besides `build`'s, the loss and its
            phases). A string, resolved only by training code, so inference never imports training.

Adding a family is one config class, one build function, one sampler, one recipe and one `register(...)` call
(docs/ARCHITECTURE.md shows the two GAN families as the example).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charforge.errors import UserError
from charforge.models.config import MAX_PARAMS, ACGANConfig, DCGANConfig, DiffusionConfig, ModelConfig

if TYPE_CHECKING:  # torch is imported where a network is built, so listing families stays light
    import torch
    from torch import nn


# ---- the sampling hooks' defaults: a GAN's (one network pass, no options to check or record) ----------------
def _options_as_given(options: dict[str, Any]) -> dict[str, Any]:
    return dict(options)


def _no_record(options: dict[str, Any]) -> dict[str, Any]:
    return {}


def _onnx_net_call(net: Any, config: dict[str, Any], noise: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    return net(noise, tags)  # every GAN export has the same (z, tags) -> image graph interface


@dataclass(frozen=True)
class Family:
    name: str
    config: type[ModelConfig]
    build: Callable[[Any, int], nn.Module]
    sample: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    recipe: str  # "module:attribute" of the training recipe
    summary: str = ""
    # keyword options `sample` takes beyond (net, noise, tags): the diffusion family's steps, guidance, sampler,
    # negative tags and img2img init; a GAN takes none. Front ends check a request against this list, so an
    # option a family cannot honour is a clear error rather than silently ignored.
    sample_options: tuple[str, ...] = ()
    # ---- sampling hooks: charforge.sampling asks the family rather than naming it ----
    # the sample_options values a request gave -> the same, validated (a UserError names a bad one)
    check_options: Callable[[dict[str, Any]], dict[str, Any]] = _options_as_given
    # the sampler settings an output records, defaults included (a GAN: none)
    sampling_record: Callable[[dict[str, Any]], dict[str, Any]] = _no_record
    # what an img2img output records of its options (the strength, default included); only asked when the
    # family takes "init"
    init_record: Callable[[dict[str, Any]], dict[str, Any]] = _no_record
    # (OnnxNet, config, noise (B, *noise_shape), tags (B, T), **options) -> images: `sample` for an ONNX export
    sample_onnx: Callable[..., torch.Tensor] = _onnx_net_call
    # why the family refuses the truncation trick (scaled noise), as the error says it; "" = it takes it
    refuses_truncation: str = ""
    # the sampler's noise is shaped (B, *noise_shape) (diffusion: an image); False: flat (B, Z), as drawn (a GAN)
    shaped_noise: bool = False
    # ---- export hooks: charforge.export and the studio's browser runtime ask the family ----
    # "module:function" (bundle, path, opset, *, check) -> path writing the family's ONNX file; "" = the one-pass
    # (z, tags) -> image graph of charforge.export.onnx. A string, so listing families imports no exporter.
    export_onnx: str = ""
    # whether that ONNX file is the whole sampler (one pass from noise and tags to an image), so a browser or a
    # game engine runs it alone; False where a sampler loop runs around it (diffusion's denoiser)
    onnx_is_sampler: bool = True

    def takes(self, option: str) -> bool:
        """Whether the family's sampler takes `option` (e.g. "negative", "init", "steps")."""
        return option in self.sample_options

    def load_recipe(self) -> Any:
        return _resolve(self.recipe)

    def load_exporter(self) -> Callable[..., Any] | None:
        """The family's own ONNX writer, or None for the generic one-pass generator export."""
        return _resolve(self.export_onnx) if self.export_onnx else None


def _resolve(spec: str) -> Any:
    mod, _, attr = spec.partition(":")
    return getattr(importlib.import_module(mod), attr)


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.config.family != family.name:
        raise ValueError(f"family {family.name!r}: its config class says {family.config.family!r}")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"family {name!r}: valid families are {', '.join(FAMILIES)}", field="family")
    return FAMILIES[name]


def config_from_dict(d: Any, *, source: str = "model config") -> ModelConfig:
    """A model config from its JSON form ({'family': ..., fields...}), validated against the family's bounds."""
    if not isinstance(d, dict) or not isinstance(d.get("family"), str):
        raise UserError(f"{source}: expected a JSON object with a 'family' name")
    return get_family(d["family"]).config.from_dict(d, source=source)


def build_network(cfg: ModelConfig, n_tags: int) -> nn.Module:
    """The family's network for `cfg`, after checking on the meta device (no memory) that its sizes fit together
    and that it is not absurdly large; a bad config is a UserError naming the problem, never a traceback or a
    100 GB allocation."""
    import torch

    fam = get_family(cfg.family)
    cfg.validate()
    try:
        with torch.device("meta"):
            probe = fam.build(cfg, n_tags)
    except (ValueError, RuntimeError, AssertionError) as e:
        raise UserError(
            f"{cfg.family} model: these sizes do not fit together ({e}); check resolution, "
            "g_upscalers and the widths"
        ) from e
    n = sum(p.numel() for p in probe.parameters())
    if n > MAX_PARAMS:
        raise UserError(
            f"{cfg.family} model: {n:,} parameters is over the limit of {MAX_PARAMS:,}; "
            "check the widths and block counts"
        )
    return fam.build(cfg, n_tags)


# ---- the two GAN families ------------------------------------------------------------------------------
def _gan_sample(net: nn.Module, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return net(z, c)


def _build_dcgan(cfg: DCGANConfig, n_tags: int) -> nn.Module:
    from charforge.models.dcgan import DCGANGenerator

    t = n_tags if cfg.conditional else 0
    return DCGANGenerator(z_dim=cfg.z_dim, n_tags=t, image_size=cfg.resolution, width=cfg.g_width)


def _build_acgan(cfg: ACGANConfig, n_tags: int) -> nn.Module:
    from charforge.models.acgan import SRResNetGenerator

    t = n_tags if cfg.conditional else 0
    return SRResNetGenerator(
        z_dim=cfg.z_dim,
        n_tags=t,
        image_size=cfg.resolution,
        width=cfg.g_width,
        blocks=cfg.g_blocks,
        upscalers=cfg.g_upscalers,
        final_kernel=cfg.g_final_kernel,
        cond_norm=cfg.g_cond_norm,
        antialias=cfg.g_antialias,
        top_blocks=cfg.g_top_blocks,
    )


register(
    Family(
        "dcgan",
        DCGANConfig,
        _build_dcgan,
        _gan_sample,
        "charforge.train.gan:DCGAN_RECIPE",
        "DCGAN baseline (seed 001): transposed-conv G, BN D with a tag head",
    )
)
register(
    Family(
        "acgan",
        ACGANConfig,
        _build_acgan,
        _gan_sample,
        "charforge.train.gan:ACGAN_RECIPE",
        "ACGAN + DRAGAN after make.girls.moe: SRResNet G, residual D with a tag head",
    )
)


# ---- the diffusion family (charforge.models.diffusion) ------------------------------------------------
def _build_diffusion(cfg: DiffusionConfig, n_tags: int) -> nn.Module:
    from charforge.models.diffusion import build

    return build(cfg, n_tags)


def _diffusion_sample(net: nn.Module, noise: torch.Tensor, c: torch.Tensor, **opts: Any) -> torch.Tensor:
    from charforge.models.diffusion import sample

    return sample(net, noise, c, **opts)


def _diffusion_sample_onnx(
    net: Any, config: dict[str, Any], noise: torch.Tensor, c: torch.Tensor, **opts: Any
) -> torch.Tensor:
    from charforge.models.diffusion import sample_loop

    return sample_loop(
        net.denoise, config, noise, c, **opts
    )  # the same sampler loop around the ONNX denoiser


def _diffusion_check_options(options: dict[str, Any]) -> dict[str, Any]:
    from charforge.models import diffusion as dm

    checks = {
        "steps": dm.check_steps,
        "guidance": dm.check_guidance,
        "sampler": dm.check_sampler,
        "negative_guidance": lambda v: dm.check_guidance(v, "negative_guidance"),
        "strength": dm.check_strength,
    }
    return {k: checks[k](v) for k, v in options.items()}


def _diffusion_sampling_record(options: dict[str, Any]) -> dict[str, Any]:
    from charforge.models import diffusion as dm

    return {
        "sampler": options.get("sampler", dm.DEFAULT_SAMPLER),
        "steps": options.get("steps", dm.DEFAULT_STEPS),
        "guidance": options.get("guidance", dm.DEFAULT_GUIDANCE),
        "negative_guidance": options.get("negative_guidance", options.get("guidance", dm.DEFAULT_GUIDANCE)),
    }


def _diffusion_init_record(options: dict[str, Any]) -> dict[str, Any]:
    from charforge.models import diffusion as dm

    return {"strength": options.get("strength", dm.DEFAULT_STRENGTH)}


register(
    Family(
        "diffusion",
        DiffusionConfig,
        _build_diffusion,
        _diffusion_sample,
        "charforge.train.diffusion:DIFFUSION_RECIPE",
        "tag-conditioned diffusion: diffusers UNet2DModel, classifier-free guidance, negative tags, img2img",
        sample_options=("steps", "guidance", "sampler", "negative", "negative_guidance", "init", "strength"),
        check_options=_diffusion_check_options,
        sampling_record=_diffusion_sampling_record,
        init_record=_diffusion_init_record,
        sample_onnx=_diffusion_sample_onnx,
        refuses_truncation="a GAN setting; a diffusion model trades variety for fidelity with --guidance instead",
        shaped_noise=True,
        export_onnx="charforge.export.onnx:export_denoiser_onnx",
        onnx_is_sampler=False,
    )
)
