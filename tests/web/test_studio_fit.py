"""The fast photo fit in the studio page runs in the browser (the shipped f2p model's embedder and translator
as ONNX in onnxruntime-web): the photo is never uploaded, and the parameters equal the library's."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from charforge.web import vendor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_fakes import LiveServer, make_bundle  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RUNTIME_OK, RUNTIME_WHY = vendor.runtime_status()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
    pytest.mark.skipif(not RUNTIME_OK, reason=f"browser-side fitting not tested: {RUNTIME_WHY}"),
]


@pytest.fixture(scope="module")
def f2p():
    from charforge.f2p import load_f2p

    try:
        return load_f2p(None)
    except Exception as e:  # the shipped model is part of the package; say so if this install lacks it
        pytest.skip(f"no shipped f2p model: {e}")


@pytest.fixture(scope="module")
def server(f2p, tmp_path_factory):
    from charforge.serve.app import ServeSettings, create_app

    mp = pytest.MonkeyPatch()
    mp.setenv("CHARFORGE_CACHE", str(tmp_path_factory.mktemp("cache")))
    app = create_app(ServeSettings(), generators={"default": make_bundle()}, f2p=f2p, creator=f2p.creator)
    with LiveServer(app) as s:
        yield s
    mp.undo()


def library_fit(f2p, image: np.ndarray) -> dict:
    """The library's fast fit on the whole image (no face detection, no attribute limits)."""
    from charforge.f2p.fit import embed_inputs, translate

    vec = translate(f2p, embed_inputs(f2p, [image])[None])
    return f2p.space.to_dicts(f2p.space.decode(vec))[0]


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(64, 64), (90, 120)])  # exact size, and a centre crop + area resize
def test_fast_fit_in_the_browser_matches_the_library_and_uploads_nothing(browser, server, f2p, shape):
    rng = np.random.default_rng(7)
    render = f2p.creator.render(f2p.creator.sample(1, rng), 128)[0]
    photo = np.asarray(Image.fromarray(render).resize(shape[::-1], Image.BILINEAR))  # (H, W, 3)
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1366, "height": 900})
    page = ctx.new_page()
    errors, posts = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(f"{server.url}/#photo")
    page.locator("#fit-where[data-where=client]").wait_for(state="attached", timeout=90_000)
    assert "not uploaded" in page.inner_text("#fit-where")
    page.set_input_files("#file", files=[{"name": "me.png", "mimeType": "image/png", "buffer": png(photo)}])
    page.locator("#similarity", has_text="fitted in this browser").wait_for(timeout=60_000)
    with page.expect_download() as dl:
        page.click("#export-json")
    got = json.loads(Path(dl.value.path()).read_text())["params"]
    want = library_fit(f2p, photo)
    for p in f2p.space.categorical:
        assert got[p.name] == want[p.name], p.name
    for p in f2p.space.continuous:
        assert abs(got[p.name] - want[p.name]) <= 1e-3 * (p.hi - p.lo), p.name
    assert not [u for u in posts if u.endswith("/api/v1/fit")], posts  # the photo stayed in the page
    page.locator("#preview[data-size='256']").wait_for(
        state="attached", timeout=60_000
    )  # rendered from params
    assert not errors, errors
    ctx.close()
