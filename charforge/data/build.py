"""Build a packed dataset by rendering a creator: parameters sampled from a seed, rendered in chunks.

The parameters of all N images are drawn up front from `seed`, so chunk k is the same on every run and
a killed build resumes by rendering only the chunks that are not marked finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from charforge.core.space import ParamBatch
from charforge.creators.base import Creator, get_creator
from charforge.data.packed import PackedDataset, PackedWriter
from charforge.errors import UserError
from charforge.utils.progress import progress

BUILTIN_LICENSE = "CC0-1.0 (render of the charforge built-in creator)"

_worker_creator: Creator | None = None
_worker_error: BaseException | None = None


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when the build process goes, however it goes (even SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above ran
        os._exit(1)

    def watch() -> None:  # the portable fallback: poll for reparenting
        while os.getppid() == parent_pid:
            threading.Event().wait(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="charforge-parent-watch", daemon=True).start()


def _init_worker(creator_name: str, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends the pool
    global _worker_creator, _worker_error
    try:
        import torch

        torch.set_num_threads(1)
        _worker_creator = get_creator(creator_name)
    except BaseException as e:  # reported by the first task: a failing initializer would respawn forever
        _worker_error = e


def _render_chunk(args: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    cat, cont, size = args
    if _worker_error is not None:
        raise _worker_error
    assert _worker_creator is not None
    return _worker_creator.render(ParamBatch(cat, cont), size)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While building, SIGTERM unwinds like Ctrl-C, so the worker pool is ended and nothing is left running."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # the host (the CLI) handles it already
    ):
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(
            f"-o {out}: exists and is a file, not a folder; give a new or existing folder for the dataset",
            field="out",
        )
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
    with _sigterm_as_interrupt():
        if workers == 1:
            for k in todo:
                sl = slice(k * chunk, min(n, (k + 1) * chunk))
                finish(k, cr.render(params[sl], size))
        else:
            jobs = [
                (params.cat[k * chunk : (k + 1) * chunk], params.cont[k * chunk : (k + 1) * chunk], size)
                for k in todo
            ]
            _render_in_pool(creator, jobs, todo, workers, finish)
    bar.close()
    license_ = BUILTIN_LICENSE if creator.split("=")[0] in ("builtin", "builtin-styles") else "unknown"
    items = [{"source": f"creator:{creator}#seed{seed}/{i}", "license": license_} for i in range(n)]
    return writer.finalize(items, info={"creator": creator, "seed": seed})


def _render_in_pool(creator: str, jobs: list, todo: list[int], workers: int, finish) -> None:
    """Render `jobs` in `workers` spawned processes, in order; any exit from here ends every worker."""
    import multiprocessing as mp

    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(creator, os.getpid()))
    try:
        for k, images in zip(todo, pool.imap(_render_chunk, jobs)):
            finish(k, images)
        pool.close()
    except BaseException:
        pool.terminate()  # interrupted or failed: kill the workers now rather than finishing the queue
        raise
    finally:
        pool.join()
