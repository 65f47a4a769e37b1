"""Click through the studio page in headless Debian chromium (Playwright) against a live uvicorn on loopback.

Screenshots go to $CHARFORGE_SCREENSHOTS (e.g. `CHARFORGE_SCREENSHOTS=docs`) or to the test's tmp dir. With
CHARFORGE_SCREENSHOTS set, the shipped generator, f2p model and builtin creator are used where installed,
so the pictures in docs/ show real characters; the tests themselves hold for either.
"""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_fakes import DiscCreator, FakeF2P, LiveServer, fake_fit, make_bundle, png_of

CHROMIUM = "/usr/bin/chromium"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]


def studio_app():
    from charforge.serve.app import ServeSettings, create_app

    models: dict = {"generators": {}, "f2p": None, "creator": None}
    if os.environ.get("CHARFORGE_SCREENSHOTS"):
        from charforge.serve.server import load_models

        models = load_models(None, None, "builtin", warn=lambda msg: None)
    fitter = None if models["f2p"] is not None else fake_fit
    creator = models["creator"] or DiscCreator()
    return create_app(
        ServeSettings(),
        generators=models["generators"] or {"default": make_bundle()},
        f2p=models["f2p"] or FakeF2P(creator),
        creator=creator,
        fitter=fitter,
    )


@pytest.fixture(scope="module")
def server():
    with LiveServer(studio_app()) as s:
        yield s


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("CHARFORGE_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_page(browser, server, viewport, panel="generate", query=""):
    ctx = browser.new_context(
        viewport=viewport, accept_downloads=True, bypass_csp=True
    )  # lets wait_for_function eval
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/{query}#{panel}")
    page.wait_for_selector("#groups select", state="attached")
    return ctx, page, errors


def test_generate_with_tags_then_interpolate(browser, server, shots):
    # on the server (tests/web/test_studio_client.py covers generating in the page)
    ctx, page, errors = open_page(browser, server, LAPTOP, query="?generate=server")
    page.select_option("#tag-hair-color", "blonde hair")
    page.click("label[for=tri-smile-on]")
    page.click("label[for=tri-hat-off]")
    page.fill("#seed", "100")
    page.fill("#count", "6")
    page.fill(
        "#variety", "0.7"
    )  # truncation: the request carries it, and the interpolation end points follow
    assert page.inner_text("#variety-value") == "0.70"
    with page.expect_request(lambda r: r.url.endswith("/api/v1/generate") and r.method == "POST") as req:
        page.click("#generate")
    assert json.loads(req.value.post_data)["truncation"] == 0.7
    assert json.loads(req.value.post_data)["seed_scheme"] == "portable-v1"
    page.wait_for_function("document.querySelectorAll('#grid .tile img').length === 6")
    page.wait_for_function(
        "[...document.querySelectorAll('#grid .tile img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    titles = page.eval_on_selector_all("#grid .tile", "ts => ts.map(t => t.title)")
    assert all("blonde hair" in t and "smile" in t and "hat" not in t.split(", ") for t in titles)
    assert page.inner_text("#grid .tile .meta span") == "#100"
    # click an image: its seed and tags, then use two images as interpolation end points
    page.click("#grid .tile >> nth=0")
    assert page.inner_text("#detail-seed") == "100"
    assert "blonde hair" in page.inner_text("#detail-tags")
    page.click("#set-a")
    page.click("#grid .tile >> nth=3")
    page.click("#set-b")
    page.fill("#frames", "6")
    with page.expect_request(lambda r: r.url.endswith("/api/v1/interpolate")) as ireq:
        page.click("#interpolate")
    assert json.loads(ireq.value.post_data)["truncation"] == 0.7
    page.wait_for_function("document.querySelectorAll('#strip img').length === 6")
    page.wait_for_selector("#gif-row:not(.hidden)")
    page.click("#grid .tile >> nth=0")
    page.screenshot(path=str(shots / "studio_generate.png"), full_page=True)
    assert not errors, errors
    ctx.close()


def photo() -> bytes:
    """A real photo for the docs screenshots (scikit-image's astronaut, offline); a flat test card otherwise."""
    if not os.environ.get("CHARFORGE_SCREENSHOTS"):
        return png_of((40, 60, 220), (96, 96))
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((256, 256)).save(buf, format="PNG")
    return buf.getvalue()


def _preview_pixels(page) -> np.ndarray:
    data = page.evaluate("""async () => {
        const r = await fetch(document.getElementById('preview').src);
        const b = new Uint8Array(await r.arrayBuffer());
        let s = ''; for (const x of b) s += String.fromCharCode(x); return btoa(s); }""")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB").resize((64, 64)))


def test_photo_fit_then_slider_rerenders(browser, server, shots):
    ctx, page, errors = open_page(browser, server, LAPTOP, "photo")
    page.wait_for_selector("#params input[type=range]", state="attached")
    page.set_input_files("#file", files=[{"name": "me.png", "mimeType": "image/png", "buffer": photo()}])
    page.wait_for_selector("#similarity:not(.hidden)")
    page.wait_for_function("document.getElementById('preview').dataset.seq === 'fit'")
    assert page.inner_text("#similarity").startswith("similarity")
    fitted = _preview_pixels(page)
    slider = page.locator("#params input[type=range]").first
    name = slider.get_attribute("data-param")
    lo, hi = float(slider.get_attribute("min")), float(slider.get_attribute("max"))
    before = float(slider.input_value())
    target = lo if before - lo > hi - before else hi  # the far end: a visible change
    slider.evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", str(target)
    )
    page.wait_for_function(
        "document.getElementById('preview').dataset.size === '256'"
    )  # the sharp render, last
    page.wait_for_function("document.getElementById('preview').complete")
    edited = _preview_pixels(page)
    assert np.abs(edited.astype(int) - fitted.astype(int)).mean() > 0.5, (
        f"moving {name} did not change the preview"
    )
    with page.expect_download() as dl:
        page.click("#export-json")
    exported = json.loads(Path(dl.value.path()).read_text())
    assert exported["params"][name] == pytest.approx(target, rel=1e-4)
    page.screenshot(path=str(shots / "studio_photo.png"), full_page=True)
    assert not errors, errors
    ctx.close()


def test_npc_zip_download(browser, server, shots):
    ctx, page, errors = open_page(browser, server, LAPTOP, "npc")
    page.fill("#npc-count", "10")
    page.fill("#npc-seed", "5")
    with page.expect_download() as dl:
        page.click("#npc-go")
    zf = zipfile.ZipFile(dl.value.path())
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["count"] == 10 and len({c["seed"] for c in manifest["characters"]}) == 10
    assert all(zf.read(c["file"]).startswith(b"\x89PNG") for c in manifest["characters"])
    page.wait_for_function("document.querySelectorAll('#npc-grid img').length === 10")
    page.screenshot(path=str(shots / "studio_npc.png"), full_page=True)
    assert not errors, errors
    ctx.close()


def test_phone_width_layout(browser, server, shots):
    ctx, page, errors = open_page(browser, server, PHONE)
    page.fill("#count", "4")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#grid .tile img').length === 4")
    # one column: the results sit below the controls, and nothing is wider than the screen
    form, grid = page.locator("#gen-form").bounding_box(), page.locator("#grid").bounding_box()
    assert grid["y"] > form["y"] + form["height"] - 1
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(shots / "studio_phone.png"), full_page=True)
    page.click("#tab-photo")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert not errors, errors
    ctx.close()


def csp_page(browser, url: str):
    """A page under the server's real Content-Security-Policy (no bypass), recording violations and errors."""
    ctx = browser.new_context(viewport=LAPTOP)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.goto(url)
    return ctx, page, errors


def test_docs_page_works_offline_under_its_csp(browser, server):
    ctx, page, errors = csp_page(browser, f"{server.url}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)  # Swagger UI rendered the operations
    assert page.locator(".opblock-summary-path", has_text="/api/v1/generate").count() >= 1
    health = page.locator(".opblock", has_text="/api/v1/health").first
    health.locator(".opblock-summary").click()  # expand, try it out: a live call under the same policy
    health.locator(".try-out__btn").click()
    health.locator(".execute").click()
    page.wait_for_selector(".live-responses-table tr.response .response-col_status", timeout=20_000)
    status = health.locator(".live-responses-table tr.response .response-col_status").first
    assert status.inner_text().strip() == "200"
    assert page.evaluate("window.__csp") == []
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    ctx.close()


def test_studio_page_runs_under_its_csp(browser, server):
    ctx, page, errors = csp_page(browser, f"{server.url}/#generate")
    page.wait_for_selector("#groups select", state="attached")
    page.fill("#count", "2")
    page.click("#generate")
    # a locator wait, not wait_for_function: the page's CSP (rightly) forbids the eval that one would need
    page.locator("#grid .tile img").nth(1).wait_for(timeout=30_000)
    assert page.locator("#grid .tile img").count() == 2
    assert page.evaluate("window.__csp") == []
    assert not errors, errors
    ctx.close()
