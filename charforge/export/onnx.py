"""ONNX export for game engines, and an onnxruntime backend with the generator bundle's interface.

Generator graph
  inputs   z     (B, z_dim) float32, standard normal
           tags  (B, T)     float32, 0/1 in the order of metadata `tag_names`
  output   image (B, 3, S, S) float32 RGB in [-1, 1]; pixel = round((x + 1) * 127.5)
The batch axis is dynamic. `model.metadata_props` carries everything a game needs to sample tags without
charforge (schema, empirical frequencies, a recipe), plus z_dim, image size, model id and hash; the same
values go to a `<name>.json` sidecar, because game engines do not expose ONNX metadata to scripts.
onnx and onnxruntime are imported inside the functions, so `import charforge` stays light.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from charforge import __version__
from charforge.core.tags import TagSchema
from charforge.errors import UserError
from charforge.models.families import FAMILIES
from charforge.utils.io import atomic_path, write_json_atomic
from charforge.web.seeds import PORTABLE_V1
from charforge.web.seeds import SPEC as SEED_SPEC

DEFAULT_OPSET = 17  # ONNX opset; onnxruntime (and Unreal NNE's ORT runtimes) and Sentis >= 2.6 load it; older Sentis wants 15
PARITY_TOL = 1e-4  # max abs difference, fp32 onnxruntime vs PyTorch, accepted by the exporters' self-check

TAG_RECIPE = (
    "For each exclusive group (tag_schema.groups) pick at most one tag with probability proportional to its "
    "tag_freqs entry (pick none if the group's frequencies are all 0); turn each independent tag on with "
    "probability tag_freqs[i]; for each pair in tag_schema.conflicts that is on, turn one of the two off. "
    "A tag the player chose is simply set to 1 (and the rest of its group to 0)."
)


def _torch_export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    opset: int,
) -> None:
    """TorchScript-based exporter (the torch.export one needs `onnxscript`, which charforge does not ship)."""
    dyn = {n: {0: "batch"} for n in input_names + output_names}
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the legacy exporter's deprecation notices are not the user's concern
        with atomic_path(path) as tmp:
            torch.onnx.export(
                module,
                args,
                str(tmp),
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dyn,
                opset_version=opset,
                do_constant_folding=True,
            )


def _set_metadata(path: Path, props: Mapping[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    model.producer_name, model.producer_version = "charforge", __version__
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def generator_metadata(bundle: Any) -> dict[str, Any]:
    """The metadata_props written into a generator's ONNX file (values JSON-encoded unless strings)."""
    schema: TagSchema = bundle.schema
    return (
        {
            "charforge_kind": "generator",
            "charforge_version": __version__,
            "model_id": str(bundle.model_id),
            "model_sha256": str(bundle.sha256 or ""),
            "z_dim": int(bundle.z_dim),
            "image_size": int(bundle.image_size),
            "tag_names": schema.tags,
            "tag_schema": schema.to_dict(),
            "tag_freqs": [round(float(f), 6) for f in np.asarray(bundle.freqs).reshape(-1)],
            "tag_sampling": TAG_RECIPE,
            "seed_scheme": PORTABLE_V1,  # how charforge turns a seed into z and free tags, portable to any language
            "seed_scheme_spec": SEED_SPEC,
            "input_z": "float32 (batch, z_dim), standard normal N(0, 1)",
            "input_tags": "float32 (batch, T), 0 or 1 in tag_names order",
            "output_image": "float32 (batch, 3, S, S), RGB planes (NCHW), values in [-1, 1]",
            "pixel_mapping": "pixel_uint8 = clamp(round((value + 1) * 127.5), 0, 255)",
            "config": dict(bundle.config or {}),
        }
        | _pixel_art_props(getattr(bundle, "pixel_art", None))
    )


def _pixel_art_props(grid: dict | None) -> dict[str, Any]:
    """A model trained on pixel art: its training set's grid and palette, and how charforge snaps outputs onto
    them (so a game can do the same)."""
    if not grid:
        return {}
    return {
        "pixel_art": {"cell": grid["cell"], "offset": grid["offset"], "palette": grid["palette"]},
        "pixel_art_snap": "per cell of `cell` px starting at `offset` (row, column; part cells at the edges too): "
        "with s the cell's channel sums over its n pixels, the palette colour p minimising sum((s - n * p)^2) "
        "(the nearest palette colour to the mean, RGB distance, in exact integers), ties to the lowest palette index, "
        "filling the cell",
    }


class _KeepTagsInput(nn.Module):
    """For unconditional generators: keeps a (B, T) `tags` input in the graph (ignored), so every export has
    the same two inputs and game code need not special-case them."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z, tags):
        x = self.net(z, tags)  # (B, 3, S, S)
        return x + 0.0 * tags[:, :1, None, None]


def export_generator_onnx(
    bundle: Any, path: str | Path, opset: int = DEFAULT_OPSET, *, check: bool = True
) -> Path:
    """Write `bundle.net` as ONNX with a dynamic batch and the metadata above (+ a .json sidecar); returns the path.

    `check` runs onnxruntime on random inputs at batch 1 and 3 and raises if it differs from PyTorch by more
    than PARITY_TOL.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise UserError(f"{path}: the output file name must end in .onnx")
    spec = FAMILIES.get(str((bundle.config or {}).get("family")))  # a stand-in net's made-up family: generic
    exporter = spec.load_exporter() if spec is not None else None
    if exporter is not None:  # a family with its own graph (diffusion: the denoiser its sampler loop calls)
        return exporter(bundle, path, opset, check=check)
    net = bundle.net.eval()
    t = len(bundle.schema)
    if getattr(net, "n_tags", t) == 0 and t > 0:
        net = _KeepTagsInput(net)
    z = torch.randn(2, bundle.z_dim, generator=torch.Generator().manual_seed(0))
    tags = torch.zeros(2, t)
    try:
        _torch_export(net, (z, tags), path, input_names=["z", "tags"], output_names=["image"], opset=opset)
    except Exception as e:  # an operator the exporter does not know: say which, don't bury it in a traceback
        raise UserError(f"{path}: the generator could not be exported to ONNX opset {opset}: {e}") from e
    meta = generator_metadata(bundle)
    _set_metadata(path, meta)
    write_json_atomic(path.with_suffix(".json"), meta)
    if check:
        err = generator_parity(bundle, path, batch_sizes=(1, 3))
        if err > PARITY_TOL:
            raise UserError(
                f"{path}: onnxruntime output differs from PyTorch by {err:.2e} (> {PARITY_TOL}); "
                "the exported graph is wrong, please report it"
            )
    return path


DENOISER_SAMPLING = (
    "A diffusion model: this graph is one denoiser step, not a generator. Start from x = z reshaped to "
    "(B, 3, S, S); for each timestep t of a DDIM or DPM-Solver++ schedule built from config "
    "(train_timesteps, beta_schedule, prediction; 'trailing' spacing) run the graph on [x, x] with tags "
    "[c, 0] (classifier-free guidance), combine pred = p(c) + (guidance - 1) * (p(c) - p(0)), and step the "
    "scheduler. charforge.models.diffusion.sample_loop is the reference loop; charforge's onnx backend runs "
    "exactly that loop around this graph."
)


def denoiser_metadata(bundle: Any) -> dict[str, Any]:
    return {
        **generator_metadata(bundle),
        "graph": "denoiser",
        "input_x": "float32 (batch, 3, S, S), the noisy image x_t",
        "input_t": "int64 (batch,), the training timestep of x_t (0 .. train_timesteps - 1)",
        "input_tags": "float32 (batch, T), 0 or 1 in tag_names order; all zero = unconditional",
        "output_prediction": "float32 (batch, 3, S, S), the model's prediction (config.prediction: v or epsilon)",
        "sampling": DENOISER_SAMPLING,
    }


def export_denoiser_onnx(bundle: Any, path: Path, opset: int = DEFAULT_OPSET, *, check: bool = True) -> Path:
    """A diffusion model's denoiser as ONNX: (x, t, tags) -> prediction, dynamic batch; metadata says how to
    sample with it. `check`: onnxruntime vs PyTorch on random inputs at batch 1 and 3 (PARITY_TOL)."""
    net = bundle.net.eval()
    s, t = bundle.image_size, len(bundle.schema)
    x = torch.randn(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    ts = torch.tensor([10, 900], dtype=torch.long)
    tags = torch.zeros(2, t)
    try:
        _torch_export(
            net, (x, ts, tags), path, input_names=["x", "t", "tags"], output_names=["prediction"], opset=opset
        )
    except Exception as e:
        raise UserError(f"{path}: the denoiser could not be exported to ONNX opset {opset}: {e}") from e
    meta = denoiser_metadata(bundle)
    _set_metadata(path, meta)
    write_json_atomic(path.with_suffix(".json"), meta)
    if check:
        err = denoiser_parity(bundle, path, batch_sizes=(1, 3))
        if err > PARITY_TOL:
            raise UserError(
                f"{path}: onnxruntime's denoiser output differs from PyTorch by {err:.2e} (> {PARITY_TOL}); "
                "the exported graph is wrong, please report it"
            )
    return path


def denoiser_parity(bundle: Any, path: str | Path, batch_sizes=(1, 5), seed: int = 0) -> float:
    """Max abs difference of one denoiser call, onnxruntime vs PyTorch, on random x_t, t and 0/1 tags."""
    gen = OnnxGenerator(path, threads=1)
    g = torch.Generator().manual_seed(seed)
    s, worst = bundle.image_size, 0.0
    steps = int(bundle.config.get("train_timesteps", 1000))
    for b in batch_sizes:
        x = torch.randn(b, 3, s, s, generator=g)
        ts = torch.randint(0, steps, (b,), generator=g)
        tags = (torch.rand(b, len(bundle.schema), generator=g) < 0.3).float()
        with torch.no_grad():
            ref = bundle.net.eval()(x, ts, tags).float().numpy()
        worst = max(worst, float(np.abs(gen.denoise(x, ts, tags).numpy() - ref).max()))
    return worst


def generator_parity(bundle: Any, path: str | Path, batch_sizes=(1, 5), seed: int = 0) -> float:
    """Max abs difference between onnxruntime and PyTorch outputs on random z and random 0/1 tags."""
    gen = OnnxGenerator(path, threads=1)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in batch_sizes:
        z = torch.randn(b, bundle.z_dim, generator=g)
        tags = (torch.rand(b, len(bundle.schema), generator=g) < 0.3).float()
        with torch.no_grad():
            ref = bundle.net.eval()(z, tags).numpy()
        worst = max(worst, float(np.abs(gen.run(z.numpy(), tags.numpy()) - ref).max()))
    return worst


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(B, 3, S, S) float in [-1, 1] -> (B, S, S, 3) uint8."""
    x = np.clip(np.rint((np.asarray(images, dtype=np.float32) + 1.0) * 127.5), 0, 255)
    return x.astype(np.uint8).transpose(0, 2, 3, 1)  # (B, S, S, 3)


class OnnxGenerator:
    """A generator ONNX file run by onnxruntime, with the sampling attributes of a `GeneratorBundle`.

    Attributes: `schema` (TagSchema), `freqs` ((T,) float32), `z_dim`, `image_size`, `model_id`, `sha256`,
    `config` (dict), `path`, `backend` = "onnx". `run(z, tags)` returns (B, 3, S, S) float32 in [-1, 1];
    `generate(z, tags)` the same as (B, S, S, 3) uint8.
    """

    backend = "onnx"

    def __init__(self, path: str | Path, *, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(
                f"{self.path}: no such ONNX file; export one with `charforge export onnx -o {self.path.name}`"
            )
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads  # CPU threads for one call
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for malformed files
            raise UserError(f"{self.path}: not a loadable ONNX model ({e})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("charforge_kind") != "generator":
            raise UserError(
                f"{self.path}: not a charforge generator export (no charforge_kind=generator metadata)"
            )
        self.metadata = {k: _maybe_json(v) for k, v in meta.items()}
        self.schema = TagSchema.from_dict(self.metadata["tag_schema"])
        self.freqs = np.asarray(self.metadata["tag_freqs"], dtype=np.float32)
        self.z_dim = int(self.metadata["z_dim"])
        self.image_size = int(self.metadata["image_size"])
        self.model_id = str(self.metadata.get("model_id", self.path.stem))
        self.sha256 = str(self.metadata.get("model_sha256", ""))
        self.config = dict(self.metadata.get("config") or {})
        self.pixel_art = self.metadata.get("pixel_art")  # a pixel-art model's grid and palette, else None
        self.is_denoiser = self.metadata.get("graph") == "denoiser"

    def denoise(self, x: torch.Tensor, t: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """A diffusion export's one denoiser call: x_t (B, 3, S, S), t (B,), tags (B, T) -> prediction."""
        feeds = {
            "x": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32),
            "t": np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.int64),
            "tags": np.ascontiguousarray(tags.detach().cpu().numpy(), dtype=np.float32),
        }
        return torch.from_numpy(self.session.run(["prediction"], feeds)[0])

    def run(self, z: np.ndarray, tags: np.ndarray, **options: Any) -> np.ndarray:
        """z (B, z_dim), tags (B, T) -> (B, 3, S, S) float32 in [-1, 1]. A diffusion export runs charforge's
        sampler loop around the denoiser graph (`options`: steps, guidance, sampler, ...)."""
        if self.is_denoiser:
            from charforge.models.diffusion import sample_loop

            s = self.image_size
            x = torch.from_numpy(np.asarray(z, np.float32)).reshape(len(z), 3, s, s)
            c = torch.from_numpy(np.asarray(tags, np.float32))
            return sample_loop(self.denoise, self.config, x, c, **options).numpy()
        z = np.ascontiguousarray(z, dtype=np.float32)
        tags = np.ascontiguousarray(tags, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim or tags.shape != (len(z), len(self.schema)):
            raise ValueError(
                f"expected z (B, {self.z_dim}) and tags (B, {len(self.schema)}), got {z.shape} and {tags.shape}"
            )
        return self.session.run(["image"], {"z": z, "tags": tags})[0]

    def generate(self, z: np.ndarray, tags: np.ndarray) -> np.ndarray:
        """z (B, z_dim), tags (B, T) -> (B, S, S, 3) uint8."""
        return to_uint8(self.run(z, tags))


def _maybe_json(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


# ---- face-to-parameter ---------------------------------------------------------------------------------
F2P_PARTS = ("embedder", "translator", "imitator")  # attributes of an f2p object tried, in this order
DEFAULT_IMAGE_SIZE = 64  # pixels; used for an image-input part that records no size of its own
PART_DOCS = {  # (input name, input meaning, output names, output meaning) for the parts charforge.f2p has
    "embedder": (
        "image",
        "RGB planes (NCHW) in [0, 1], square, resized to the input size",
        ["embedding"],
        "L2-normalised face embedding",
    ),
    "translator": (
        "embedding",
        "the embedder's L2-normalised output",
        ["params"],
        "categorical logits (param_space order, one block per categorical parameter) "
        "then continuous parameters in [0, 1] (ParamSpace.encode layout)",
    ),
    "imitator": (
        "params",
        "encoded parameter vector (ParamSpace.encode layout)",
        ["embedding", "image"],
        "predicted embedding of the render, and a low-resolution preview",
    ),
}


class _EmbedOnly(nn.Module):
    """Exports `net.embed(x)` (the embedding) instead of `forward`, which also returns training heads."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.embed(x)


def _as_module(name: str, part: Any) -> nn.Module | None:
    module = (
        part
        if isinstance(part, nn.Module)
        else next(
            (
                m
                for m in (getattr(part, a, None) for a in ("encoder", "net", "model", "module"))
                if isinstance(m, nn.Module)
            ),
            None,
        )
    )
    if module is not None and name == "embedder" and callable(getattr(module, "embed", None)):
        return _EmbedOnly(module)
    return module


def _input_size(*objs: Any) -> int:
    for obj in objs:
        for holder in (obj, getattr(obj, "cfg", None)):
            for attr in ("image_size", "in_size", "input_size", "size"):
                v = getattr(holder, attr, None)
                if isinstance(v, int):
                    return v
    return DEFAULT_IMAGE_SIZE


def _example_input(part: Any, module: nn.Module, batch: int = 2) -> tuple[torch.Tensor, str]:
    """A random input for the first layer with weights: (B, F) for a Linear, (B, C, S, S) for a Conv2d."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            return torch.randn(batch, layer.in_features), f"float32 (batch, {layer.in_features})"
        if isinstance(layer, nn.Conv2d):
            size = _input_size(part, module, getattr(module, "net", None))
            return torch.rand(
                batch, layer.in_channels, size, size
            ), f"float32 (batch, {layer.in_channels}, {size}, {size})"
    raise ValueError("it has no Linear or Conv2d layer to infer its input shape from")


def _output_names(name: str, out: Any) -> list[str]:
    if isinstance(out, Mapping):
        return [str(k) for k in out]
    n = 1 if isinstance(out, torch.Tensor) else len(out) if isinstance(out, (tuple, list)) else -1
    if n < 0:
        raise ValueError(f"its output is a {type(out).__name__}, not tensors")
    known = PART_DOCS.get(name, (None, None, [], None))[2]
    return known if len(known) == n else (["output"] if n == 1 else [f"output_{i}" for i in range(n)])


def _flatten(out: Any) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.numpy()]
    vals = out.values() if isinstance(out, Mapping) else out
    return [v.numpy() for v in vals]


def _export_part(name: str, part: Any, outdir: Path, opset: int, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Export one network; returns its record (path, input, outputs, parity) or {'error': why}."""
    import onnxruntime as ort

    module = _as_module(name, part)
    if module is None:
        return {
            "error": f"{type(part).__name__} is not a PyTorch network (e.g. dlib's face recogniser), so "
            "torch.onnx cannot export it; use the `learned` embedder for an exportable f2p"
        }
    module = module.eval()
    in_name, in_doc, _, out_doc = PART_DOCS.get(name, ("input", "", [], ""))
    try:
        x, spec = _example_input(part, module)
        with torch.no_grad():
            ref = module(x)
        names = _output_names(name, ref)
        path = outdir / f"{name}.onnx"
        _torch_export(module, (x,), path, input_names=[in_name], output_names=names, opset=opset)
        _set_metadata(
            path,
            {
                "charforge_kind": f"f2p_{name}",
                "charforge_version": __version__,
                "input": f"{in_name}: {spec}; {in_doc}".rstrip("; "),
                "outputs": names,
                "output_meaning": out_doc,
                **extra,
            },
        )
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {in_name: x.numpy()}
        )
    except (
        Exception
    ) as e:  # unsupported operator, data-dependent control flow, odd inputs: report, don't crash
        return {"error": f"export failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    err = max(float(np.abs(a - b).max()) for a, b in zip(got, _flatten(ref)))
    return {"path": str(path), "input": f"{in_name}: {spec}", "outputs": names, "parity_max_abs_error": err}


def export_f2p_onnx(f2p: Any, outdir: str | Path, opset: int = DEFAULT_OPSET) -> dict[str, dict[str, Any]]:
    """Export the networks of a face-to-parameter model (`charforge.f2p.F2P`: embedder, translator, imitator).

    A part that is a torch module, or holds one as `.encoder`/`.net`/`.model`, is traced with a random input
    shaped from its first Linear (B, F) or Conv2d (B, C, S, S) layer; an embedder exports its `embed()`.
    A dict `{part: module}` works too. Returns (and writes to `outdir/f2p_onnx.json`) one record per part:
    the file, input, output names and the parity error, or `error` saying why it could not be exported.
    The parameter space goes into each file's metadata, so a game can decode the translator's output.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    parts = (
        dict(f2p)
        if isinstance(f2p, Mapping)
        else {n: getattr(f2p, n) for n in F2P_PARTS if getattr(f2p, n, None) is not None}
    )
    if not parts:
        raise UserError(f"the face-to-parameter model has none of {', '.join(F2P_PARTS)} to export")
    space = getattr(f2p, "space", None)
    extra = {"param_space": space.to_dict()} if hasattr(space, "to_dict") else {}
    report = {name: _export_part(name, part, outdir, opset, extra) for name, part in parts.items()}
    write_json_atomic(outdir / "f2p_onnx.json", report)
    return report
