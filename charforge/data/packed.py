"""The packed dataset: one checked format that training, evaluation and fitting all read.

A folder holding
  images.npy     (N, S, S, 3) uint8, memory-mapped on read
  tags.npy       (N, T) uint8 0/1, columns in `tag_schema.tags` order
  params.npy     (N, D) float32 creator parameters as `ParamSpace.encode` vectors (optional)
  manifest.json  schema version, tag schema, param space, count, size, per-image source + licence, checksums

Writers fill pre-allocated memory maps chunk by chunk and record finished chunks in `.build_state.json`,
so a killed build resumes where it stopped. The manifest is written last, atomically: a folder without
one is an unfinished build, never a silently short dataset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charforge import __version__
from charforge.core.space import ParamBatch, ParamSpace
from charforge.core.tags import TagSchema
from charforge.errors import UserError
from charforge.utils.io import sha256_file, write_json_atomic

FORMAT = "charforge-packed"
SCHEMA_VERSION = 1
STATE = ".build_state.json"
ARRAYS = ("images.npy", "tags.npy", "params.npy")


@dataclass
class PackedDataset:
    root: Path
    manifest: dict[str, Any]
    images: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    tags: np.ndarray  # (N, T) uint8
    params: np.ndarray | None  # (N, D) float32
    schema: TagSchema
    space: ParamSpace | None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def tag_frequencies(self) -> np.ndarray:
        return self.schema.frequencies(self.tags)

    def param_batch(self, idx=slice(None)) -> ParamBatch:
        if self.params is None or self.space is None:
            raise UserError(
                f"{self.root}: this dataset stores no creator parameters (it was imported, not built from a creator)"
            )
        return self.space.decode(self.params[idx])

    def licence_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.manifest.get("items", []):
            lic = item.get("license") or "unknown"
            counts[lic] = counts.get(lic, 0) + 1
        return counts

    def manifest_hash(self) -> str:
        import hashlib

        return hashlib.sha256((self.root / "manifest.json").read_bytes()).hexdigest()


def load_packed(root: str | Path, *, verify: bool = False) -> PackedDataset:
    """Open a packed dataset, checking the manifest against the arrays. `verify` also checks sha256 sums."""
    root = Path(root)
    mpath = root / "manifest.json"
    if not root.is_dir():
        raise UserError(
            f"{root}: no such dataset folder. Build one with `charforge data build` or `charforge data import`"
        )
    if not mpath.exists():
        hint = (
            " (an unfinished build: rerun the same command to resume it)" if (root / STATE).exists() else ""
        )
        raise UserError(f"{root}: no manifest.json, so this is not a packed dataset{hint}")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{mpath}: manifest is not valid JSON ({e}); rebuild the dataset") from e
    if manifest.get("format") != FORMAT:
        raise UserError(f"{mpath}: not a charforge packed dataset (format={manifest.get('format')!r})")
    if manifest.get("schema_version", 0) > SCHEMA_VERSION:
        raise UserError(
            f"{mpath}: schema version {manifest['schema_version']} is newer than this charforge supports ({SCHEMA_VERSION}); upgrade charforge"
        )
    for name in ("images.npy", "tags.npy") + (("params.npy",) if manifest.get("has_params") else ()):
        if not (root / name).exists():
            raise UserError(f"{root}: {name} is missing; the dataset is incomplete, rebuild it")
    if verify:
        for name, digest in manifest.get("checksums", {}).items():
            if sha256_file(root / name) != digest:
                raise UserError(
                    f"{root / name}: checksum mismatch, the file changed or is corrupt; rebuild the dataset"
                )
    images = np.load(root / "images.npy", mmap_mode="r")
    tags = np.load(root / "tags.npy", mmap_mode="r")
    params = np.load(root / "params.npy", mmap_mode="r") if manifest.get("has_params") else None
    n, s = manifest["count"], manifest["image_size"]
    if images.shape != (n, s, s, 3) or images.dtype != np.uint8:
        raise UserError(
            f"{root / 'images.npy'}: shape {images.shape} {images.dtype} does not match the manifest ({n}, {s}, {s}, 3) uint8"
        )
    schema = TagSchema.from_dict(manifest["tag_schema"])
    if tags.shape != (n, len(schema)):
        raise UserError(
            f"{root / 'tags.npy'}: shape {tags.shape} does not match the manifest ({n}, {len(schema)})"
        )
    space = ParamSpace.from_dict(manifest["param_space"]) if manifest.get("param_space") else None
    if params is not None and (space is None or params.shape != (n, space.vector_dim)):
        raise UserError(
            f"{root / 'params.npy'}: shape {params.shape} does not match the manifest's parameter space"
        )
    return PackedDataset(root, manifest, images, tags, params, schema, space)


class PackedWriter:
    """Fill a packed dataset chunk by chunk; resumable after a kill.

    `config` fingerprints the job (creator, seed, n...). Resuming with a different config is refused
    rather than mixing two datasets in one folder.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        n: int,
        size: int,
        schema: TagSchema,
        space: ParamSpace | None,
        config: dict[str, Any],
        resume: bool = True,
    ):
        self.root = Path(root)
        self.n, self.size, self.schema, self.space, self.config = n, size, schema, space, config
        self.state_path = self.root / STATE
        if (self.root / "manifest.json").exists():
            raise UserError(
                f"{self.root}: a finished dataset is already there; choose another output folder or delete it"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else None
        self.finalizing: int | None = None  # row count being truncated to, once finalize has begun
        if state is not None and resume and state.get("config") == config:
            self.done: set[int] = set(state["done"])
            self.finalizing = state.get("finalizing")
            mode = "r+"
        else:
            if state is not None and state.get("config") != config:
                raise UserError(
                    f"{self.root}: holds an unfinished build with different settings; delete the folder or rerun the original command"
                )
            self.done, mode = set(), "w+"
        self.images = self._open("images.npy", mode, (n, size, size, 3), np.uint8)
        self.tags = self._open("tags.npy", mode, (n, len(schema)), np.uint8)
        self.params = (
            self._open("params.npy", mode, (n, space.vector_dim), np.float32) if space is not None else None
        )
        self._save_state()

    def _open(self, name: str, mode: str, shape, dtype) -> np.ndarray:
        path = self.root / name
        if mode == "r+":
            arr = np.load(path, mmap_mode="r+")
            if self.finalizing is not None and arr.shape == (self.finalizing, *shape[1:]):
                return arr  # already truncated by a finalize that was killed before the manifest
            if arr.shape != tuple(shape):
                raise UserError(
                    f"{path}: unfinished build has shape {arr.shape}, expected {tuple(shape)}; delete the folder and rebuild"
                )
            return arr
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))

    def _save_state(self) -> None:
        state = {"config": self.config, "done": sorted(self.done)}
        if self.finalizing is not None:
            state["finalizing"] = self.finalizing
        write_json_atomic(self.state_path, state)

    def is_done(self, chunk_id: int) -> bool:
        return chunk_id in self.done

    def write_chunk(
        self,
        chunk_id: int,
        start: int,
        images: np.ndarray,
        tags: np.ndarray,
        params: np.ndarray | None = None,
    ) -> None:
        """Write rows [start, start+len) and mark `chunk_id` finished (after the data is flushed)."""
        stop = start + len(images)
        assert images.shape[1:] == (self.size, self.size, 3), images.shape  # (B, S, S, 3)
        self.images[start:stop] = images
        self.tags[start:stop] = tags
        if self.params is not None and params is not None:
            self.params[start:stop] = params
        for arr in (self.images, self.tags, self.params):
            if arr is not None:
                arr.flush()
        self.done.add(chunk_id)
        self._save_state()

    def finalize(
        self, items: Sequence[dict[str, Any]], *, count: int | None = None, info: dict[str, Any] | None = None
    ) -> PackedDataset:
        """Truncate to `count` rows if fewer were kept, checksum, and write the manifest last."""
        count = self.n if count is None else count
        if len(items) != count:
            raise ValueError(f"finalize: {len(items)} item records for {count} rows")
        arrays = {"images.npy": self.images, "tags.npy": self.tags}
        if self.params is not None:
            arrays["params.npy"] = self.params
        self.images = self.tags = self.params = None
        if count != self.n:  # recorded first, so a kill while truncating resumes instead of failing
            self.finalizing = count
            self._save_state()
        for name, arr in arrays.items():
            arr.flush()
            if len(arr) != count:
                _truncate_rows(self.root / name, arr, count)
        del arr
        arrays = {name: None for name in arrays}  # release the maps before hashing
        checksums = {name: sha256_file(self.root / name) for name in arrays}
        manifest = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "charforge_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "count": count,
            "image_size": self.size,
            "has_params": self.space is not None,
            "tag_schema": self.schema.to_dict(),
            "param_space": self.space.to_dict() if self.space is not None else None,
            "config": self.config,
            "info": info or {},
            "checksums": checksums,
            "items": list(items),
        }
        write_json_atomic(self.root / "manifest.json", manifest)
        self.state_path.unlink(missing_ok=True)
        return load_packed(self.root)


def _truncate_rows(path: Path, arr: np.ndarray, count: int, chunk: int = 4096) -> None:
    """Keep the first `count` rows of a memory-mapped .npy, streaming in chunks (bounded memory)."""
    tmp = path.with_name(f".{path.name}.trunc")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=arr.dtype, shape=(count, *arr.shape[1:]))
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        out[start:stop] = arr[start:stop]
    out.flush()
    del out
    import os

    os.replace(tmp, path)


def write_packed(
    root: str | Path,
    images: np.ndarray,
    tags: np.ndarray,
    schema: TagSchema,
    *,
    params: np.ndarray | None = None,
    space: ParamSpace | None = None,
    items: Sequence[dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
) -> PackedDataset:
    """Write in-memory arrays as a packed dataset in one go (tests, small imports)."""
    n, size = len(images), images.shape[1]
    w = PackedWriter(
        root, n=n, size=size, schema=schema, space=space, config=config or {"kind": "in-memory"}, resume=False
    )
    if n:
        w.write_chunk(0, 0, images, tags, params)
    items = items if items is not None else [{"source": f"array:{i}", "license": "unknown"} for i in range(n)]
    return w.finalize(items)
