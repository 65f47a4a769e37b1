"""Atomic file writes: finished work is never lost to a kill mid-write."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_figure(fig, path: str | os.PathLike, **kw) -> None:
    """Write a matplotlib figure as PNG atomically (a killed job never leaves half a plot)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **kw)


def cache_dir(sub: str = "") -> Path:
    """charforge's cache folder ($CHARFORGE_CACHE, else $XDG_CACHE_HOME/charforge, else ~/.cache/charforge),
    optionally a subfolder of it. Nothing in it is needed: every entry is rebuilt when missing."""
    root = os.environ.get("CHARFORGE_CACHE")
    base = (
        Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "charforge"
    )
    return base / sub if sub else base


def read_image_npz(
    path: str | Path, keys: tuple[str, ...], flag: str, expected: str
) -> dict[str, np.ndarray]:
    """The arrays `keys` of an .npz of labelled images (read with allow_pickle=False, so it cannot run code), its
    `images` checked to be uint8 (N, S, S, 3). Any problem is a UserError that names the option `flag`, the file
    and what was `expected`."""
    from charforge.errors import UserError

    p, field = Path(path), flag.lstrip("-")
    if not p.is_file():
        raise UserError(f"{flag} {p}: no such file; expected {expected}", field=field)
    try:
        with np.load(p, allow_pickle=False) as z:
            got = {k: z[k] for k in keys if k in z.files}
    except (OSError, ValueError) as e:
        raise UserError(f"{flag} {p}: not a readable .npz ({e}); expected {expected}", field=field) from e
    missing = [k for k in keys if k not in got]
    if missing:
        raise UserError(f"{flag} {p}: no {', '.join(missing)} array; expected {expected}", field=field)
    images = got["images"]
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[-1] != 3
        or images.shape[1] != images.shape[2]
    ):
        raise UserError(
            f"{flag} {p}: images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}", field=field
        )
    return got


JSON_MAX_DEPTH = 200  # nesting depth of arrays and objects a file charforge reads may have
_BRACKET_STEP = np.zeros(256, np.int8)  # per byte: +1 for [ and {, -1 for ] and }
_BRACKET_STEP[[91, 123]], _BRACKET_STEP[[93, 125]] = 1, -1
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # a JSON string literal, escapes included


def _json_depth(text: str) -> int:
    """Deepest nesting of [ and { in `text`, counted without recursion (brackets inside strings count too)."""
    b = np.frombuffer(text.encode("utf-8", "replace"), np.uint8)
    return int(np.cumsum(_BRACKET_STEP[b], dtype=np.int32).max()) if len(b) else 0


def json_loads_bounded(text: str, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """json.loads, but a text nested deeper than `max_depth` raises RecursionError *before* parsing. Parsing such
    a text would recurse to Python's limit, and a garbage collection that runs finalizers at that depth prints
    "Exception ignored ... RecursionError" to stderr even though the caller catches the error (seen once in a
    hardening test). The depth is counted without recursion: first over the raw text (a few ms for a 2.7 MB
    manifest), and only where that passes the limit again with strings cut out, so a bracket inside a string
    never refuses a valid file. (Closing brackets inside strings can hide depth from the first count; json's own
    RecursionError, which callers catch, is then the backstop.)"""
    if text.count("[") + text.count("{") > max_depth and _json_depth(text) > max_depth:
        if _json_depth(_JSON_STRING.sub("", text)) > max_depth:
            raise RecursionError(f"JSON nested deeper than {max_depth} levels")
    return json.loads(text)
