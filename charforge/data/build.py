"""Build a packed dataset by rendering a creator: parameters sampled from a seed, rendered in chunks.

The parameters of all N images are drawn up front from `seed`, so chunk k is the same on every run and
a killed build resumes by rendering only the chunks that are not marked finished.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from charforge.core.space import ParamBatch
from charforge.creators.base import Creator, get_creator
from charforge.data.packed import PackedDataset, PackedWriter
from charforge.errors import UserError
from charforge.utils.progress import progress

BUILTIN_LICENSE = "CC0-1.0 (render of the charforge built-in creator)"

_worker_creator: Creator | None = None


def _init_worker(creator_name: str) -> None:
    import torch

    torch.set_num_threads(1)
    global _worker_creator
    _worker_creator = get_creator(creator_name)


def _render_chunk(args: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    cat, cont, size = args
    assert _worker_creator is not None
    return _worker_creator.render(ParamBatch(cat, cont), size)


def build_from_creator(
    out: str | Path,
    *,
    creator: str = "builtin",
    n: int = 50_000,
    size: int = 64,
    seed: int = 0,
    chunk: int = 512,
    workers: int = 1,
    show_progress: bool = True,
) -> PackedDataset:
    """Render `n` characters at `size` px into a packed dataset at `out` (resumable)."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if not 16 <= size <= 1024:
        raise UserError(f"--size must be between 16 and 1024 px, got {size}")
    if chunk < 1:
        raise UserError(f"--chunk must be at least 1 image, got {chunk}")
    cr = get_creator(creator)
    if getattr(cr, "can_render", True) is False:
        raise UserError(
            f"creator {creator!r} cannot render new images (a recorded creator); import its images instead"
        )
    schema = cr.schema
    if schema is None:
        from charforge.core.tags import TagSchema

        schema = TagSchema(groups=[], independent=[])
    params = cr.sample(n, np.random.default_rng(seed))
    config = {"kind": "creator", "creator": creator, "n": n, "size": size, "seed": seed, "chunk": chunk}
    writer = PackedWriter(out, n=n, size=size, schema=schema, space=cr.space, config=config)
    todo = [k for k in range((n + chunk - 1) // chunk) if not writer.is_done(k)]
    bar = progress(
        total=n, desc=f"render {creator} {size}px", unit="img", disable=None if show_progress else True
    )
    bar.update(n - sum(min(chunk, n - k * chunk) for k in todo))

    def finish(k: int, images: np.ndarray) -> None:
        sl = slice(k * chunk, min(n, (k + 1) * chunk))
        batch = params[sl]
        tags = cr.derive_tags(batch)
        tags = np.zeros((len(batch), len(schema)), np.uint8) if tags is None else tags
        writer.write_chunk(k, sl.start, images, np.asarray(tags, np.uint8), cr.space.encode(batch))
        bar.update(len(images))

    workers = max(1, min(workers, os.cpu_count() or 1, len(todo) or 1))
    if workers == 1:
        for k in todo:
            sl = slice(k * chunk, min(n, (k + 1) * chunk))
            finish(k, cr.render(params[sl], size))
    else:
        jobs = [
            (params.cat[k * chunk : (k + 1) * chunk], params.cont[k * chunk : (k + 1) * chunk], size)
            for k in todo
        ]
        import multiprocessing as mp

        with ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(creator,)
        ) as ex:
            for k, images in zip(todo, ex.map(_render_chunk, jobs)):
                finish(k, images)
    bar.close()
    license_ = BUILTIN_LICENSE if creator == "builtin" else "unknown"
    items = [{"source": f"creator:{creator}#seed{seed}/{i}", "license": license_} for i in range(n)]
    return writer.finalize(items, info={"creator": creator, "seed": seed})
