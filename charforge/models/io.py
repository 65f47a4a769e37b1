"""Model files: one .safetensors holding weights plus the JSON that rebuilds the network.

Metadata keys (all strings, as safetensors requires):
  charforge_kind     "generator" | "tagger" | "f2p" | ...
  charforge_config   JSON: everything needed to rebuild the network (a typed config's asdict)
  charforge_version  the writing version
  + any extra keys the caller passes (tag_schema, tag_freqs, param_space, ...), JSON-encoded
Loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from charforge import __version__
from charforge.errors import UserError
from charforge.utils.io import atomic_path
from charforge.utils.io import sha256_file as file_sha256  # noqa: F401  (re-exported for model callers)


def save_model(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    *,
    kind: str,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write weights + metadata. `extra` values are JSON-encoded."""
    meta = {"charforge_kind": kind, "charforge_config": json.dumps(config), "charforge_version": __version__}
    for k, v in (extra or {}).items():
        meta[k] = json.dumps(v)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=meta)
    return Path(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata only, decoded from JSON where possible (no tensors loaded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .safetensors model file ({e})") from e
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def load_model(
    path: str | Path, *, kind: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, decoded metadata). Checks `kind` when given."""
    meta = read_metadata(path)
    if kind is not None and meta.get("charforge_kind") != kind:
        raise UserError(
            f"{path}: is a {meta.get('charforge_kind', 'non-charforge')!r} file, expected a {kind!r} model"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: weights cannot be read ({e})") from e
    return tensors, meta
