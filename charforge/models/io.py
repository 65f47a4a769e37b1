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
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from charforge import __version__
from charforge.errors import UserError
from charforge.utils.io import atomic_path
from charforge.utils.io import sha256_file as file_sha256  # noqa: F401  (re-exported for model callers)


def canonical_safetensors(data: bytes) -> bytes:
    """The same file with its header's metadata keys sorted.

    safetensors writes `__metadata__` from a hash map, so the key order (and the file's sha256) changes from
    process to process for identical weights; model ids and watermark tags hash the file, so they must not.
    The header is re-serialised compactly with sorted metadata and padded with spaces to 8 bytes as the format
    requires; tensor entries and the data block are untouched (offsets are relative to the data block).
    """
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    out = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | header
    raw = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data[8 + n :]


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
    blob = canonical_safetensors(save(clean, metadata=meta))
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(blob)
    except OSError as e:  # a full disk, a read-only folder: say where and how much, not a traceback
        free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else 0
        raise UserError(
            f"{path.parent}: could not write {path.name} ({e.strerror or e}); it needs {len(blob) / 1e6:.1f} MB "
            f"and {free / 1e6:.1f} MB are free there. Free some space (or choose another folder) and rerun; "
            "finished files are kept"
        ) from e
    return path


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
