"""Request and response bodies of the studio API (/api/v1). These also make the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

SEED_MAX = 2**31 - 1  # seeds are non-negative 31-bit integers, so every client language can hold them
MAX_COUNT = 64  # images per /generate call
MAX_NPC = 500  # characters per /npc call
MAX_FRAMES = 32  # frames per /interpolate call
MODEL_NAME = Field(
    "default", min_length=1, max_length=64, description="a name from GET /api/v1/models; never a path"
)

TagValue = Union[bool, str, None]  # group: a tag name or "any"; independent tag: true, false or "any"
TagForm = dict[str, TagValue]
ParamValue = Union[float, str]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
SeedScheme = Annotated[
    Literal["torch-v1", "portable-v1"],
    Field(
        description="how a seed becomes noise and free tags: torch-v1 (the original seeds) or portable-v1 "
        "(the same characters as the studio page draws in the browser); recorded in every PNG"
    ),
]


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, and values are not coerced (`false` is not the number 0,
    `"64"` is not the integer 64); an integer is still a valid float."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    detail: str = Field(description="what was wrong and what to do")
    field: str | None = Field(None, description="the request field at fault, when there is one")


Upscale = Annotated[
    Literal[1, 2, 4],
    Field(
        description="1 = the generator's size; 2 or 4 = upscaled with the studio's upscaler (recorded in each PNG)"
    ),
]


MAX_API_STEPS = 100  # denoising steps one diffusion request may ask for
MAX_INIT_B64 = 4_000_000  # characters of a base64 init image (about 3 MB of PNG/JPEG)


class DiffusionFields(Strict):
    """Sampling fields of diffusion models (GET /models says which models take them: `sample_options`).
    Sent to a GAN, any of them is a 422 naming the field; absent, the model's defaults apply."""

    steps: int | None = Field(
        None, ge=1, le=MAX_API_STEPS, description="diffusion: denoising steps (default 20)"
    )
    guidance: float | None = Field(
        None, ge=0.0, le=30.0, description="diffusion: classifier-free guidance scale (default 2; 1 = none)"
    )
    sampler: Literal["dpm++", "ddim"] | None = Field(
        None, description="diffusion: the sampler (default dpm++)"
    )
    negative_guidance: float | None = Field(
        None,
        ge=0.0,
        le=30.0,
        description="diffusion: weight of the push away from negative tags (default: guidance)",
    )
    negative_tags: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=64,
        description="independent tags to steer away from (the same as setting them false in `tags`; a diffusion "
        "model pushes away from them, a GAN just leaves them off)",
    )


class Img2ImgFields(Strict):
    init_image_base64: str | None = Field(
        None,
        max_length=MAX_INIT_B64,
        description="diffusion: a PNG/JPEG (base64) to start from: variations of it, or its look with new tags",
    )
    strength: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="with init_image_base64: 0 keeps the image, 1 ignores it (default 0.6)",
    )


class GenerateRequest(DiffusionFields, Img2ImgFields):
    model: str = MODEL_NAME
    tags: TagForm = Field(
        default_factory=dict,
        max_length=64,
        description='{"hair color": "blonde hair" | "any", "smile": true | false | "any"}; missing = any',
    )
    seed: Seed | None = Field(None, description="first seed; image i uses seed + i. Random when absent")
    seeds: list[Seed] | None = Field(
        None,
        min_length=1,
        max_length=MAX_COUNT,
        description="explicit per-image seeds (overrides seed and count)",
    )
    count: int = Field(4, ge=1, le=MAX_COUNT, description="number of images")
    fixed_noise: bool = Field(
        False, description="keep the face: every image shares the first seed's noise, tags vary"
    )
    truncation: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="noise truncation psi: 1 = full variety, "
        "lower = tags drawn more reliably and faces more alike",
    )
    upscale: Upscale = 1
    seed_scheme: SeedScheme = "torch-v1"
    format: Literal["json", "zip"] = Field(
        "json", description="base64 PNGs in JSON, or one zip with a manifest"
    )


class GeneratedImage(BaseModel):
    seed: int = Field(description="noise seed of this image")
    tag_seed: int = Field(description="seed the free tags were drawn with")
    tags: list[str] = Field(description="every tag that is on")
    tag_form: TagForm = Field(
        description="the full tag set as a tag form: send it back to reproduce the image"
    )
    png_base64: str


class GenerateResponse(BaseModel):
    model: str
    model_id: str
    images: list[GeneratedImage]


class Endpoint(Strict):
    seed: Seed
    tags: TagForm = Field(default_factory=dict, max_length=64)


class InterpolateRequest(DiffusionFields):
    model: str = MODEL_NAME
    a: Endpoint
    b: Endpoint
    frames: int = Field(8, ge=2, le=MAX_FRAMES, description="frames including both end points")
    truncation: float = Field(1.0, gt=0.0, le=1.0, description="noise truncation psi, as in /generate")
    upscale: Upscale = 1
    seed_scheme: SeedScheme = "torch-v1"
    format: Literal["json", "gif"] = "json"
    frame_ms: int = Field(120, ge=20, le=2000, description="GIF frame duration in milliseconds")


class InterpolateResponse(BaseModel):
    model: str
    frames: list[str] = Field(description="base64 PNG frames, a to b")
    gif_base64: str
    tags_a: list[str]
    tags_b: list[str]


class NpcRequest(DiffusionFields, Img2ImgFields):
    model: str = MODEL_NAME
    count: int = Field(16, ge=1, le=MAX_NPC)
    seed: Seed = 0
    tags: TagForm = Field(
        default_factory=dict, max_length=64, description="tags every NPC shares; missing = any"
    )
    min_distance: float = Field(
        0.04,
        strict=True,
        ge=0.0,
        le=0.25,
        description="least RMS difference (0-1 pixel units) between two NPCs' 16 px thumbnails",
    )
    upscale: Upscale = 1
    seed_scheme: SeedScheme = "torch-v1"


class RenderRequest(Strict):
    params: dict[str, ParamValue] = Field(
        default_factory=dict,
        max_length=512,
        description="creator parameters by name; missing ones take their default",
    )
    size: int = Field(128, ge=32, le=512, description="output width and height in pixels")


class FitResponse(BaseModel):
    params: dict[str, ParamValue]
    preview_base64: str = Field(description="PNG render of the fitted parameters")
    similarity: float
    mode: str = Field(description="the mode whose answer was kept")
    notes: list[str] = Field(
        default_factory=list, description="messages such as 'several faces found, used the largest'"
    )
    timings: dict[str, float] = Field(description="seconds per step")


class ModelInfo(BaseModel):
    name: str
    model_id: str
    sha256: str
    image_size: int
    z_dim: int
    schema_: dict = Field(
        alias="schema", description="the tag schema: exclusive groups, independent tags, conflicts"
    )
    freqs: dict[str, float] = Field(description="empirical P(tag) in the training data")
    family: str = Field("", description="the model family: acgan, dcgan or diffusion")
    sample_options: list[str] = Field(
        default_factory=list,
        description="request fields this model takes beyond tags and seeds (diffusion: steps, guidance, sampler, "
        "negative_guidance, strength with init_image_base64)",
    )
    pixel_art: dict | None = Field(
        None,
        description="a model trained on pixel art: its training set's grid ({cell, offset}: px, row/column) and "
        "palette size ({colours}); every output is snapped onto them (docs/own_art.md, Pixel art)",
    )
    loaded: bool = Field(
        True,
        description="false for a model the server offers but loads on its first request (the other shipped models "
        "beside the default GAN): that request takes a few seconds longer",
    )
    model_config = ConfigDict(populate_by_name=True)


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    default: str | None


class CreatorResponse(BaseModel):
    name: str
    space: dict = Field(description="ParamSpace JSON: categorical options and continuous ranges")
    can_render: bool


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str
    models: list[str]
    creator: str | None
    f2p: bool
    upscale: list[int] = Field(default=[1], description="upscale factors this server offers (1 = none)")
    active: int
    waiting: int
