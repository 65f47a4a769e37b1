"""Concurrency limit, timeouts, a free event loop, bind checks and content sniffing."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest
from serve_fakes import FakeF2P, make_bundle, png_of

from charforge.errors import UserError
from charforge.serve.limits import ApiError, ConcurrencyLimiter, sniff_image_format
from charforge.serve.server import check_bind, parse_model_specs


def test_limiter_queues_then_rejects_with_503():
    async def scenario():
        lim = ConcurrencyLimiter(max_active=1, max_queue=1, wait_s=5.0)
        gate = asyncio.Event()

        async def slow():
            await gate.wait()
            return "done"

        first = asyncio.ensure_future(lim.run(slow, timeout_s=5))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(lim.run(slow, timeout_s=5))  # waits in the queue
        await asyncio.sleep(0.01)
        with pytest.raises(ApiError) as e:  # queue full: rejected at once
            await lim.run(slow, timeout_s=5)
        assert e.value.status == 503 and e.value.headers["Retry-After"] == "1"
        assert (lim.active, lim.waiting) == (1, 1)
        gate.set()
        assert await first == "done" and await queued == "done"
        assert (lim.active, lim.waiting) == (0, 0)

    asyncio.run(scenario())


def test_limiter_wait_then_503_and_timeout_504_keeps_slot():
    async def scenario():
        lim = ConcurrencyLimiter(max_active=1, max_queue=4, wait_s=0.05)
        release = asyncio.Event()

        async def stuck():
            await release.wait()

        with pytest.raises(ApiError) as e:
            await lim.run(stuck, timeout_s=0.05)
        assert e.value.status == 504
        assert lim.active == 1  # the abandoned job still holds its slot until it really ends
        with pytest.raises(ApiError) as e:
            await lim.run(stuck, timeout_s=1)
        assert e.value.status == 503
        release.set()
        await asyncio.sleep(0.01)
        assert lim.active == 0

    asyncio.run(scenario())


def test_event_loop_stays_free_during_heavy_work():
    """A slow fit runs in a worker thread: /health answers meanwhile."""
    import httpx

    from charforge.serve.app import ServeSettings, create_app

    started = threading.Event()

    def slow_fit(f2p, images, mode="fast"):
        started.set()
        time.sleep(1.0)
        cr = f2p.creator
        return SimpleNamespace(params=cr.space.validate({}), preview=png_arr(), similarity=0.1, timings={})

    def png_arr():
        import numpy as np

        return np.zeros((32, 32, 3), np.uint8)

    app = create_app(ServeSettings(), generators={"default": make_bundle()}, f2p=FakeF2P(), fitter=slow_fit)

    async def scenario():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
        ) as c:
            fit = asyncio.ensure_future(
                c.post("/api/v1/fit", files={"file": ("a.png", png_of(), "image/png")})
            )
            while not started.is_set():
                await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            h = await c.get("/api/v1/health")
            waited = time.perf_counter() - t0
            assert h.status_code == 200 and h.json()["active"] == 1
            assert waited < 0.5 and not fit.done()
            assert (await fit).status_code == 200

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "host, token, ok",
    [
        ("127.0.0.1", None, True),
        ("localhost", None, True),
        ("::1", None, True),
        ("127.0.0.5", None, True),
        ("0.0.0.0", None, False),
        ("192.168.1.4", None, False),
        ("example.org", None, False),
        ("0.0.0.0", "short", False),
        ("0.0.0.0", "long-enough-token", True),
    ],
)
def test_bind_needs_token_off_loopback(host, token, ok):
    if ok:
        check_bind(host, token)
    else:
        with pytest.raises(UserError, match="--host|--token"):
            check_bind(host, token)


def test_cli_refuses_open_bind_without_token(capsys):
    from charforge.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--host", "0.0.0.0", "--port", "1"])
    assert e.value.code == 2
    assert "--token" in capsys.readouterr().err


def test_model_specs_are_names_not_paths():
    assert parse_model_specs(["default", "big=runs/big", "x/y/anime.safetensors"]) == {
        "default": None,
        "big": "runs/big",
        "anime": "x/y/anime.safetensors",
    }
    with pytest.raises(UserError):
        parse_model_specs(["../evil=runs/a"])
    with pytest.raises(UserError):
        parse_model_specs(["a=x", "a=y"])


def test_sniffing_uses_magic_numbers():
    assert sniff_image_format(png_of()) == "png"
    assert sniff_image_format(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff_image_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_image_format(b"GIF89a...") == "gif"
    assert sniff_image_format(b"%PDF-1.7") is None and sniff_image_format(b"") is None
