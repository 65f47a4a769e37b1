"""The studio's guards: upload size and pixel caps, content sniffing, in-memory multipart, bounded concurrency.

Everything a client sends is untrusted. Uploads are read from the request stream into memory while the
bytes are counted (never spooled to disk, so no photo ever touches the file system), the format is judged
from the first bytes (magic numbers), never from the filename or the declared content type, and the pixel
count is checked from the image header before a single pixel is decoded.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = (  # (prefix, offset, format name); WEBP also needs "WEBP" at offset 8
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
)


class ApiError(Exception):
    """An HTTP error with a clear message; the app turns it into {"detail": message, "field": field}."""

    def __init__(
        self, status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers or {}


def sniff_image_format(data: bytes) -> str | None:
    """'png', 'jpeg', 'gif', 'webp', 'bmp', 'tiff' from the magic number, or None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for prefix, offset, name in MAGIC:
        if data[offset : offset + len(prefix)] == prefix:
            return name
    return None


def decode_upload(data: bytes, max_pixels: int, *, field: str = "file") -> np.ndarray:
    """Sniffed, size-checked decode of uploaded bytes to (H, W, 3) uint8 RGB. Raises ApiError 415/413/422."""
    from PIL import Image

    from charforge.core.images import to_rgb

    kind = sniff_image_format(data)
    if kind is None:
        raise ApiError(
            415,
            f"{field}: not an image (the first bytes match no PNG, JPEG, GIF, WEBP, BMP or TIFF "
            "signature). Upload a photo or drawing in one of those formats",
            field=field,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[kind.upper()]) as im:
                w, h = im.size
                if w * h > max_pixels or w <= 0 or h <= 0:
                    raise ApiError(
                        413,
                        f"{field}: image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}. "
                        "Shrink it and upload again",
                        field=field,
                    )
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)  # animations: the first frame
                im.load()  # full decode now, so truncated data fails here
                rgb = to_rgb(_upright(im))  # (H, W, 3) uint8
        except ApiError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ApiError(413, f"{field}: image too large to decode safely ({e})", field=field) from e
        except Exception as e:  # Pillow raises many kinds on corrupt data
            raise ApiError(
                422,
                f"{field}: looks like {kind.upper()} but cannot be decoded "
                f"({type(e).__name__}); the file may be truncated or corrupt",
                field=field,
            ) from e
    return rgb


def _upright(im):
    """Apply the EXIF orientation (phone photos); a broken EXIF block keeps the picture as stored."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception:
        return im


async def read_body_limited(chunks: AsyncIterator[bytes], max_bytes: int, *, what: str = "upload") -> bytes:
    """Collect a request body in memory, counting bytes as they arrive; 413 as soon as it passes max_bytes."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            raise ApiError(
                413,
                f"{what}: request body is over the limit of {max_bytes / 1e6:.0f} MB; send a smaller image",
            )
    return bytes(buf)


def parse_multipart(body: bytes, content_type: str, *, what: str = "upload") -> dict[str, Any]:
    """In-memory multipart/form-data parse: {field name: bytes (files) or str (plain fields)}."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(415, f"{what}: send the image as multipart/form-data with a field named 'file'")
    parts: dict[str, Any] = {}
    state: dict[str, Any] = {"headers": {}, "name": None, "data": bytearray(), "file": False, "hname": b""}

    def on_header_field(d, s, e):
        state["hname"] += d[s:e]

    def on_header_value(d, s, e):
        state["headers"][state["hname"].lower()] = state["headers"].get(state["hname"].lower(), b"") + d[s:e]

    def on_header_end():
        state["hname"] = b""

    def on_part_begin():
        state.update(headers={}, data=bytearray(), hname=b"")

    def on_part_data(d, s, e):
        state["data"] += d[s:e]

    def on_part_end():
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if name:
            is_file = b"filename" in disp
            parts[name] = bytes(state["data"]) if is_file else state["data"].decode("utf-8", "replace")

    callbacks = {
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_begin": on_part_begin,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as e:
        raise ApiError(422, f"{what}: malformed multipart body ({type(e).__name__})") from e
    return parts


@dataclass
class ConcurrencyLimiter:
    """At most `max_active` jobs at once; up to `max_queue` more wait up to `wait_s` seconds, the rest get 503.

    Long jobs (`long=True`: NPC batches, photo search) may hold at most `max_long` of the slots (by default
    all but one), so quick requests such as a single /generate always find a worker within one quick job.
    """

    max_active: int = 2  # jobs running at once (about one per CPU core)
    max_queue: int = 32  # requests allowed to wait for a slot
    wait_s: float = 10.0  # seconds a queued request waits before giving up with 503
    max_long: int | None = None  # slots long jobs may hold; None: max_active - 1 (at least 1)

    def __post_init__(self):
        self._sem: asyncio.Semaphore | None = None
        self._long: asyncio.Semaphore | None = None
        self.waiting = 0
        self.active = 0
        self.long_active = 0
        if self.max_long is None:
            self.max_long = max(1, self.max_active - 1)

    def _semaphores(self) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        if self._sem is None:  # created lazily, inside the server's event loop
            self._sem = asyncio.Semaphore(self.max_active)
            self._long = asyncio.Semaphore(max(1, min(int(self.max_long or 1), self.max_active)))
        assert self._long is not None
        return self._sem, self._long

    async def run(
        self,
        job: Callable[[], Awaitable[Any]],
        timeout_s: float,
        *,
        long: bool = False,
        on_abandon: Callable[[], None] | None = None,
        retry_after_s: int = 1,
    ) -> Any:
        """Run `job()` under the limit. 503 (with Retry-After) when the queue is full or the wait is too long;
        504 past timeout_s, and then `on_abandon()` asks the job to stop early.

        On a timeout (or a cancelled request) the slot stays taken until the worker thread really finishes,
        so abandoned work cannot pile up beyond the limit.
        """
        sem, long_sem = self._semaphores()
        retry = max(1, int(retry_after_s))
        busy = {"Retry-After": str(retry)}
        if (sem.locked() or (long and long_sem.locked())) and self.waiting >= self.max_queue:
            raise ApiError(
                503,
                f"server busy: all workers and the queue are full; retry in {retry} s",
                headers=busy,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        self.waiting += 1
        got_long = False
        try:
            if long:
                await asyncio.wait_for(long_sem.acquire(), self.wait_s)
                got_long = True
            await asyncio.wait_for(sem.acquire(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError as e:
            if got_long:
                long_sem.release()
            what = "no worker for long jobs" if long and not got_long else "no worker"
            raise ApiError(
                503,
                f"server busy: {what} free within {self.wait_s:g} s; retry in {retry} s",
                headers=busy,
            ) from e
        except BaseException:  # the request itself was cancelled while it waited
            if got_long:
                long_sem.release()
            raise
        finally:
            self.waiting -= 1
        self.active += 1
        self.long_active += int(long)
        task = asyncio.ensure_future(job())
        task.add_done_callback(lambda t: self._finished(t, long))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except asyncio.TimeoutError as e:
            if on_abandon is not None:
                on_abandon()
            raise ApiError(
                504, f"request took longer than {timeout_s:g} s and was abandoned; ask for fewer images"
            ) from e
        except asyncio.CancelledError:  # the client went away: let the job know, keep its slot until it ends
            if on_abandon is not None:
                on_abandon()
            raise

    def _finished(self, task: asyncio.Future, long: bool = False) -> None:
        if not task.cancelled():
            task.exception()  # mark an abandoned job's error as seen; its caller already answered
        self.active -= 1
        assert self._sem is not None and self._long is not None
        self._sem.release()
        if long:
            self.long_active -= 1
            self._long.release()
