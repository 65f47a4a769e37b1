"""ONNX export of the upscaler: one graph per scale, parity-checked against PyTorch.

Graph (per scale s)
  input   image  (B, 3, H, W) float32 RGB in [0, 255]
  output  image  (B, 3, s*H, s*W) float32 RGB in [0, 255] (round to get pixels)
Batch, height and width are dynamic. metadata_props carry the scale, the model id and sha256 of the
safetensors file, and the config; a `<name>.json` sidecar repeats them for engines that hide ONNX metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charforge.errors import UserError
from charforge.export.onnx import DEFAULT_OPSET, _set_metadata
from charforge.models.sr import FixedScale, SRNet
from charforge.utils.io import atomic_path, cache_dir, write_json_atomic

PARITY_TOL = 0.05  # max abs difference on the 0-255 scale, fp32 onnxruntime vs PyTorch fp32


def export_scale(
    net: SRNet, scale: int, path: Path, meta: dict[str, Any], opset: int = DEFAULT_OPSET
) -> Path:
    module = FixedScale(net.float().eval(), scale).eval()
    x = torch.rand(1, 3, 24, 20) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with atomic_path(path) as tmp:
            torch.onnx.export(
                module,
                (x,),
                str(tmp),
                dynamo=False,
                input_names=["image"],
                output_names=["upscaled"],
                dynamic_axes={
                    "image": {0: "batch", 2: "height", 3: "width"},
                    "upscaled": {0: "batch", 2: "h_out", 3: "w_out"},
                },
                opset_version=opset,
                do_constant_folding=True,
            )
    _set_metadata(path, {**meta, "scale": scale})
    return path


def parity(net: SRNet, scale: int, path: Path, seed: int = 0) -> float:
    """Max abs difference (0-255 scale) between onnxruntime and PyTorch fp32 on random images of two shapes."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for shape in ((1, 3, 64, 64), (2, 3, 37, 51)):
        x = torch.rand(shape, generator=g) * 255
        with torch.inference_mode():
            ref = FixedScale(net.float().eval(), scale)(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def export_upscaler_onnx(net: SRNet, outdir: str | Path, *, model_id: str, sha256: str) -> dict[str, Any]:
    """upscaler_x2.onnx / upscaler_x4.onnx (+ .json sidecars) into outdir; parity-checked. Returns a summary."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    meta = {
        "charforge_kind": "upscaler",
        "model_id": model_id,
        "model_sha256": sha256,
        "config": net.cfg.to_dict(),
    }
    summary: dict[str, Any] = {}
    for s in sorted(net.cfg.scales):
        path = export_scale(net, s, outdir / f"upscaler_x{s}.onnx", meta)
        diff = parity(net, s, path)
        if diff > PARITY_TOL:
            path.unlink(missing_ok=True)
            raise UserError(
                f"{path}: ONNX parity check failed (max difference {diff:.3g} of 255 > {PARITY_TOL}); "
                "the export was removed. Please report this with your torch and onnxruntime versions"
            )
        write_json_atomic(
            path.with_suffix(".json"),
            {
                **meta,
                "scale": s,
                "parity_max_abs": diff,
                "input": "image (B,3,H,W) float32 RGB 0-255",
                "output": "upscaled (B,3,sH,sW) float32 RGB 0-255",
            },
        )
        summary[f"x{s}"] = {"path": str(path), "parity_max_abs": diff}
    return summary


def cached_sessions(net: SRNet, sha256: str, threads: int | None = None) -> dict[int, Any]:
    """{scale: onnxruntime session} from the ONNX cache ($CHARFORGE_CACHE/onnx/upscaler-<sha>/), exporting once."""
    import onnxruntime as ort

    folder = cache_dir("onnx") / f"upscaler-{sha256}"
    if not all((folder / f"upscaler_x{s}.onnx").is_file() for s in net.cfg.scales):
        export_upscaler_onnx(net, folder, model_id="cache", sha256=sha256)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return {
        s: ort.InferenceSession(str(folder / f"upscaler_x{s}.onnx"), opts, providers=["CPUExecutionProvider"])
        for s in net.cfg.scales
    }


def read_sidecar(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).with_suffix(".json").read_text())
