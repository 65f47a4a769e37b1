"""The studio page with the server up generates in the browser (onnxruntime-web) and says so; without the
vendored runtime it generates on the server and says why. Headless chromium, the page's real CSP."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from charforge import sampling
from charforge.provenance import read_png_metadata
from charforge.provenance.watermark import detect_watermark, embed_watermark, model_tag
from charforge.web import vendor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_fakes import LiveServer, make_app  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RUNTIME_OK, RUNTIME_WHY = vendor.runtime_status()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]
needs_runtime = pytest.mark.skipif(
    not RUNTIME_OK, reason=f"browser-side generation not tested: {RUNTIME_WHY}"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CHARFORGE_CACHE", str(tmp_path_factory.mktemp("cache")))  # the tiny model's ONNX export
    with LiveServer(make_app()) as s:
        yield s
    mp.undo()


def open_studio(browser, url):
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1366, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    posts: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.goto(url)
    page.wait_for_selector("#groups select", state="attached")
    return ctx, page, errors, posts


@needs_runtime
def test_studio_generates_in_the_browser_and_says_so(browser, server):
    ctx, page, errors, posts = open_studio(browser, f"{server.url}/#generate")
    page.locator("#where[data-where=client]").wait_for(state="attached", timeout=60_000)
    assert "in this browser" in page.inner_text("#where")
    page.select_option("#tag-hair-color", "pink hair")
    page.click("label[for=tri-glasses-off]")
    page.fill("#seed", "40")
    page.fill("#count", "4")
    page.fill("#variety", "0.8")
    page.click("#generate")
    page.locator("#gen-info[data-where=client]").wait_for(state="attached", timeout=60_000)
    assert "made in this browser" in page.inner_text("#gen-info")
    assert page.locator("#grid .tile img").count() == 4
    with page.expect_download(timeout=60_000) as dl:
        page.click("#zip-all")
    zf = zipfile.ZipFile(dl.value.path())
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["seed_scheme"] == "portable-v1" and manifest["made_in"].startswith("browser")
    assert not [u for u in posts if u.endswith(("/generate", "/npc"))], posts  # nothing made on the server
    bundle = server.app.state.studio.bundle("default")
    ref, _, tag_m = sampling.characters_for_request(
        bundle, "pink hair, -glasses", 4, 40, truncation=0.8, seed_scheme="portable-v1"
    )
    for im, want, tags in zip(manifest["images"], ref, tag_m):
        data = zf.read(im["file"])
        got = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
        marked = embed_watermark(want, model_tag(bundle.sha256)).astype(
            int
        )  # the server's PNGs are marked too
        assert np.abs(got - marked).max() <= 2, im["file"]
        meta = read_png_metadata(data)
        assert meta["seed_scheme"] == "portable-v1" and meta["tags"] == bundle.schema.from_vector(tags)
        assert detect_watermark(got.astype(np.uint8))[0]
    # the NPC batch runs in the page too
    page.click("#tab-npc")
    page.fill("#npc-count", "5")
    page.fill("#npc-seed", "9")
    with page.expect_download(timeout=60_000) as dl:
        page.click("#npc-go")
    npc = json.loads(zipfile.ZipFile(dl.value.path()).read("manifest.json"))
    recs = sampling.npc_batch(bundle, 5, 9, None, seed_scheme="portable-v1", max_tries=2000)
    assert [c["seed"] for c in npc["characters"]] == [r.seed for r in recs]
    assert "made in this browser" in page.inner_text("#npc-info")
    assert not [u for u in posts if u.endswith(("/generate", "/npc"))], posts
    assert page.evaluate("window.__csp") == []
    assert not errors, errors
    ctx.close()


def test_studio_without_the_runtime_generates_on_the_server_and_says_why(browser, server, monkeypatch):
    monkeypatch.setattr(
        vendor, "runtime_status", lambda runtime_dir=None: (False, "onnxruntime-web is not vendored (test)")
    )
    ctx, page, errors, posts = open_studio(browser, f"{server.url}/#generate")
    page.locator("#where[data-where=server]").wait_for(state="attached", timeout=30_000)
    page.locator("#where", has_text="not vendored (test)").wait_for(timeout=30_000)
    assert page.locator("#client-field.hidden").count() == 1
    page.fill("#count", "2")
    page.click("#generate")
    page.locator("#gen-info[data-where=server]").wait_for(state="attached", timeout=60_000)
    assert "made on the server" in page.inner_text("#gen-info")
    assert any(u.endswith("/api/v1/generate") for u in posts)
    assert page.evaluate("window.__csp") == []
    assert not errors, errors
    ctx.close()


def test_web_routes_and_the_page_policy(server):
    from fastapi.testclient import TestClient

    from charforge.serve.guards import DOCS_CSP, PAGE_CSP

    script = next(p for p in PAGE_CSP.split("; ") if p.startswith("script-src"))
    assert script == "script-src 'self' 'wasm-unsafe-eval'"  # WebAssembly, and nothing more
    assert "'unsafe-eval'" not in PAGE_CSP and "'unsafe-inline'" not in PAGE_CSP
    assert "wasm" not in DOCS_CSP
    with TestClient(server.app, base_url="http://127.0.0.1:8000") as c:
        info = c.get("/api/v1/web").json()
        assert info["runtime"] is RUNTIME_OK and info["seed_scheme"] == "portable-v1"
        assert info["models"]["default"]["model"] == "/api/v1/web/models/default.onnx"
        doc = c.get("/api/v1/web/models/default.json").json()
        assert doc["z_dim"] == 16 and doc["seed_scheme"] == "portable-v1" and len(doc["tag_freqs"]) == 34
        assert c.get("/api/v1/web/models/nope.json").status_code == 422
        assert c.get("/web-static/portable.js").status_code == 200
        fit = c.get("/api/v1/web/f2p.json").json()  # the toy f2p has no learned embedder
        assert fit["available"] is False and "cannot run in a browser" in fit["reason"]
        r = c.get("/api/v1/web/f2p/embedder.onnx")
        assert r.status_code == 404 and "cannot be fitted in the browser" in r.json()["detail"]
        assert c.get("/api/v1/web/f2p/imitator.onnx").status_code == 422
        if RUNTIME_OK:
            r = c.get("/web-runtime/ort.wasm.min.js")
            assert r.status_code == 200 and r.headers["content-security-policy"] == PAGE_CSP
