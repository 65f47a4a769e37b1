"""Generator model files: weights + the family's model config + tag schema, frequencies and provenance.

Format 2 (this version) metadata:
  charforge_kind     "generator"
  charforge_format   "2"
  charforge_config   the family's model config (charforge.models.config), with its "family"; nothing else
  tag_schema, tag_freqs, model_id, provenance (data hash, step, preset name, teacher hash: no paths)
Format 1 files (before the family seam) stored the whole training preset as charforge_config; they are read
by taking the family's architecture fields from it, so the shipped weights and older runs keep loading.
Every value is checked before a network is built: an untrusted file gets a UserError, never a traceback
or a huge allocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from charforge.core.tags import TagSchema
from charforge.errors import UserError
from charforge.models.config import MAX_TAGS, ModelConfig
from charforge.models.families import FAMILIES, build_network, get_family
from charforge.models.io import load_model, save_model

KIND = "generator"
FORMAT = 2
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"


def shipped_generators(weights_dir: Path = SHIPPED_DIR) -> dict[str, Path]:
    """Shipped generators by name: weights/generator_<name>.safetensors ("default" is the shipped GAN) and
    weights/diffusion_<name>.safetensors ("diffusion" for diffusion_default, else "diffusion-<name>")."""
    if not weights_dir.is_dir():
        return {}
    out = {p.stem[len("generator_") :]: p for p in sorted(weights_dir.glob("generator_*.safetensors"))}
    for p in sorted(weights_dir.glob("diffusion_*.safetensors")):
        name = p.stem[len("diffusion_") :]
        out["diffusion" if name == "default" else f"diffusion-{name}"] = p
    return out


@dataclass
class GeneratorFile:
    config: ModelConfig
    schema: TagSchema
    freqs: np.ndarray  # (T,) float64 in [0, 1]
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    format: int

    def build(self) -> nn.Module:
        """The network with these weights, in eval mode, gradients off."""
        net = build_network(self.config, len(self.schema))
        try:
            net.load_state_dict(self.tensors)
        except RuntimeError as e:
            raise UserError(
                f"{self.meta.get('_path')}: its weights do not match its own config ({str(e)[:300]})"
            ) from e
        return net.eval().requires_grad_(False)


def save_generator(
    path: str | Path,
    state: dict[str, torch.Tensor],
    config: ModelConfig,
    schema: TagSchema,
    freqs: Any,
    *,
    model_id: str,
    provenance: dict[str, Any] | None = None,
) -> Path:
    extra = {
        "charforge_format": str(FORMAT),
        "tag_schema": schema.to_dict(),
        "tag_freqs": [float(f) for f in np.asarray(freqs, np.float64).reshape(-1)],
        "model_id": model_id,
        "provenance": provenance or {},
    }
    return save_model(path, state, kind=KIND, config=config.to_dict(), extra=extra)


def _v1_config(cfg: dict[str, Any], path: Path) -> ModelConfig:
    """A format-1 file's training preset -> the family's architecture config (extra preset fields dropped)."""
    fam = cfg.get("family")
    if fam not in FAMILIES:
        raise UserError(f"{path}: records family {fam!r}; this version knows {', '.join(FAMILIES)}")
    cls = get_family(fam).config
    return cls.from_dict(
        {k: cfg[k] for k in cls.field_names() if k in cfg}, source=f"{path}: charforge_config"
    )


def _schema(meta: dict[str, Any], path: Path) -> TagSchema:
    raw = meta.get("tag_schema")
    if not isinstance(raw, dict):
        raise UserError(
            f"{path}: tag_schema is missing or not a JSON object; not a generator this version reads"
        )
    groups, indep = raw.get("groups", []), raw.get("independent", [])
    if not isinstance(groups, list) or not isinstance(indep, list):
        raise UserError(f"{path}: tag_schema groups and independent must be lists")
    n = len(indep) + sum(len(g.get("tags", [])) if isinstance(g, dict) else 0 for g in groups)
    if n > MAX_TAGS:
        raise UserError(f"{path}: tag_schema has {n} tags, over the limit of {MAX_TAGS}")
    try:
        return TagSchema.from_dict(raw)
    except UserError as e:
        raise UserError(f"{path}: tag_schema: {e}") from e
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise UserError(f"{path}: tag_schema is malformed ({e})") from e


def read_tag_schema(path: str | Path) -> TagSchema:
    """The validated tag schema in a model file's metadata (generator, training state's generator, tagger),
    without loading its weights."""
    from charforge.models.io import read_metadata

    return _schema(read_metadata(path), Path(path))


def _freqs(meta: dict[str, Any], schema: TagSchema, path: Path) -> np.ndarray:
    raw = meta.get("tag_freqs")
    if not isinstance(raw, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw
    ):
        raise UserError(f"{path}: tag_freqs must be a list of numbers")
    f = np.asarray(raw, np.float64)
    if len(f) != len(schema):
        raise UserError(f"{path}: tag_freqs has {len(f)} values for {len(schema)} tags")
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in f):
        raise UserError(f"{path}: tag_freqs must be finite frequencies in [0, 1]")
    return f


def read_generator(path: str | Path) -> GeneratorFile:
    """Read and validate a generator file of format 1 or 2 (weights loaded, network not yet built)."""
    path = Path(path)
    tensors, meta = load_model(path, kind=KIND)
    cfg = meta.get("charforge_config")
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: charforge_config is not a JSON object; not a generator this version reads")
    fmt_raw = meta.get("charforge_format", 1)
    try:
        fmt = int(fmt_raw)
    except (TypeError, ValueError):
        fmt = -1
    if fmt not in (1, FORMAT):
        raise UserError(
            f"{path}: generator file format {fmt_raw!r}; this version reads formats 1 and {FORMAT}. "
            "Upgrade charforge to read it"
        )
    if fmt == 1:
        config = _v1_config(cfg, path)
    else:
        fam = cfg.get("family")
        if fam not in FAMILIES:
            raise UserError(f"{path}: records family {fam!r}; this version knows {', '.join(FAMILIES)}")
        config = get_family(fam).config.from_dict(cfg, source=f"{path}: charforge_config")
    schema = _schema(meta, path)
    freqs = _freqs(meta, schema, path)
    return GeneratorFile(config, schema, freqs, tensors, {**meta, "_path": str(path)}, fmt)
