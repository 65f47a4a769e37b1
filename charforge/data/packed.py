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

import errno
import json
import os
import shutil
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
from charforge.utils.io import json_loads_bounded, sha256_file, write_json_atomic

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
    manifest = _read_manifest(mpath)
    for name in ("images.npy", "tags.npy") + (("params.npy",) if manifest["has_params"] else ()):
        if not (root / name).exists():
            raise UserError(f"{root}: {name} is missing; the dataset is incomplete, rebuild it")
    if verify:
        verify_checksums(root, manifest)
    n, s = manifest["count"], manifest["image_size"]
    schema = _manifest_schema(mpath, manifest)
    images = _open_npy(root / "images.npy", (n, s, s, 3), np.uint8)
    tags = _open_npy(root / "tags.npy", (n, len(schema)), np.uint8)
    space = None
    if manifest.get("param_space") is not None:
        if not isinstance(manifest["param_space"], dict):
            raise UserError(
                f"{mpath}: manifest field 'param_space' must be an object, got "
                f"{type(manifest['param_space']).__name__}; rebuild the dataset",
                field="param_space",
            )
        space = ParamSpace.from_dict(manifest["param_space"], source=f"{mpath}: param_space")
    params = None
    if manifest["has_params"]:
        if space is None:
            raise UserError(
                f"{mpath}: has_params is true but the manifest has no param_space; rebuild the dataset",
                field="param_space",
            )
        params = _open_npy(root / "params.npy", (n, space.vector_dim), np.float32)
    return PackedDataset(root, manifest, images, tags, params, schema, space)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _read_manifest(mpath: Path) -> dict[str, Any]:
    """The manifest as a dict whose fields have the types the readers rely on, else a UserError naming the field."""
    if not mpath.is_file():  # a device or FIFO would be read forever
        raise UserError(f"{mpath}: not a regular file, so not a manifest; rebuild the dataset")
    try:
        manifest = json_loads_bounded(mpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise UserError(f"{mpath}: manifest is not valid JSON ({e}); rebuild the dataset") from e
    except RecursionError as e:
        raise UserError(
            f"{mpath}: manifest is nested too deeply to be a charforge manifest; rebuild the dataset"
        ) from e
    except OSError as e:
        raise UserError(f"{mpath}: cannot read the manifest ({e.strerror or e})") from e
    if not isinstance(manifest, dict):
        raise UserError(
            f"{mpath}: the manifest must be a JSON object, got {type(manifest).__name__}; rebuild the dataset"
        )
    if manifest.get("format") != FORMAT:
        raise UserError(f"{mpath}: not a charforge packed dataset (format={manifest.get('format')!r})")

    def bad(name: str, want: str) -> UserError:
        v = manifest.get(name)
        got = "missing" if name not in manifest else f"{v!r} ({type(v).__name__})"
        return UserError(
            f"{mpath}: manifest field {name!r} must be {want}, got {got}; the manifest is damaged or was "
            "edited by hand, rebuild the dataset",
            field=name,
        )

    version = manifest.get("schema_version", 0)
    if not _is_int(version) or version < 0:
        raise bad("schema_version", f"a whole number (this charforge reads up to {SCHEMA_VERSION})")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{mpath}: schema version {version} is newer than this charforge supports ({SCHEMA_VERSION}); upgrade charforge"
        )
    if not _is_int(manifest.get("count")) or manifest["count"] < 0:
        raise bad("count", "the number of images, a whole number >= 0")
    if not _is_int(manifest.get("image_size")) or manifest["image_size"] < 1:
        raise bad("image_size", "the image side in pixels, a whole number >= 1")
    manifest.setdefault("has_params", False)
    if not isinstance(manifest["has_params"], bool):
        raise bad("has_params", "true or false")
    if not isinstance(manifest.get("tag_schema"), dict):
        raise bad("tag_schema", 'an object {"groups": [...], "independent": [...]}')
    checksums = manifest.setdefault("checksums", {})
    if not isinstance(checksums, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in checksums.items()
    ):
        raise bad("checksums", "an object of file name -> sha256 hex digest")
    items = manifest.setdefault("items", [])
    if not isinstance(items, list):
        raise bad("items", "a list with one {source, license} record per image")
    if len(items) != manifest["count"]:
        raise UserError(
            f"{mpath}: the manifest lists {len(items)} item records for count {manifest['count']} images "
            "(licence and source records would be wrong); rebuild the dataset",
            field="items",
        )
    for i, it in enumerate(items):
        lic = it.get("license") if isinstance(it, dict) else None
        if not isinstance(it, dict) or not (lic is None or isinstance(lic, str)):
            raise UserError(
                f"{mpath}: manifest items[{i}] must be an object with a string 'license', got {it!r:.80}; "
                "rebuild the dataset",
                field="items",
            )
    return manifest


def _manifest_schema(mpath: Path, manifest: dict[str, Any]) -> TagSchema:
    try:
        return TagSchema.from_dict(manifest["tag_schema"])
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(
            f"{mpath}: manifest field 'tag_schema' is not a valid tag schema ({type(e).__name__}: {e}); "
            "rebuild the dataset",
            field="tag_schema",
        ) from e


def _open_npy(path: Path, shape: tuple[int, ...], dtype, mode: str = "r") -> np.ndarray:
    """Memory-map a .npy after checking its header: never unpickles, never maps past the end of the file.

    The header must declare exactly `shape` and `dtype` (what the manifest says), and the file must hold
    all the bytes the header promises.
    """
    dtype = np.dtype(dtype)
    if not path.is_file():
        raise UserError(f"{path}: not a regular file; the dataset is incomplete, rebuild it")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                fshape, fortran, fdtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                fshape, fortran, fdtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, EOFError) as e:
        raise UserError(
            f"{path}: not a valid .npy array file ({e}); the dataset is damaged, rebuild it"
        ) from e
    if fdtype.hasobject:
        raise UserError(
            f"{path}: holds Python objects (dtype {fdtype}), which charforge never loads; "
            f"a packed dataset stores {dtype} numbers only. Rebuild the dataset"
        )
    if tuple(fshape) != tuple(shape) or fdtype != dtype or fortran:
        raise UserError(
            f"{path}: shape {tuple(fshape)} {fdtype} does not match the manifest, which implies "
            f"{tuple(shape)} {dtype}; the arrays and the manifest are from different builds, rebuild the dataset"
        )
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise UserError(
            f"{path}: truncated: the header promises {need:,} bytes but the file holds {have:,} "
            "(an interrupted copy or a full disk?); copy it again or rebuild the dataset"
        )
    try:
        return np.load(path, mmap_mode=mode, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: cannot map the array ({e}); rebuild the dataset") from e


def _checksummed_file(root: Path, name: str) -> Path:
    """The file a manifest checksum names, refused unless it is a regular file inside the dataset folder."""
    rel = Path(name)
    if not name or rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise UserError(
            f"{root / 'manifest.json'}: checksum entry {name!r} is not a file name inside the dataset "
            "folder; the manifest is damaged or hostile, rebuild the dataset",
            field="checksums",
        )
    path = root / rel
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except OSError:
        inside = False
    if not inside or not path.is_file():
        what = "points outside the dataset folder" if not inside else "is not a regular file"
        raise UserError(
            f"{path}: checksum entry {name!r} {what}; the manifest is damaged or hostile, rebuild the dataset",
            field="checksums",
        )
    return path


def verify_checksums(root: Path, manifest: dict[str, Any]) -> None:
    """Check the sha256 sum of every file the manifest lists (and that each array has one)."""
    checksums = manifest.get("checksums") or {}
    for name in ("images.npy", "tags.npy") + (("params.npy",) if manifest.get("has_params") else ()):
        if name not in checksums:
            raise UserError(
                f"{root / 'manifest.json'}: no checksum recorded for {name}, so it cannot be verified; "
                "rebuild the dataset",
                field="checksums",
            )
    for name, digest in checksums.items():
        path = _checksummed_file(root, name)
        if sha256_file(path) != digest:
            raise UserError(f"{path}: checksum mismatch, the file changed or is corrupt; rebuild the dataset")


def verify_training_data(ds: PackedDataset, *, checksums: bool = True, chunk: int = 4096) -> None:
    """Check a dataset before training on it; raises a UserError naming the file and row.

    Always (fast): array shapes and dtypes against the manifest, one item record per image, tag values
    only 0 or 1, parameters finite. With `checksums`, also the sha256
    sum of every array (reads every byte once).
    """
    root, m = ds.root, ds.manifest
    n, s = m.get("count"), m.get("image_size")
    expect = {"images.npy": ((n, s, s, 3), np.uint8), "tags.npy": ((n, len(ds.schema)), np.uint8)}
    arrays = {"images.npy": ds.images, "tags.npy": ds.tags}
    if ds.params is not None:
        if ds.space is None:
            raise UserError(f"{root}: params.npy is present but the manifest has no param_space; rebuild it")
        expect["params.npy"] = ((n, ds.space.vector_dim), np.float32)
        arrays["params.npy"] = ds.params
    elif m.get("has_params"):
        raise UserError(f"{root}: the manifest says the dataset has parameters but none were loaded")
    for name, arr in arrays.items():
        shape, dtype = expect[name]
        if arr.shape != shape or arr.dtype != dtype:
            raise UserError(
                f"{root / name}: shape {arr.shape} {arr.dtype} does not match the manifest "
                f"({shape} {np.dtype(dtype)}); rebuild the dataset"
            )
    items = m.get("items", [])
    if len(items) != n:
        raise UserError(
            f"{root / 'manifest.json'}: {len(items)} item records for {n} images; rebuild the dataset",
            field="items",
        )
    for start in range(0, n, chunk):
        block = np.asarray(ds.tags[start : start + chunk])
        bad = np.argwhere(block > 1)
        if len(bad):
            r, c = (int(v) for v in bad[0])
            raise UserError(
                f"{root / 'tags.npy'}: row {start + r} (0-based), tag {ds.schema.tags[c]!r} has value "
                f"{int(block[r, c])}; tags must be 0 or 1. The file is corrupt, rebuild the dataset",
                field="tags",
            )
        if ds.params is not None:
            block = np.asarray(ds.params[start : start + chunk])
            ok = np.isfinite(block)
            if not ok.all():
                r, c = (int(v) for v in np.argwhere(~ok)[0])
                raise UserError(
                    f"{root / 'params.npy'}: row {start + r} (0-based), column {c} is {float(block[r, c])}; "
                    "encoded parameters must be finite numbers. The file is corrupt, rebuild the dataset",
                    field="params",
                )
    if checksums:
        verify_checksums(root, m)


class PackedWriter:
    """Fill a packed dataset chunk by chunk; resumable after a kill.

    `config` fingerprints the job (creator, seed, n...). Resuming with a different config is refused
    rather than mixing two datasets in one folder. The arrays' disk blocks are reserved up front
    (after checking the free space), so a full disk is a clear error before any work, never a SIGBUS
    while writing into a memory map.
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
        if self.root.exists() and not self.root.is_dir():
            raise UserError(
                f"{self.root}: exists and is a file, not a folder; choose another output folder (-o) "
                "for the dataset",
                field="out",
            )
        if (self.root / "manifest.json").exists():
            raise UserError(
                f"{self.root}: a finished dataset is already there; choose another output folder or delete it"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(
                f"{self.root}: cannot create the output folder ({e.strerror or e}); choose another -o folder",
                field="out",
            ) from e
        state = self._read_state()
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
        specs = [("images.npy", (n, size, size, 3), np.uint8), ("tags.npy", (n, len(schema)), np.uint8)]
        if space is not None:
            specs.append(("params.npy", (n, space.vector_dim), np.float32))
        self._check_space(self._bytes_needed(specs, mode) + 512 * n + (1 << 20))
        arrays = [self._open(name, mode, shape, dtype) for name, shape, dtype in specs]
        self.images, self.tags = arrays[0], arrays[1]
        self.params = arrays[2] if space is not None else None
        self._save_state()

    def _read_state(self) -> dict[str, Any] | None:
        if not self.state_path.exists():
            return None
        fix = f"delete {self.state_path.name} (or the whole folder) to start the build over"
        if not self.state_path.is_file():
            raise UserError(f"{self.state_path}: the build state is damaged (not a regular file); {fix}")
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError, OSError) as e:
            raise UserError(
                f"{self.state_path}: the build state is damaged ({type(e).__name__}); {fix}"
            ) from e
        ok = (
            isinstance(state, dict)
            and isinstance(state.get("done"), list)
            and all(_is_int(k) and k >= 0 for k in state["done"])
            and (
                state.get("finalizing") is None or (_is_int(state["finalizing"]) and state["finalizing"] >= 0)
            )
        )
        if not ok:
            raise UserError(
                f"{self.state_path}: the build state is damaged (expected {{'config', 'done': [chunk ids]}}); {fix}"
            )
        return state

    def _bytes_needed(self, specs, mode: str) -> int:
        """Bytes still to be allocated on disk for the arrays (a resumed build has most of them already)."""
        total = 0
        for name, shape, dtype in specs:
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize + 4096
            path = self.root / name
            if mode == "r+" and path.is_file():
                nbytes -= getattr(path.stat(), "st_blocks", 0) * 512
            total += max(0, nbytes)
        return total

    def _check_space(self, need: int) -> None:
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return  # unknown: the reservation below still turns a full disk into a clear error
        if free < need:
            raise UserError(
                f"{self.root}: not enough free disk space: writing this dataset needs about {_fmt_bytes(need)} "
                f"more, but only {_fmt_bytes(free)} is free there. Free some space or choose an output folder "
                "on another disk (-o)",
                field="out",
            )

    def _disk_error(self, e: OSError, need: int | None = None) -> UserError:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            what = f" (about {_fmt_bytes(need)} needed)" if need else ""
            return UserError(
                f"{self.root}: the disk is full{what}; free some space or choose an output folder on another "
                "disk (-o), then rerun the same command to resume",
                field="out",
            )
        return UserError(
            f"{self.root}: cannot write the dataset ({e.strerror or e}); check the folder", field="out"
        )

    def _open(self, name: str, mode: str, shape, dtype) -> np.ndarray:
        path = self.root / name
        if mode == "r+":
            if self.finalizing is not None:
                short = (self.finalizing, *shape[1:])
                try:
                    return _open_npy(
                        path, short, dtype, "r+"
                    )  # truncated by a finalize killed before the manifest
                except UserError:
                    pass
            try:
                arr = _open_npy(path, tuple(shape), dtype, "r+")
            except UserError as e:
                raise UserError(
                    f"{e} (an unfinished build, expected shape {tuple(shape)}); delete the folder and rebuild"
                ) from e
        else:
            try:
                arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))
            except OSError as e:
                raise self._disk_error(e) from e
        try:
            _reserve(path)
        except OSError as e:
            raise self._disk_error(e, path.stat().st_size) from e
        return arr

    def _save_state(self) -> None:
        state = {"config": self.config, "done": sorted(self.done)}
        if self.finalizing is not None:
            state["finalizing"] = self.finalizing
        try:
            write_json_atomic(self.state_path, state)
        except OSError as e:
            raise self._disk_error(e) from e

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
        try:
            self.images[start:stop] = images
            self.tags[start:stop] = tags
            if self.params is not None and params is not None:
                self.params[start:stop] = params
            for arr in (self.images, self.tags, self.params):
                if arr is not None:
                    arr.flush()
        except OSError as e:
            raise self._disk_error(e) from e
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
            need = sum(a.nbytes // max(1, len(a)) * count for a in arrays.values() if len(a) != count)
            self._check_space(need + (1 << 20))
        try:
            for name, arr in arrays.items():
                arr.flush()
                if len(arr) != count:
                    _truncate_rows(self.root / name, arr, count)
        except OSError as e:
            raise self._disk_error(e) from e
        arr = None
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
        try:
            write_json_atomic(self.root / "manifest.json", manifest)
        except OSError as e:
            raise self._disk_error(e) from e
        self.state_path.unlink(missing_ok=True)
        return load_packed(self.root)


def _fmt_bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"  # pragma: no cover


def _reserve(path: Path) -> None:
    """Allocate every block of `path` now, so a later write into its memory map cannot hit a full disk
    (which would kill the process with SIGBUS). Raises OSError (ENOSPC) when the disk is full."""
    if not hasattr(os, "posix_fallocate"):
        return
    size = path.stat().st_size
    if size == 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        # EINVAL/EOPNOTSUPP: this filesystem cannot reserve blocks; the free-space check has to do
    finally:
        os.close(fd)


def _truncate_rows(path: Path, arr: np.ndarray, count: int, chunk: int = 4096) -> None:
    """Keep the first `count` rows of a memory-mapped .npy, streaming in chunks (bounded memory)."""
    tmp = path.with_name(f".{path.name}.trunc")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=arr.dtype, shape=(count, *arr.shape[1:]))
    try:
        _reserve(tmp)
    except OSError:
        del out
        tmp.unlink(missing_ok=True)
        raise
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        out[start:stop] = arr[start:stop]
    out.flush()
    del out
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
