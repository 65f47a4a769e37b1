"""One table of named training presets: a model family's architecture fields, the discriminator, the
schedule, loss weights and bookkeeping.

`--preset NAME` picks a row, `--set key=value` overrides single fields. The resolved preset is the training
config: it goes into the run's config.json and its training-state checkpoints. A model file stores only
`Preset.model_config()`, the family's architecture config (charforge.models.config), never training fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from charforge.errors import UserError
from charforge.models.config import ModelConfig
from charforge.models.families import FAMILIES, build_network, get_family

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Preset:
    name: str
    family: str  # "dcgan" | "acgan" | "diffusion"
    resolution: int = 64  # output image side, px
    z_dim: int = 128  # latent size
    conditional: bool = True  # feed tags to G and train a tag head on D
    # generator
    g_width: int = 64  # acgan: channels in the residual trunk; dcgan: channels of the last up-layer
    g_blocks: int = 16  # acgan residual blocks
    g_upscalers: int = 2  # acgan sub-pixel x2 steps (2 for 64px, 3 for 128px)
    g_final_kernel: int = 9  # acgan output conv kernel, px
    g_cond_norm: bool = (
        False  # acgan: tag-conditional batch norm in every G layer (tags also enter the dense input)
    )
    g_antialias: bool = False  # acgan: fixed 3x3 low-pass after each PixelShuffle (no checkerboard noise)
    g_top_blocks: int = 0  # acgan: residual blocks at the output resolution after the last upscaler
    # diffusion denoiser (charforge.models.config.DiffusionConfig)
    u_width: int = 32  # diffusion: channels of the first UNet level
    u_mults: str = "1,2,2"  # diffusion: channel multiplier per level, comma list
    u_layers: int = 1  # diffusion: residual blocks per level
    u_attn: str = "3"  # diffusion: 1-based levels with self-attention, comma list ("" = none)
    prediction: str = "v_prediction"  # diffusion: v_prediction | epsilon
    train_timesteps: int = 1000  # diffusion: DDPM steps of the noise schedule
    beta_schedule: str = "squaredcos_cap_v2"  # diffusion: squaredcos_cap_v2 | linear | scaled_linear
    cond_drop: float = (
        0.1  # diffusion: probability a training image's tags are dropped (guidance's unconditional branch)
    )
    min_snr_gamma: float = 5.0  # diffusion: min-SNR loss weighting gamma; 0 = plain MSE
    # discriminator
    d_width: int = 32  # channels after the first conv
    d_stages: int = 5  # acgan: downsampling stages after the first conv
    d_blocks: int = 2  # acgan: residual blocks per stage
    d_max_width: int = 1024  # acgan: channel cap
    d_dropout: float = 0.3  # dcgan: dropout before the dense head, probability
    d_projection: bool = False  # acgan: add a projection term <embed(tags), features> to D's real/fake logit
    d_highpass: bool = (
        False  # acgan: a D branch on the image's Laplacian at full resolution, added to the logit
    )
    # acgan: "resnet" (the paper's D) or "projected" (small D's on frozen EfficientNet-Lite0 features,
    # charforge.models.projected: Projected GAN, for small data); projected uses d_width and d_feat_size only
    d_kind: str = "resnet"
    d_feat_size: int = (
        64  # projected: px the picture is resized to before the feature network (multiple of 32)
    )
    # optimisation
    batch: int = 64  # images per step per process
    steps: int = 100_000  # total optimiser steps
    lr: float = 2e-4  # Adam learning rate for G and D
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    lr_decay_start: int = 50_000  # step after which the lr decays exponentially
    lr_decay_rate: float = 0.95  # lr multiplier per 1000 steps after lr_decay_start
    ema_half_life: float = 10_000.0  # half-life of the EMA generator weights, in images
    ema_rampup: float = 0.05  # early on, the half-life is at most this fraction of images seen (0 = off)
    adv_weight: float = 0.0  # lambda_adv; 0 = the number of tags (paper §5.1.2)
    gp_weight: float = 0.5  # lambda_gp of the DRAGAN penalty; 0 = off
    gp_every: int = 1  # lazy regularisation: penalise every N D steps, weight scaled by N
    r1_weight: float = (
        0.0  # gamma of the R1 penalty gamma/2 * |grad D(real)|^2 (beside or instead of DRAGAN); 0 = off
    )
    cls_weight_g: float = 1.0  # weight of the tag loss in G's objective (the paper: 1)
    learn_conflicts: bool = True  # label sampling skips independent tag pairs the data never shows together
    cls_loss: str = "group-ce"  # "group-ce" (softmax CE per exclusive group + BCE) or "bce" (paper)
    augment: str = (
        ""  # differentiable augmentation in D: comma list of translation,cutout,color,degrade,noise
    )
    ada: bool = (
        False  # adaptive augmentation: each augment kind applied with a probability D's overfitting drives
    )
    ada_target: float = 0.6  # ADA: the E[sign(D(real))] the probability steers to
    ada_kimg: float = 100.0  # ADA: thousands of images for the probability to go from 0 to 1
    teacher: str = (
        ""  # a trained tagger (file or folder) whose tag loss on the fakes G also minimises; frozen
    )
    teacher_weight: float = 1.0  # weight of the teacher's tag loss in G's objective
    # precision / speed
    bf16: bool = False  # bf16 autocast on CPU and CUDA
    channels_last: bool = False  # NHWC memory format for convs
    # torch.compile G's training passes where the step runs fp32 on CPU (no native bf16, or bf16 off); needs a
    # C++ compiler, else G runs eagerly (train.compiled). Same math; values differ by float rounding only.
    compile_g: bool = False
    # the trainer's D runs its leaky ReLUs without the penalty's all-zero second backward and a 4x4/2 conv on a
    # 2x2 map as one matrix product (train.fast_d). Same math; values differ by float rounding only.
    d_fast: bool = False
    # G's phase reuses the fakes D's phase drew (one latent draw and one G forward a step instead of two, as the
    # PyTorch DCGAN example does): about a tenth of a CPU step saved. Not the textbook loop (G's step sees the
    # latents D's step saw; G's batch-norm statistics move once a step) and its effect on quality is not yet
    # measured, so no preset sets it (BENCHMARKS.md, session 17).
    reuse_fake: bool = False
    # bookkeeping
    seed: int = 0  # master seed: data order, noise, labels
    log_every: int = 50  # steps between JSONL/TensorBoard rows
    sample_every: int = 1000  # steps between fixed-noise sample grids
    ckpt_every: int = 1000  # steps between checkpoints
    keep_ckpts: int = 3  # checkpoints kept on disk
    eval_every: int = 1000  # steps between early-stopping metric evaluations
    patience: int = 0  # evaluations without improvement before stopping; 0 = never stop early
    max_nan_retries: int = 3  # rollbacks allowed after a non-finite loss
    nan_lr_factor: float = 0.5  # lr multiplier applied on each rollback
    d_warmup: int = 0  # first steps train only the discriminator (a fine-tune whose source has no D sets it)
    train_labels: str = (
        "schema"  # G's labels: "schema" (the paper: every tag at the schema's rates) or "data"
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_config(self) -> ModelConfig:
        """The family's architecture config from this preset's fields: what a model file stores."""
        cls = get_family(self.family).config
        return cls(**{k: getattr(self, k) for k in cls.field_names()})


_P = Preset
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _P(
            "dcgan-64",
            "dcgan",
            z_dim=100,
            g_width=64,
            d_width=64,
            ema_half_life=10_000,
            gp_weight=0.0,
            adv_weight=1.0,
            bf16=True,
            channels_last=True,
        ),
        _P("acgan-64", "acgan", bf16=True, channels_last=True),
        _P("acgan-128", "acgan", resolution=128, g_upscalers=3, bf16=True, channels_last=True),
        # CPU row, tuned by measurement on the 2-core dev machine (docs/generator.md): bf16 autocast + channels_last
        # (2.7x a plain fp32 loop in bench/bench_train.py; same tag precision as fp32 in side-by-side fine-tunes),
        # no augmentation (colour jitter corrupts the colour tags; 20k images need none), and lambda_adv = 4 (G's tag
        # loss fell from 12 to 7.8 by step 350, vs no progress with 34).
        _P(
            "acgan-64-cpu",
            "acgan",
            g_width=32,
            g_blocks=4,
            g_final_kernel=3,
            d_width=16,
            d_stages=5,
            d_blocks=1,
            d_max_width=256,
            batch=32,
            lr_decay_start=20_000,
            ema_half_life=5_000,
            gp_every=16,  # 4 until session 18 (bench/results/session18/reuse_rule.txt)
            reuse_fake=True,  # session 18: with gp_every 16, >= 2x the plain fp32 loop without bf16
            augment="",
            adv_weight=4.0,
            bf16=True,
            channels_last=True,
            compile_g=True,  # without native bf16 (bench/results/train.md, session 13)
            d_fast=True,  # bench/results/train.md, session 14
            log_every=25,
            sample_every=250,
            ckpt_every=250,
            eval_every=250,
        ),
        # The paper's resolution on a CPU budget: acgan-64-cpu's widths with a third x2 upscaler. The dense layer
        # keeps its 16x16 grid, so a 64 px acgan-64-cpu model loads into it with only the new upscaler (and D)
        # fresh: `--init-from default --preset acgan-128-cpu` grows the shipped model by one stage.
        _P(
            "acgan-128-cpu",
            "acgan",
            resolution=128,
            g_width=32,
            g_blocks=4,
            g_upscalers=3,
            g_final_kernel=3,
            g_cond_norm=True,
            g_antialias=True,
            d_width=16,
            d_stages=5,
            d_blocks=1,
            d_max_width=256,
            d_projection=True,
            batch=32,
            lr_decay_start=20_000,
            ema_half_life=5_000,
            gp_every=4,
            augment="",
            adv_weight=4.0,
            bf16=True,
            channels_last=True,
            log_every=25,
            sample_every=250,
            ckpt_every=250,
            eval_every=250,
        ),
        # diffusion, CPU row: 32 px, a 1.1 M-parameter UNet (32/64/64 channels, attention at 8x8), v-prediction with
        # min-SNR-5 weights; sizes chosen by the per-step measurement in docs/diffusion.md (0.5 s per batch-32 step
        # on one core). fp32: bf16 autocast saved under 5% of a training step here, and costs the denoiser precision
        _P(
            "diffusion-32-cpu",
            "diffusion",
            resolution=32,
            u_width=32,
            u_mults="1,2,2",
            u_layers=1,
            u_attn="3",
            batch=32,
            lr=5e-4,
            beta1=0.9,
            beta2=0.999,
            lr_decay_start=100_000,
            ema_half_life=20_000,
            bf16=False,
            channels_last=True,
            log_every=25,
            sample_every=1000,
            ckpt_every=250,
            eval_every=1000,
        ),
        # diffusion, GPU row: 64 px, 4 levels (64..256 channels), two blocks per level, attention at 16 and 8 px
        _P(
            "diffusion-64-gpu",
            "diffusion",
            resolution=64,
            u_width=64,
            u_mults="1,2,2,4",
            u_layers=2,
            u_attn="3,4",
            batch=128,
            lr=2e-4,
            beta1=0.9,
            beta2=0.999,
            lr_decay_start=200_000,
            ema_half_life=100_000,
            bf16=True,
            channels_last=True,
        ),
        _P(
            "tiny-diffusion",
            "diffusion",
            resolution=16,
            u_width=8,
            u_mults="1,2",
            u_layers=1,
            u_attn="",
            batch=8,
            steps=20,
            lr=1e-3,
            beta1=0.9,
            lr_decay_start=10,
            ema_half_life=100,
            log_every=1,
            sample_every=10,
            ckpt_every=10,
            eval_every=10,
            keep_ckpts=2,
        ),
        _P(
            "tiny",
            "acgan",
            resolution=16,
            z_dim=16,
            g_width=8,
            g_blocks=2,
            g_upscalers=2,
            g_final_kernel=3,
            d_width=4,
            d_stages=2,
            d_blocks=1,
            d_max_width=8,
            batch=8,
            steps=20,
            lr_decay_start=10,
            ema_half_life=100,
            log_every=1,
            sample_every=10,
            ckpt_every=10,
            eval_every=10,
            keep_ckpts=2,
        ),
        _P(
            "tiny-dcgan",
            "dcgan",
            resolution=16,
            z_dim=16,
            g_width=4,
            d_width=4,
            batch=8,
            steps=20,
            gp_weight=0.0,
            adv_weight=1.0,
            lr_decay_start=10,
            ema_half_life=100,
            log_every=1,
            sample_every=10,
            ckpt_every=10,
            eval_every=10,
            keep_ckpts=2,
        ),
    ]
}


# acgan-64-cpu with the shipped default's generator (cond. BN, low-pass: `--init-from default` fine-tunes it) against
# a discriminator on frozen EfficientNet-Lite0 features (Projected GAN), for a few hundred images of a user's own
# art. No gradient penalty (the paper uses none; through the feature network it would cost a double backward of
# EfficientNet), DiffAugment's translation and cut-out (never colour: it would change the colour tags).
# docs/generator.md, session 15.
PRESETS["projected-64-cpu"] = dataclasses.replace(
    PRESETS["acgan-64-cpu"],
    name="projected-64-cpu",
    g_cond_norm=True,
    g_antialias=True,
    d_kind="projected",
    d_width=32,
    gp_weight=0.0,
    augment="translation,cutout",
    d_fast=False,
)

# discriminator fields each family's recipe reads (the D is trained, never saved in a model file)
D_FIELDS = {
    "dcgan": ("d_width", "d_dropout"),
    "acgan": (
        "d_kind",
        "d_width",
        "d_stages",
        "d_blocks",
        "d_max_width",
        "d_projection",
        "d_highpass",
        "d_feat_size",
    ),
    "diffusion": (),  # no discriminator
}
# loss fields only the diffusion family reads (the training section of `train --dry-run` shows them only there)
DIFFUSION_TRAIN_FIELDS = ("cond_drop", "min_snr_gamma")


def preset_sections(p: Preset) -> dict[str, dict[str, Any]]:
    """The preset split as it is used: the model config (what the model file stores), the discriminator, and
    training. Architecture fields of other families are left out (a dcgan run has no residual blocks)."""
    d = p.to_dict()
    model = p.model_config().to_dict()
    disc = {k: d[k] for k in D_FIELDS.get(p.family, ())}
    arch = {f for fam in FAMILIES.values() for f in fam.config.field_names()} | {
        f for fs in D_FIELDS.values() for f in fs
    }
    train = {k: v for k, v in d.items() if k not in arch and k != "family"}
    if p.family != "diffusion":
        train = {k: v for k, v in train.items() if k not in DIFFUSION_TRAIN_FIELDS}
    return {"model": model, "discriminator": disc, "training": train}


def preset_help() -> str:
    """One line per preset for --help and errors, from the table itself."""
    return "; ".join(f"{name} ({q.family}, {q.resolution}px)" for name, q in PRESETS.items())


def _coerce(name: str, raw: str, typ: type) -> Any:
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return typ(float(raw)) if typ is int and "e" in raw.lower() else typ(raw)
    except ValueError as e:
        raise UserError(f"--set {name}={raw}: expected a {typ.__name__}", field=name) from e


def field_types() -> dict[str, type]:
    hints = {"int": int, "float": float, "str": str, "bool": bool}
    return {f.name: hints.get(str(f.type), str) for f in fields(Preset) if f.name != "name"}


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """['lr=1e-4', 'bf16=false'] -> typed dict; unknown fields list the valid ones."""
    types, out = field_types(), {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise UserError(f"--set {item!r}: expected key=value, e.g. --set lr=1e-4")
        if key not in types:
            raise UserError(
                f"--set {key}: unknown preset field. Valid fields: {', '.join(sorted(types))}", field=key
            )
        out[key] = _coerce(key, raw.strip(), types[key])
    return out


def resolve_preset(name: str, overrides: dict[str, Any] | None = None) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}. Valid presets: {', '.join(PRESETS)}", field="preset")
    p = dataclasses.replace(PRESETS[name], **(overrides or {}))
    return validate_preset(p)


def preset_from_dict(d: dict[str, Any]) -> Preset:
    known = {f.name for f in fields(Preset)}
    return validate_preset(Preset(**{k: v for k, v in d.items() if k in known}))


def validate_preset(p: Preset) -> Preset:
    if p.family not in FAMILIES:
        raise UserError(f"family {p.family!r}: valid families are {', '.join(FAMILIES)}", field="family")
    p.model_config().validate()
    if p.train_labels not in ("schema", "data"):
        raise UserError(
            f"train_labels {p.train_labels!r}: valid values are schema, data", field="train_labels"
        )
    if not 0.0 <= p.cond_drop < 1.0:
        raise UserError(f"cond_drop={p.cond_drop}: must be in [0, 1) (0.1 is usual)", field="cond_drop")
    if not 0.0 <= p.min_snr_gamma <= 1000.0:
        raise UserError(
            f"min_snr_gamma={p.min_snr_gamma}: must be in [0, 1000]; 0 = off", field="min_snr_gamma"
        )
    if p.cls_loss not in ("group-ce", "bce"):
        raise UserError(f"cls_loss {p.cls_loss!r}: valid values are group-ce, bce", field="cls_loss")
    from charforge.models.augment import parse_augment

    parse_augment(p.augment)
    if not 0.0 < p.ada_target < 1.0:
        raise UserError(
            f"ada_target={p.ada_target}: must be between 0 and 1 (the paper: 0.6)", field="ada_target"
        )
    if p.family == "dcgan" and p.r1_weight > 0:
        raise UserError(
            "r1_weight: the dcgan recipe has no regulariser phase; drop --set r1_weight", field="r1_weight"
        )
    if p.r1_weight < 0 or p.gp_weight < 0:
        name = "r1_weight" if p.r1_weight < 0 else "gp_weight"
        raise UserError(f"{name}={getattr(p, name)}: must be 0 (off) or positive", field=name)
    if p.ada_kimg <= 0:
        raise UserError(f"ada_kimg={p.ada_kimg}: must be positive (thousands of images)", field="ada_kimg")
    for name in (
        "batch",
        "steps",
        "log_every",
        "sample_every",
        "ckpt_every",
        "eval_every",
        "keep_ckpts",
        "gp_every",
    ):
        if getattr(p, name) < 1:
            raise UserError(f"{name}={getattr(p, name)}: must be at least 1", field=name)
    _check_geometry(p)
    return p


def _check_geometry(p: Preset) -> None:
    """Build both networks on the meta device (no memory, no compute) so impossible shapes fail here, as a
    UserError naming the preset, rather than as a traceback deep inside a model constructor."""
    import torch

    try:
        with torch.device("meta"):
            build_generator(p, 1)
            if p.family in D_FIELDS and D_FIELDS[p.family]:  # a family without a discriminator has no fields
                build_discriminator(p, 1)
    except (ValueError, RuntimeError, AssertionError) as e:
        raise UserError(
            f"preset {p.name!r}: these sizes do not fit together ({e}); check resolution, "
            "g_upscalers, d_stages and the widths"
        ) from e


def build_generator(p: Preset, n_tags: int) -> nn.Module:
    return build_network(p.model_config(), n_tags)


def build_discriminator(p: Preset, n_tags: int) -> nn.Module:
    t = n_tags if p.conditional else 0
    if p.family == "diffusion":
        raise UserError("the diffusion family has no discriminator", field="family")
    if p.family == "dcgan":
        from charforge.models.dcgan import DCGANDiscriminator

        for name in ("d_projection", "d_highpass"):
            if getattr(p, name):
                raise UserError(
                    f"{name}: only the acgan family's discriminator has this option; drop --set {name}",
                    field=name,
                )

        return DCGANDiscriminator(n_tags=t, image_size=p.resolution, width=p.d_width, dropout=p.d_dropout)
    if p.d_kind not in ("resnet", "projected"):
        raise UserError(f"d_kind {p.d_kind!r}: valid values are resnet, projected", field="d_kind")
    if p.d_kind == "projected":
        for name in ("d_projection", "d_highpass"):
            if getattr(p, name):
                raise UserError(
                    f"{name}: the projected discriminator has no such term; drop --set {name}", field=name
                )
        from charforge.models.projected import ProjectedDiscriminator

        return ProjectedDiscriminator(
            n_tags=t, image_size=p.resolution, feat_size=p.d_feat_size, width=p.d_width, seed=p.seed
        )
    from charforge.models.acgan import ResNetDiscriminator

    return ResNetDiscriminator(
        n_tags=t,
        image_size=p.resolution,
        width=p.d_width,
        stages=p.d_stages,
        blocks=p.d_blocks,
        max_width=p.d_max_width,
        projection=p.d_projection,
        highpass=p.d_highpass,
    )
