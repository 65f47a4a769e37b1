"""The one place that turns (generator, tags, seeds) into images. CLI, web API and export all call these.

Per-image seeds, under a seed scheme (`charforge.web.seeds`, recorded as `seed_scheme` in every output):
"torch-v1" (the default, the original seeds): image i's noise is
`torch.randn(z_dim, generator=Generator().manual_seed(seeds[i]))` and its free tags come from
`numpy.random.default_rng(seeds[i])`; "portable-v1": a counter-based generator with a JavaScript twin, so the
browser draws the same characters. Either way the generator runs in eval mode (batch norm uses running statistics), so a seed reproduces its face whatever
else is in the batch (bit for bit at a given batch size; across batch sizes some CPUs' convolution kernels, e.g.
oneDNN on AVX-512 / AMX, round differently, by at most one level of 255, measured).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charforge.core.tags import TagConstraints, TagSchema
from charforge.errors import UserError
from charforge.models.families import Family, get_family
from charforge.web.seeds import (  # noqa: F401  (SEED_SCHEMES: re-exported for the front ends)
    DEFAULT_SEED_SCHEME,
    PORTABLE_V1,
    SEED_SCHEMES,
    check_seed_scheme,
)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_NAME = "default"
NPC_THUMB = 16  # px side of the thumbnails compared for near-duplicate rejection


@dataclass
class GeneratorBundle:
    net: Any  # torch.nn.Module in eval mode with EMA weights, or an OnnxNet
    schema: TagSchema
    freqs: np.ndarray  # (T,) empirical tag frequencies of the training data
    config: dict[str, Any]  # the family's model config (architecture only), with "family"
    z_dim: int  # size of the per-image noise vector (the family's noise_shape, flattened)
    image_size: int
    model_id: str
    sha256: str
    path: Path
    backend: str = "torch"  # "torch" (net is the module) or "onnx" (net is an OnnxNet over onnxruntime)
    label: str = ""  # "family/preset" when the file records its preset name, else the family
    device: str = "cpu"  # where `net` runs
    # the family's sampling options for this bundle (diffusion: steps, guidance, sampler, negative_guidance,
    # strength), set with `with_options`; every output's metadata records them
    options: dict[str, Any] = field(default_factory=dict)
    # a model trained on pixel art records its training set's grid and palette (core.pixelart.dataset_grid);
    # generate() snaps outputs onto them while pixel_snap is on (`--pixel-art off` turns it off)
    pixel_art: dict[str, Any] | None = None
    pixel_snap: bool = True

    @property
    def family(self) -> str:
        """A readable model label for provenance ("acgan/acgan-64-cpu")."""
        if self.label:
            return self.label
        return "/".join(str(self.config[k]) for k in ("family", "name") if self.config.get(k))

    @property
    def family_spec(self) -> Family:
        return get_family(str(self.config.get("family")))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """The per-image noise of the family's sampler, as its model config says ((Z,) for a GAN, (3, S, S)
        for diffusion)."""
        return self.family_spec.config.from_dict(self.config, source=self.model_id).noise_shape()

    @property
    def onnx_is_sampler(self) -> bool:
        """Whether the family's ONNX export is the whole sampler (a browser or engine runs it alone)."""
        return self.family_spec.onnx_is_sampler

    def takes(self, option: str) -> bool:
        """Whether this model's family samples with `option` ("negative", "init", "steps", ...)."""
        return self.family_spec.takes(option)

    def with_options(self, **options: Any) -> GeneratorBundle:
        """This bundle with sampling options (None values are left out): steps, guidance, sampler,
        negative_guidance, strength. An option the family has no use for is a UserError naming it (a GAN
        takes none), so a request never silently ignores what the user asked for; the family checks the
        values of those it takes."""
        opts = {k: v for k, v in options.items() if v is not None}
        fam = self.family_spec
        allowed = set(fam.sample_options) - {"negative", "init"}
        bad = sorted(set(opts) - allowed)
        if bad:
            raise UserError(
                f"{', '.join(bad)}: the {self.config.get('family')} model {self.model_id!r} takes no such option "
                "(steps, guidance, sampler, negative_guidance and strength are for diffusion models)",
                field=bad[0],
            )
        return dataclasses.replace(self, options={**self.options, **fam.check_options(opts)})

    def sampling_record(self) -> dict[str, Any]:
        """The sampler settings an output records, as the family says (diffusion: every one, defaults
        included; a GAN: none), and the pixel-art snap where it applies."""
        rec = dict(self.family_spec.sampling_record(self.options))
        note = pixel_art_note(self)
        return rec | {"pixel_art": note} if note else rec

    def sample(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        *,
        negative: torch.Tensor | None = None,
        init: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One batch through the family's sampler: noise (B, Z) or (B, *noise_shape), tags (B, T) ->
        (B, 3, S, S) in [-1, 1]. For a family that takes them (diffusion): `negative` (B, T) tags to steer
        away from, `init` (B, 3, S, S) in [-1, 1] for img2img at the bundle's strength. A family without a
        negative branch (a GAN) has already turned a "-tag" off in `c` and ignores `negative`."""
        fam = self.family_spec
        if init is not None and not fam.takes("init"):
            raise UserError(
                f"init image: the {self.config.get('family')} model {self.model_id!r} cannot start from an "
                "image (img2img needs a diffusion model)",
                field="init_image",
            )
        x = z.reshape(len(z), *self.noise_shape) if fam.shaped_noise else z
        opts = dict(self.options)
        if init is None:
            opts.pop("strength", None)
        else:
            opts["init"] = init
        if negative is not None and fam.takes("negative"):
            opts["negative"] = negative
        if self.backend == "onnx":
            return fam.sample_onnx(self.net, self.config, x, c, **opts)
        return fam.sample(self.net, x, c, **opts)

    def png_meta(
        self, seed: int | None, tags: np.ndarray, seed_scheme: str = DEFAULT_SEED_SCHEME
    ) -> dict[str, Any]:
        """Provenance text for one output image (save_png adds the charforge version)."""
        return {
            "generator": self.family,
            "model_id": self.model_id,
            "model_sha256": self.sha256,
            "seed": seed,
            "seed_scheme": seed_scheme,
            "tags": self.schema.from_vector(tags),
            **self.sampling_record(),
        }


def available_generators() -> dict[str, Path]:
    """Shipped generators by name: weights/generator_<name>.safetensors. The web API only accepts these names."""
    from charforge.models.generator import shipped_generators

    return shipped_generators(WEIGHTS_DIR)


def _resolve_path(spec: str | Path | None) -> Path:
    named = available_generators()
    if spec is None or str(spec) == DEFAULT_NAME:
        if DEFAULT_NAME not in named:
            raise UserError(
                "no shipped default generator is installed yet; train one with `charforge train` and "
                "pass --model runs/NAME (a run folder) or a .safetensors file"
            )
        return named[DEFAULT_NAME]
    if isinstance(spec, str) and spec in named:
        return named[spec]
    path = Path(spec)
    # a Hub-style folder (`charforge export hf`); charforge.load checks its config and hash as well
    if path.is_dir() and (path / "model.safetensors").is_file() and not (path / "checkpoints").is_dir():
        return path / "model.safetensors"
    if path.is_dir():
        from charforge.models import runs

        step = runs.latest_step(path)
        if step is None:
            raise UserError(
                f"{path}: no finished checkpoint in this run folder yet (checkpoints/generator-*.safetensors)"
            )
        best = runs.best_step(path)
        if best is not None and best != step:
            # training ends with "best: step B ... compare and use the one that looks right"; a run folder then
            # silently meant the last step (a lorelei walk: best x7.6 domain FID, last x10.1)
            print(
                f"note: --model {path} uses the run's latest checkpoint (step {step}); its best by colour distance "
                f"is step {best}: --model {runs.best_generator_path(path)}",
                file=sys.stderr,
            )
        return runs.generator_path(path, step)
    if path.is_file():
        return path
    names = ", ".join(named) or "(none installed)"
    raise UserError(
        f"model {str(spec)!r}: not a file, run folder or known generator name. Known names: {names}",
        field="model",
    )


BACKENDS = ("torch", "onnx")  # generator runtimes: eager PyTorch, or onnxruntime on an ONNX export
_CACHE: dict[tuple[Any, ...], GeneratorBundle] = {}


class OnnxNet:
    """Lets `generate()` drive an ONNX generator like a torch module: net(z, tags) -> (B, 3, S, S) tensor."""

    training = False

    def __init__(self, onnx_generator: Any):
        self.gen = onnx_generator  # charforge.export.onnx.OnnxGenerator
        self._device = torch.nn.Parameter(torch.zeros(0), requires_grad=False)  # says "cpu" to generate()

    def parameters(self):
        yield self._device

    def eval(self) -> OnnxNet:
        return self

    def requires_grad_(self, flag: bool = True) -> OnnxNet:
        return self

    def __call__(self, z: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.gen.run(z.cpu().numpy(), tags.cpu().numpy()))  # (B, 3, S, S) in [-1, 1]

    def denoise(self, x: torch.Tensor, t: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """A diffusion export's denoiser (the sampler loop runs in charforge.models.diffusion)."""
        return self.gen.denoise(x, t, tags)


def onnx_cache_dir() -> Path:
    """Where safetensors generators are exported for the onnx backend: $CHARFORGE_CACHE/onnx, else
    $XDG_CACHE_HOME/charforge/onnx, else ~/.cache/charforge/onnx."""
    from charforge.utils.io import cache_dir

    return cache_dir("onnx")


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r}: valid backends are {', '.join(BACKENDS)}", field="backend")
    return backend


def load_generator(
    spec: str | Path | None = None,
    backend: str = "torch",
    *,
    onnx_threads: int | None = None,
    device: str = "auto",
) -> GeneratorBundle:
    """None = the shipped default; a known name; a .safetensors generator file; or a run folder (latest EMA).

    backend "onnx" runs the generator with onnxruntime (`onnx_threads` CPU threads per call, None = its
    default): a .onnx export is loaded as is; any other spec is exported once into `onnx_cache_dir()`, keyed by
    the weights' sha256, and reused afterwards. The returned bundle works with every function below.
    `device` is auto | cpu | cuda | mps (torch backend; the onnx backend runs on the CPU). A device this machine
    lacks is a UserError; the noise is always drawn on the CPU, so a seed gives the same character everywhere
    (up to the device's floating-point rounding).
    """
    _check_backend(backend)
    dev = _check_device(device, backend)
    if backend == "torch" and str(spec or "").endswith(".onnx"):
        raise UserError(f"{spec}: an ONNX export runs with --backend onnx, not torch", field="model")
    onnx_file = backend == "onnx" and str(spec or "").endswith(".onnx")
    if onnx_file and not Path(spec).is_file():  # type: ignore[arg-type]
        raise UserError(f"{spec}: no such ONNX file; export one with `charforge export onnx`", field="model")
    path = Path(spec).resolve() if onnx_file else _resolve_path(spec).resolve()  # type: ignore[arg-type]
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, backend, onnx_threads, str(dev))
    if key not in _CACHE:
        if onnx_file:
            bundle = _load_onnx_file(path, onnx_threads)
        elif backend == "onnx":
            bundle = _load_via_onnx_cache(path, onnx_threads)
        else:
            bundle = _load_torch(path, dev)
        _CACHE.clear()  # keep one model resident; the studio switches rarely
        _CACHE[key] = bundle
    return _CACHE[key]


def _check_device(device: str, backend: str) -> torch.device:
    from charforge.core.device import resolve_device

    if backend == "onnx":
        if device not in ("auto", "cpu"):
            raise UserError(
                f"--device {device}: the onnx backend runs on the CPU here; use --backend torch "
                f"for --device {device}",
                field="device",
            )
        return torch.device("cpu")
    return resolve_device(device)


def _load_torch(path: Path, device: torch.device | None = None) -> GeneratorBundle:
    from charforge.models.generator import read_generator

    gf = read_generator(path)
    dev = device or torch.device("cpu")
    net = gf.build()
    # channels_last: 1.5x the batched throughput of NCHW on this CPU's convs (BENCHMARKS.md), same fp32 maths.
    net = net.to(dev, memory_format=torch.channels_last)
    return _bundle_of(path, gf, net, str(dev))


def _bundle_of(path: Path, gf: Any, net: Any, device: str) -> GeneratorBundle:
    """A bundle around a read generator file (charforge.models.generator.GeneratorFile) and its network."""
    from charforge.models.io import file_sha256

    prov = gf.meta.get("provenance") if isinstance(gf.meta.get("provenance"), dict) else {}
    preset = prov.get("preset") if gf.format > 1 else gf.meta["charforge_config"].get("name")
    label = f"{gf.config.family}/{preset}" if isinstance(preset, str) and preset else gf.config.family
    return GeneratorBundle(
        net,
        gf.schema,
        gf.freqs,
        gf.config.to_dict(),
        int(np.prod(gf.config.noise_shape())),
        gf.config.resolution,
        str(gf.meta.get("model_id", path.stem))[:200],
        file_sha256(path),
        path,
        label=label,
        device=device,
        pixel_art=_pixel_art_meta(prov.get("pixel_art"), path, gf.config.resolution),
    )


def _pixel_art_meta(value: Any, path: Path, size: int) -> dict[str, Any] | None:
    """A generator file's recorded pixel grid and palette, checked; a damaged record is an error naming the file."""
    if value is None:
        return None
    try:
        cell, (oy, ox) = int(value["cell"]), (int(v) for v in value["offset"])
        palette = np.asarray(value["palette"], dtype=np.int64)
        ok = 2 <= cell <= size and 0 <= oy < cell and 0 <= ox < cell
        ok = ok and palette.ndim == 2 and palette.shape[1] == 3 and 1 <= len(palette) <= 4096
        ok = ok and bool(((palette >= 0) & (palette <= 255)).all())
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(
            f"{path}: its pixel_art record (the training set's pixel grid and palette) is damaged; "
            "retrain or re-save the model"
        )
    return {"cell": cell, "offset": [oy, ox], "palette": palette.tolist(), "share": value.get("share")}


def pixel_art_note(bundle: GeneratorBundle) -> str | None:
    """What an output records when it was snapped to the training set's pixel grid, else None."""
    g = bundle.pixel_art
    if not g or not bundle.pixel_snap:
        return None
    return f"snapped to the training set's pixel grid ({g['cell']} px cells) and palette ({len(g['palette'])} colours)"


def read_generator_info(spec: str | Path | None = None) -> GeneratorBundle:
    """What a model list shows of a generator, read from its file without building the network (so without
    importing its family's libraries, e.g. diffusers): a bundle whose `net` is None, with the schema,
    frequencies, config, size, ids and label that `load_generator` would give. Sampling needs
    `load_generator`; the studio uses this to offer a model it loads on first use."""
    from charforge.models.generator import read_generator

    path = _resolve_path(spec).resolve()
    return _bundle_of(path, read_generator(path), None, "cpu")


def _load_onnx_file(path: Path, threads: int | None) -> GeneratorBundle:
    from charforge.export.onnx import OnnxGenerator

    g = OnnxGenerator(path, threads=threads)
    return GeneratorBundle(
        OnnxNet(g),
        g.schema,
        np.asarray(g.freqs, np.float64),
        g.config,
        g.z_dim,
        g.image_size,
        g.model_id,
        g.sha256,
        path,
        backend="onnx",
        label="/".join(str(g.config[k]) for k in ("family", "name") if k in g.config),
        pixel_art=_pixel_art_meta(g.pixel_art, path, g.image_size),
    )


def _load_via_onnx_cache(path: Path, threads: int | None) -> GeneratorBundle:
    """Export `path` to the ONNX cache unless already there (atomic rename), then run the export. Schema,
    frequencies and ids come from the safetensors file, so tag sampling matches the torch backend exactly."""
    from charforge.export.onnx import OnnxGenerator, export_generator_onnx

    ref = _load_torch(path)
    onnx_path = onnx_cache_dir() / f"generator-{ref.sha256}.onnx"
    if not onnx_path.is_file():
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=".export-", dir=onnx_path.parent))
        try:  # export + metadata + parity check happen in a private folder; only a finished file is renamed in
            os.replace(export_generator_onnx(ref, tmp_dir / onnx_path.name), onnx_path)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    g = OnnxGenerator(onnx_path, threads=threads)
    return GeneratorBundle(
        OnnxNet(g),
        ref.schema,
        ref.freqs,
        ref.config,
        ref.z_dim,
        ref.image_size,
        ref.model_id,
        ref.sha256,
        ref.path,
        backend="onnx",
        label=ref.label,
        pixel_art=ref.pixel_art,
    )


def check_truncation(truncation: float) -> float:
    if not 0.0 < float(truncation) <= 1.0:
        raise UserError(
            f"truncation={truncation}: must be in (0, 1]; 1 = the full variety the model was trained "
            "on, lower = closer to the average face (more faithful tags, less variety)",
            field="truncation",
        )
    return float(truncation)


def noise_for_seeds(
    seeds: Sequence[int], z_dim: int, truncation: float = 1.0, seed_scheme: str = DEFAULT_SEED_SCHEME
) -> torch.Tensor:
    """(N, Z): row i depends only on seeds[i]. `truncation` (0, 1] scales the noise towards its mean (0): the
    truncation trick, trading variety for fidelity (fewer odd faces, tags drawn more reliably).
    `seed_scheme` "torch-v1" draws with torch.randn, "portable-v1" with `charforge.web.seeds.noise`."""
    psi = check_truncation(truncation)
    if check_seed_scheme(seed_scheme) == PORTABLE_V1:
        from charforge.web import seeds as portable

        return torch.from_numpy(portable.noise([int(s) for s in seeds], z_dim, psi))
    rows = [torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    z = torch.stack(rows) if rows else torch.zeros(0, z_dim)
    return z * psi if psi != 1.0 else z


def _check_tags(bundle: GeneratorBundle, tags: np.ndarray) -> np.ndarray:
    tags = np.asarray(tags, dtype=np.float32)
    if tags.ndim != 2 or tags.shape[1] != len(bundle.schema):
        raise UserError(f"tags: expected shape (N, {len(bundle.schema)}), got {tags.shape}", field="tags")
    return tags


@torch.inference_mode()
def generate(
    bundle: GeneratorBundle,
    tags: np.ndarray,
    *,
    seeds: Sequence[int] | None = None,
    z: torch.Tensor | None = None,
    batch_size: int = 64,
    truncation: float = 1.0,
    seed_scheme: str = DEFAULT_SEED_SCHEME,
    negative: np.ndarray | None = None,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """tags (N, T) -> (N, S, S, 3) uint8. Noise from per-image `seeds` (default 0..N-1, scaled by `truncation`,
    drawn under `seed_scheme`) or given `z` (N, Z).

    Diffusion models only: `negative` (N, T) or (T,) 0/1 tags to steer away from (`negative_tags`), `init`
    (N, H, W, 3) or (H, W, 3) uint8 images to start from (img2img at the bundle's strength; any size, resized)."""
    tags = _check_tags(bundle, tags)
    n = len(tags)
    if (why := bundle.family_spec.refuses_truncation) and truncation != 1.0:
        raise UserError(f"truncation={truncation}: {why}", field="truncation")
    neg_t = None
    if negative is not None:
        neg = np.asarray(negative, np.float32)
        neg = np.broadcast_to(neg, (n, len(bundle.schema))) if neg.ndim == 1 else neg
        if neg.shape != (n, len(bundle.schema)):
            raise UserError(f"negative: expected shape ({n}, {len(bundle.schema)}), got {neg.shape}")
        neg_t = torch.from_numpy(np.array(neg, np.float32))  # a copy: broadcast views are read-only
    init_t = None if init is None else init_tensor(bundle, init, n)
    if z is None:
        z = noise_for_seeds(
            list(seeds) if seeds is not None else range(n), bundle.z_dim, truncation, seed_scheme
        )
    if z.ndim > 2:  # (N, *noise_shape), e.g. a diffusion model's (N, 3, S, S) initial noise
        z = z.reshape(len(z), -1)
    if z.shape != (n, bundle.z_dim):
        raise UserError(f"noise: expected shape ({n}, {bundle.z_dim}), got {tuple(z.shape)}")
    out = np.zeros((n, bundle.image_size, bundle.image_size, 3), np.uint8)
    dev = torch.device(bundle.device) if bundle.backend == "torch" else torch.device("cpu")
    c = torch.from_numpy(tags)
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            part = slice(i, i + batch_size)
            x = bundle.sample(
                z[part].to(dev, torch.float32),
                c[part].to(dev),
                negative=None if neg_t is None else neg_t[part].to(dev),
                init=None if init_t is None else init_t[part].to(dev),
            )  # (B, 3, S, S)
            x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            out[i : i + batch_size] = x.permute(0, 2, 3, 1).cpu().numpy()  # (B, S, S, 3)
    if bundle.pixel_art and bundle.pixel_snap:
        from charforge.core.pixelart import snap

        out = snap(out, bundle.pixel_art)
    return out


def init_tensor(bundle: GeneratorBundle, images: np.ndarray, n: int) -> torch.Tensor:
    """img2img start images: (H, W, 3) or (N, H, W, 3) uint8 -> (n, 3, S, S) in [-1, 1] at the model's size
    (area-resized; one image is repeated for all n)."""
    from charforge.core.images import resize_square

    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise UserError(
            f"init image: expected (H, W, 3) uint8 RGB images, got {a.shape} {a.dtype}", field="init_image"
        )
    if len(a) not in (1, n):
        raise UserError(f"init image: {len(a)} images for {n} outputs; give one or {n}", field="init_image")
    s = bundle.image_size

    def square(im: np.ndarray) -> np.ndarray:  # centre crop to a square, then resize
        h, w = im.shape[:2]
        k = min(h, w)
        return resize_square(
            np.ascontiguousarray(im[(h - k) // 2 : (h - k) // 2 + k, (w - k) // 2 : (w - k) // 2 + k]), s
        )

    rs = np.stack([square(im) for im in a])
    x = torch.from_numpy(np.ascontiguousarray(rs)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x.expand(n, -1, -1, -1) if len(x) == 1 else x


def negative_vector(bundle: GeneratorBundle, constraints: TagConstraints | None) -> np.ndarray | None:
    """(T,) 1 for every tag the request turns off ("-hat"), None when it turns none off. A diffusion model
    steers away from them (the negative term of charforge.models.diffusion); a GAN just leaves them off."""
    if constraints is None:
        return None
    off = [t for t, v in constraints.independent.items() if v is False]
    if not off:
        return None
    return bundle.schema.to_vector(off)


def negative_record(bundle: GeneratorBundle, negative: np.ndarray | None) -> dict[str, Any]:
    """The negative tags an output records (a family with a negative branch, diffusion; for a GAN they are
    just tags turned off)."""
    if not bundle.takes("negative") or negative is None:
        return {}
    return {
        "negative_tags": bundle.schema.from_vector(np.asarray(negative).reshape(-1, len(bundle.schema))[0])
    }


def untrained_requested(bundle: GeneratorBundle, constraints: TagConstraints | None) -> list[str]:
    """The tags `constraints` turn on that the model never saw in training (frequency 0): it cannot draw them."""
    if constraints is None:
        return []
    on = [t for t in constraints.groups.values() if t] + [t for t, v in constraints.independent.items() if v]
    freq = dict(zip(bundle.schema.tags, np.asarray(bundle.freqs, np.float64)))
    return [t for t in on if freq.get(t, 1.0) <= 0]


def untrained_message(tags: list[str]) -> str:
    return (
        f"warning: the model saw no training image with {', '.join(repr(t) for t in tags)}; it was never taught "
        "to draw them, so the images will likely not show them (its model card lists the tags it was trained on)"
    )


def sample_tags(
    bundle: GeneratorBundle, constraints: TagConstraints | None, n: int, rng: np.random.Generator
) -> np.ndarray:
    """(N, T): fixed tags as given, every other tag from the model's empirical training distribution."""
    return bundle.schema.sample_conditional(n, rng, bundle.freqs, constraints)


def sample_tags_for_seeds(
    bundle: GeneratorBundle,
    constraints: TagConstraints | None,
    seeds: Sequence[int],
    seed_scheme: str = DEFAULT_SEED_SCHEME,
) -> np.ndarray:
    """(N, T) where row i's free tags come only from seeds[i], so (seed, constraints) reproduces one character.
    "torch-v1": numpy's default_rng(seed) through `sample_tags`; "portable-v1": `charforge.web.seeds`."""
    if check_seed_scheme(seed_scheme) == PORTABLE_V1:
        from charforge.web import seeds as portable

        return portable.sample_tags(bundle.schema, bundle.freqs, constraints, [int(s) for s in seeds])
    rows = [sample_tags(bundle, constraints, 1, np.random.default_rng(int(s)))[0] for s in seeds]
    return np.stack(rows) if rows else np.zeros((0, len(bundle.schema)), np.float32)


def characters_for_seeds(
    bundle: GeneratorBundle,
    constraints: TagConstraints | None,
    seeds: Sequence[int],
    *,
    fixed_noise: bool = False,
    truncation: float = 1.0,
    seed_scheme: str = DEFAULT_SEED_SCHEME,
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, list[int], np.ndarray]:
    """The one recipe behind the CLI, the demo and the studio: (images (N,S,S,3), noise seeds, tags (N,T)).

    A diffusion model also steers away from the tags the request turns off (`negative_vector`) and, with
    `init` (an (H, W, 3) uint8 image), starts from that image at the bundle's strength (img2img).

    Image i's free tags are drawn from seeds[i] (its tag seed); its noise comes from seeds[i], or from
    seeds[0] for every image with `fixed_noise` (same face, varying attributes; paper Fig. 8). So a
    (tag seed, constraints, noise seed) triple reproduces one image whatever else is in the batch.
    """
    tag_seeds = [int(s) for s in seeds]
    tag_m = sample_tags_for_seeds(bundle, constraints, tag_seeds, seed_scheme)
    noise = [tag_seeds[0]] * len(tag_seeds) if fixed_noise and tag_seeds else tag_seeds
    negative = negative_vector(bundle, constraints) if bundle.takes("negative") else None
    images = generate(
        bundle,
        tag_m,
        seeds=noise,
        truncation=truncation,
        seed_scheme=seed_scheme,
        negative=negative,
        init=init,
    )
    return images, noise, tag_m


def characters_for_request(
    bundle: GeneratorBundle,
    tags: str,
    n: int,
    seed: int,
    *,
    fixed_noise: bool = False,
    source: str = "tags",
    truncation: float = 1.0,
    seed_scheme: str = DEFAULT_SEED_SCHEME,
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, list[int], np.ndarray]:
    """The CLI's and demo's entry: `characters_for_seeds` for a tag string with tag seeds seed, seed+1, ...

    Returns (images, noise seeds, tag matrix); image i's tag seed is seed+i.
    """
    constraints = bundle.schema.parse(tags, source=source)
    return characters_for_seeds(
        bundle,
        constraints,
        [seed + i for i in range(n)],
        fixed_noise=fixed_noise,
        truncation=truncation,
        seed_scheme=seed_scheme,
        init=init,
    )


def request_record(
    bundle: GeneratorBundle, tags: str, *, init: Any = None, source: str = "tags"
) -> dict[str, Any]:
    """What a diffusion output records of its request beyond png_meta: the negative tags and, for img2img,
    the strength and the init image's digest (never its path). Empty for a GAN without an init."""
    off = []
    if bundle.takes("negative"):
        constraints = bundle.schema.parse(tags, source=source)
        off = [t for t, v in constraints.independent.items() if v is False] if constraints else []
    return record_of(bundle, off, init)


def record_of(bundle: GeneratorBundle, negative_tags: list[str], init: Any = None) -> dict[str, Any]:
    """`request_record` from the tags a request turns off and its init image: the one place the CLI and the
    studio build this part of an output's provenance (negative tags in the schema's order)."""
    negative = bundle.schema.to_vector(negative_tags) if negative_tags else None
    return negative_record(bundle, negative) | init_record(bundle, init)


def init_record(bundle: GeneratorBundle, init: Any) -> dict[str, Any]:
    """What an img2img output records of its start: the family's options for it (the strength, default
    included) and the init image's sha256 (never its path); {} without an init."""
    if init is None:
        return {}
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(init).tobytes()).hexdigest()
    return bundle.family_spec.init_record(bundle.options) | {"init_image_sha256": digest}


def sheet_meta(
    bundle: GeneratorBundle,
    tags: str,
    seed: int,
    seeds: list[int],
    tag_m: np.ndarray,
    fixed_noise: bool,
    truncation: float = 1.0,
    seed_scheme: str = DEFAULT_SEED_SCHEME,
) -> dict[str, Any]:
    """Provenance of a grid PNG: every image's noise seed, tag seed and tags (and the truncation, if any)."""
    meta = {
        **bundle.png_meta(seed, tag_m[0], seed_scheme),
        "seeds": seeds,
        "tag_seeds": [seed + i for i in range(len(tag_m))],
        "tags": [bundle.schema.from_vector(t) for t in tag_m],
        "fixed_noise": fixed_noise,
        "request": tags,
        **request_record(bundle, tags),
    }
    return meta | ({"truncation": truncation} if truncation != 1.0 else {})


def save_sheet(
    bundle: GeneratorBundle,
    images: np.ndarray,
    meta: dict[str, Any],
    path: str | Path,
    *,
    cols: int | None = None,
    watermark: bool = True,
) -> Path:
    """Write already generated images (N, S, S, 3) as one grid PNG with `meta`."""
    import math

    from charforge.core.images import image_grid
    from charforge.provenance import save_png

    return save_png(
        path, image_grid(images, cols or math.ceil(math.sqrt(len(images)))), meta, watermark=watermark
    )


def generate_sheet(
    bundle: GeneratorBundle,
    tags: str,
    *,
    n: int = 16,
    seed: int = 0,
    path: str | Path,
    fixed_noise: bool = False,
    cols: int | None = None,
    watermark: bool = True,
    truncation: float = 1.0,
    seed_scheme: str = DEFAULT_SEED_SCHEME,
) -> Path:
    """Write a grid PNG of n characters for a tag string, with provenance metadata (all seeds and tags) and,
    unless `watermark` is False, the invisible watermark."""
    images, seeds, tag_m = characters_for_request(
        bundle, tags, n, seed, fixed_noise=fixed_noise, truncation=truncation, seed_scheme=seed_scheme
    )
    meta = sheet_meta(bundle, tags, seed, seeds, tag_m, fixed_noise, truncation, seed_scheme)
    return save_sheet(bundle, images, meta, path, cols=cols, watermark=watermark)


def gif_bytes(frames: np.ndarray, duration_ms: int, meta: dict[str, Any] | None = None) -> bytes:
    """(F, S, S, 3) uint8 -> an endlessly looping GIF, used by the CLI and the studio alike.

    A GIF cannot keep the invisible watermark (its 256-colour palette destroys the DCT pattern), so the
    provenance goes into the GIF comment extension instead: the AI-generated statement, then `meta` as JSON.
    """
    import io
    import json

    from PIL import Image

    from charforge import __version__
    from charforge.provenance.metadata import AI_STATEMENT

    if len(frames) == 0:
        raise UserError("gif: no frames to encode", field="frames")
    info = {"software": f"charforge {__version__}", **(meta or {})}
    comment = f"{AI_STATEMENT}. {json.dumps(info, sort_keys=True)}"
    ims = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    buf = io.BytesIO()
    ims[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=ims[1:],
        duration=max(1, int(duration_ms)),
        loop=0,
        comment=comment.encode("utf-8"),
    )
    return buf.getvalue()


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of (Z,) vectors at fractions t (F,) -> (F, Z)."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if so.abs() < 1e-6:
        return a[None] + t[:, None] * (b - a)[None]
    return (torch.sin((1 - t) * omega)[:, None] * a[None] + torch.sin(t * omega)[:, None] * b[None]) / so


def interpolate(
    bundle: GeneratorBundle,
    a: tuple[int, np.ndarray],
    b: tuple[int, np.ndarray],
    frames: int,
    truncation: float = 1.0,
    seed_scheme: str = DEFAULT_SEED_SCHEME,
) -> np.ndarray:
    """Slerp between the seeds' noise and lerp between the tag vectors: (F, S, S, 3) uint8. The end frames equal
    `generate` for those seeds and tags at the same truncation and seed scheme."""
    if frames < 2:
        raise UserError(f"frames={frames}: need at least 2 frames", field="frames")
    (seed_a, tags_a), (seed_b, tags_b) = a, b
    za, zb = noise_for_seeds([seed_a, seed_b], bundle.z_dim, truncation, seed_scheme)
    t = torch.linspace(0, 1, frames)
    z = slerp(za, zb, t)  # (F, Z)
    z[0], z[-1] = (
        za,
        zb,
    )  # exactly the end points' noise (sin(omega)/sin(omega) rounds differently on some CPUs)
    ta, tb = np.asarray(tags_a, np.float32), np.asarray(tags_b, np.float32)
    tags = ta[None] + t.numpy()[:, None] * (tb - ta)[None]  # (F, T)
    return generate(bundle, tags, z=z)


@dataclass
class NPCRecord:
    image: np.ndarray  # (S, S, 3) uint8
    seed: int
    tags: np.ndarray  # (T,)


def _thumb(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, 16*16*3) float in [0, 1] by area averaging, whatever S is."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, S, S)
    x = torch.nn.functional.adaptive_avg_pool2d(x, NPC_THUMB)  # (N, 3, 16, 16)
    return x.permute(0, 2, 3, 1).reshape(len(images), -1).numpy()  # (N, 16*16*3)


def npc_batch(
    bundle: GeneratorBundle,
    n: int,
    seed: int,
    constraints: TagConstraints | None = None,
    min_distance: float = 0.04,
    max_tries: int | None = None,
    batch_size: int = 64,
    truncation: float = 1.0,
    *,
    should_stop: Callable[[], Any] | None = None,
    partial: bool = False,
    report: dict[str, Any] | None = None,
    seed_scheme: str = DEFAULT_SEED_SCHEME,
    init: np.ndarray | None = None,
) -> list[NPCRecord]:
    """n unique NPCs: unique seeds, and each portrait's 16x16 thumbnail differs from every accepted one by at
    least `min_distance` RMS (pixel units in [0, 1]). Each NPC's free tags are drawn from its own seed
    (`sample_tags_for_seeds`), so a record's (seed, constraints) reproduces its tags and image alone.

    A downsampled-pixel distance is the right test here: two NPCs count as duplicates when a player would see
    the same face (same colours in the same places), which block-averaged pixels capture directly, while
    perceptual hashes on 64 px portraits mostly encode the shared pose and would reject true variants.

    With a diffusion model and `init` (one (H, W, 3) uint8 image), every NPC is an img2img variation of that
    character at the bundle's strength: a family of look-alikes with their own seeds and tags.
    """
    negative = negative_vector(bundle, constraints) if bundle.takes("negative") else None
    portable = check_seed_scheme(seed_scheme) == PORTABLE_V1
    rng = None if portable else np.random.default_rng(seed)
    drawn = 0  # portable-v1: candidate seeds are words 0, 1, ... of the batch seed's NPC stream
    max_tries = max_tries or max(20 * n, 256)
    used: set[int] = set()
    out: list[NPCRecord] = []
    feats = np.zeros((0, NPC_THUMB * NPC_THUMB * 3), np.float32)
    tried, stopped = 0, None
    while len(out) < n and tried < max_tries:
        if should_stop is not None and (stopped := should_stop()):
            break  # a caller's budget (time, a cancelled request): stop between batches
        m = min(batch_size, max_tries - tried)
        if portable:
            from charforge.web.seeds import npc_candidate_seeds

            cand = npc_candidate_seeds(seed, drawn, m)
            drawn += m
        else:
            cand = rng.integers(0, 2**31 - 1, size=m)
        seeds = list(dict.fromkeys(int(s) for s in cand if int(s) not in used))
        used.update(seeds)
        tags = sample_tags_for_seeds(bundle, constraints, seeds, seed_scheme)  # each NPC's tags from its seed
        imgs = generate(
            bundle,
            tags,
            seeds=seeds,
            truncation=truncation,
            seed_scheme=seed_scheme,
            negative=negative,
            init=init,
        )
        tried += m
        for img, s, t, f in zip(imgs, seeds, tags, _thumb(imgs)):
            if len(out) >= n:
                break
            if len(feats) and np.sqrt(((feats - f) ** 2).mean(axis=1)).min() < min_distance:
                continue
            out.append(NPCRecord(img, s, t))
            feats = np.vstack([feats, f[None]])
    if report is not None:
        report.update(tried=tried, stopped=stopped or ("candidates" if len(out) < n else None))
    if len(out) < n and not partial:
        raise UserError(
            f"npc: only {len(out)} of {n} portraits were distinct enough after {tried} tries; "
            f"lower --min-distance (now {min_distance}) or relax the tag constraints",
            field="min_distance",
        )
    return out
