"""Upscaling (super-resolution): the one place that turns images into x2 / x4 images. CLI, studio and export
call these (docs/upscale.md).

    from charforge.sr import load_upscaler
    up = load_upscaler("default")             # shipped name, .safetensors file, run folder, or (onnx) .onnx dir
    big = up.upscale(images_uint8_nhwc, 4)    # (N, 4H, 4W, 3) uint8

Images of any size work: large ones run in overlapping tiles (the seams are exact: each tile keeps a margin
wider than the network's receptive field). An alpha channel is upscaled apart (bicubic) and kept. Pixel art on an
exact grid is enlarged by repeating pixels instead (`pixel_art="auto"`, the default; charforge.core.pixelart).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charforge.core.pixelart import check_mode, grid_cell, nearest_upscale
from charforge.errors import UserError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_NAME = "default"
SCALE_CHOICES = (1, 2, 4)  # 1 = no upscaling (the CLI's and the API's default)
TILE = 192  # input px per tile side for images larger than this
MARGIN = 24  # input px of context around each tile (the trunk's receptive field is 2 * 19 + 1 px)
MAX_OUTPUT_PIXELS = 64_000_000  # 8k x 8k: larger outputs are refused before any work
BACKENDS = ("torch", "onnx")


def shipped_upscalers() -> dict[str, Path]:
    return {p.stem.removeprefix("upscaler_"): p for p in sorted(WEIGHTS_DIR.glob("upscaler_*.safetensors"))}


def check_scale(scale: int, *, field: str = "upscale") -> int:
    if scale not in SCALE_CHOICES:
        raise UserError(f"--{field} {scale}: choose 2 or 4 (or 1 for none)", field=field)
    return int(scale)


def resolve_path(spec: str | Path | None) -> Path:
    """None / a shipped name -> the shipped file; a run folder -> its latest upscaler (upscaler.safetensors; pass
    upscaler-best.safetensors, the best validation PSNR, as a file); a file as is."""
    named = shipped_upscalers()
    if spec is None or str(spec) == DEFAULT_NAME:
        if DEFAULT_NAME not in named:
            raise UserError(
                "no shipped upscaler is installed; train one with `charforge sr train -o runs/sr` and pass "
                "--upscaler runs/sr",
                field="upscaler",
            )
        return named[DEFAULT_NAME]
    if isinstance(spec, str) and spec in named:
        return named[spec]
    path = Path(spec)
    if path.is_dir():
        for name in ("upscaler.safetensors", "upscaler-best.safetensors"):
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path}: no upscaler in this folder yet (upscaler.safetensors)", field="upscaler")
    if path.is_file():
        return path
    raise UserError(
        f"upscaler {str(spec)!r}: not a file, run folder or shipped name (shipped: {', '.join(named) or 'none'})",
        field="upscaler",
    )


@dataclass
class Upscaler:
    net: Any  # SRNet (torch) or a dict {scale: onnxruntime session}
    config: dict[str, Any]
    model_id: str
    sha256: str
    path: Path
    backend: str = "torch"
    bf16: bool = False  # torch backend: bf16 autocast (only where the CPU computes it natively)
    device: str = "cpu"

    @property
    def scales(self) -> list[int]:
        return sorted(int(s) for s in self.config.get("scales", []))

    def provenance(self, scale: int) -> dict[str, Any]:
        """PNG metadata fields of an upscaled output (next to the generator's model_id and sha256)."""
        return {
            "upscale": scale,
            "upscaler_id": self.model_id,
            "upscaler_sha256": self.sha256,
            "upscaler_backend": self.backend + ("/bf16" if self.bf16 else ""),
        }

    # -------------------------------------------------------------------------------------------- running

    def _run(self, x: np.ndarray, scale: int) -> np.ndarray:
        """float32 (B, 3, H, W) in [0, 255] -> float32 (B, 3, sH, sW) in [0, 255]."""
        if self.backend == "onnx":
            sess = self.net[scale]
            return sess.run(None, {"image": np.ascontiguousarray(x, np.float32)})[0]
        import torch

        from charforge.models.sr import bicubic

        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device) / 255.0
        with torch.inference_mode():
            with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.bf16):
                r = self.net.residual(t.contiguous(memory_format=torch.channels_last), scale)
            y = (bicubic(t, scale) + r.float()).mul(255.0).clamp(0, 255)
        return y.cpu().numpy()

    def _run_tiled(self, img: np.ndarray, scale: int) -> np.ndarray:
        """One float32 (3, H, W) image larger than TILE, in overlapping tiles; exact away from image borders."""
        _, h, w = img.shape
        out = np.empty((3, h * scale, w * scale), np.float32)
        for y0 in range(0, h, TILE):
            for x0 in range(0, w, TILE):
                y1, x1 = min(h, y0 + TILE), min(w, x0 + TILE)
                ya, xa = max(0, y0 - MARGIN), max(0, x0 - MARGIN)
                yb, xb = min(h, y1 + MARGIN), min(w, x1 + MARGIN)
                res = self._run(img[None, :, ya:yb, xa:xb], scale)[0]
                oy, ox = (y0 - ya) * scale, (x0 - xa) * scale
                out[:, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = res[
                    :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
                ]
        return out

    def upscale(
        self,
        images: np.ndarray,
        scale: int,
        *,
        batch: int = 8,  # images per network call: 8 beat 16 and 32 on every CPU path measured (docs/upscale.md, Speed)
        pixel_art: str = "auto",
        methods: list[str] | None = None,
    ) -> np.ndarray:
        """uint8 (N, H, W, 3) or (H, W, 3) RGB, or (.., 4) RGBA -> uint8 at scale x. scale 1 returns a copy.

        pixel_art "auto": a picture drawn on an exact pixel grid (charforge.core.pixelart.grid_cell) is enlarged by
        repeating its pixels, as pixel art is scaled, not by the network (which would soften its cell edges);
        "off": the network for every picture. `methods`, if given, receives one line per picture saying which."""
        check_scale(scale)
        check_mode(pixel_art)
        single = images.ndim == 3
        imgs = images[None] if single else images
        if imgs.ndim != 4 or imgs.shape[-1] not in (3, 4) or imgs.dtype != np.uint8:
            raise UserError(
                f"upscale: expected uint8 images (N, H, W, 3 or 4), got {imgs.dtype} {imgs.shape}"
            )
        if scale == 1:
            return images.copy()
        if scale not in self.scales:
            raise UserError(
                f"--upscale {scale}: this upscaler ({self.model_id}) has scales {self.scales}",
                field="upscale",
            )
        n, h, w, c = imgs.shape
        if h * w * scale * scale > MAX_OUTPUT_PIXELS:
            raise UserError(
                f"upscale: a {w}x{h} image at x{scale} would be {w * scale}x{h * scale} px, over the "
                f"{MAX_OUTPUT_PIXELS // 1_000_000} megapixel limit; downscale it first or use --upscale 2"
            )
        cells = [grid_cell(im) for im in imgs] if pixel_art == "auto" else [None] * n
        if methods is not None:
            methods.extend(
                f"nearest (pixel art, {k} px cells)" if k else f"network ({self.model_id})" for k in cells
            )
        if all(cells):
            res = nearest_upscale(imgs, scale)
            return res[0] if single else res
        if any(cells):  # a mixed batch: the network on the rest, pixel repeats here
            net_idx = [i for i, k in enumerate(cells) if not k]
            res = np.empty((n, h * scale, w * scale, c), np.uint8)
            res[net_idx] = self.upscale(imgs[net_idx], scale, batch=batch, pixel_art="off")
            for i, k in enumerate(cells):
                if k:
                    res[i] = nearest_upscale(imgs[i], scale)
            return res[0] if single else res
        rgb = imgs[..., :3].transpose(0, 3, 1, 2).astype(np.float32)
        if h <= TILE and w <= TILE:
            outs = [self._run(rgb[i : i + batch], scale) for i in range(0, n, batch)]
            big = np.concatenate(outs)
        else:
            big = np.stack([self._run_tiled(im, scale) for im in rgb])
        res = np.rint(big).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        if c == 4:  # alpha: smooth bicubic, no hallucinated edges in the mask
            from PIL import Image

            alpha = np.stack(
                [
                    np.asarray(Image.fromarray(a).resize((w * scale, h * scale), Image.BICUBIC))
                    for a in imgs[..., 3]
                ]
            )
            res = np.concatenate([res, alpha[..., None]], axis=-1)
        return res[0] if single else res


_CACHE: dict[tuple[Any, ...], Upscaler] = {}


def load_upscaler(
    spec: str | Path | None = None,
    *,
    backend: str = "torch",
    device: str = "cpu",
    precision: str = "auto",
    onnx_threads: int | None = None,
) -> Upscaler:
    """The upscaler named by `spec` (see resolve_path). precision: auto (bf16 where the device computes it
    natively, else fp32) or fp32. backend onnx: exported once into the ONNX cache, then onnxruntime (fp32)."""
    import torch

    from charforge.core.device import resolve_device, use_bf16
    from charforge.models.io import file_sha256
    from charforge.models.sr import load_upscaler_file

    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r}: valid backends are {', '.join(BACKENDS)}", field="backend")
    if precision not in ("auto", "fp32"):
        raise UserError(f"precision {precision!r}: choose auto or fp32", field="precision")
    path = resolve_path(spec).resolve()
    dev = resolve_device(device) if backend == "torch" else torch.device("cpu")
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, backend, str(dev), precision, onnx_threads)
    if key in _CACHE:
        return _CACHE[key]
    net, meta = load_upscaler_file(path)
    sha = file_sha256(path)
    config = dict(meta["charforge_config"])
    model_id = str(meta.get("model_id", path.stem))[:200]
    if backend == "onnx":
        from charforge.export.sr_onnx import cached_sessions

        up = Upscaler(cached_sessions(net, sha, onnx_threads), config, model_id, sha, path, backend="onnx")
    else:
        bf16 = precision == "auto" and use_bf16(dev, True, what="upscaling")
        up = Upscaler(
            net.to(dev, memory_format=torch.channels_last),
            config,
            model_id,
            sha,
            path,
            bf16=bf16,
            device=str(dev),
        )
    _CACHE.clear()
    _CACHE[key] = up
    return up


def apply(up: Upscaler | None, images: np.ndarray, scale: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(images at `scale`, the provenance fields to add to their metadata); no upscaler or scale 1: the images as
    they are and no fields. The one step the CLI, the studio and the Gradio demo share."""
    if up is None or scale == 1:
        return images, {}
    methods: list[str] = []
    out = up.upscale(np.asarray(images, np.uint8), scale, methods=methods)
    return out, up.provenance(scale) | {"upscale_method": ", ".join(sorted(set(methods)))}
