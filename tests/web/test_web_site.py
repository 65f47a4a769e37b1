"""`charforge export web`: the exported folder, served by a plain static file server (no charforge server),
makes the CLI's characters in headless chromium (Playwright), with PNG metadata and the watermark."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from charforge import sampling
from charforge.cli import main
from charforge.provenance import read_png_metadata
from charforge.provenance.metadata import WATERMARK_METHOD
from charforge.provenance.watermark import detect_watermark
from charforge.web import vendor

CHROMIUM = "/usr/bin/chromium"
RUNTIME_OK, RUNTIME_WHY = vendor.runtime_status()
needs_runtime = pytest.mark.skipif(
    not RUNTIME_OK, reason=f"browser-side generation not tested: {RUNTIME_WHY}"
)
needs_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)


def cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if not RUNTIME_OK:
        pytest.skip(f"browser-side generation not tested: {RUNTIME_WHY}")
    out = tmp_path_factory.mktemp("web") / "site"
    assert cli(["export", "web", "-o", str(out)]) == 0
    return out


@contextlib.contextmanager
def serve_static(folder: Path):
    """`python -m http.server` on `folder`: a plain static file host, nothing of charforge running. Yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def static_server(site):
    with serve_static(site) as url:
        yield url


def open_site(browser, url: str):
    """The page under its own CSP (no bypass), recording policy violations and errors."""
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1366, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
    return ctx, page, errors


def download_zip(page, button: str) -> zipfile.ZipFile:
    with page.expect_download(timeout=60_000) as dl:
        page.click(button)
    return zipfile.ZipFile(dl.value.path())


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_export_writes_a_self_contained_folder(site):
    manifest = json.loads((site / "site-manifest.json").read_text())
    for f in (
        "index.html",
        "site.js",
        "portable.js",
        "generator.js",
        "model/generator.onnx",
        "model/model.json",
    ):
        assert f in manifest["files"], f
    for f in vendor.FILES:
        assert manifest["files"][f"ort/{f}"]["sha256"] == vendor.FILE_SHA256[f]
    assert manifest["seed_scheme"] == "portable-v1" and manifest["runtime"]["version"] == vendor.VERSION
    html = (site / "index.html").read_text()
    assert "'wasm-unsafe-eval'" in html and "http" not in html.replace("http-equiv", "")  # no outside URL
    doc = json.loads((site / "model" / "model.json").read_text())
    assert doc["seed_scheme"] == "portable-v1" and doc["watermark"]["method"] == WATERMARK_METHOD
    sidecar = json.loads((site / "model" / "generator.json").read_text())
    assert sidecar["seed_scheme"] == "portable-v1" and "SplitMix64" in sidecar["seed_scheme_spec"]
    assert "Cross-Origin-Embedder-Policy: require-corp" in (site / "_headers").read_text()


WM_HARNESS = """
const W = require(process.argv[1]).CharforgeWeb;
const job = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(Array.from(W.embedWatermark(Uint8Array.from(job.rgb), job.size, job.wm))));
"""


def v2_reference_layout(tag: int, blocks: int | None = None) -> dict:
    """The v2 document the page's port reads, built here from watermark.py's public API (not the exporter's):
    the whole keyed grid, or (`blocks`) its top-left blocks x blocks corner, marked by `layout_blocks`."""
    from charforge.provenance import watermark as wm

    signs, dither, bit = wm.v2_layout()
    g, units, unit = wm.V2_GRID, wm.V2_UNITS, wm.V2_UNIT
    assert signs.shape == (g, g, units, unit) and dither.shape == bit.shape == (g, g, units)
    n = g if blocks is None else blocks
    signs, dither, bit = signs[:n, :n], dither[:n, :n], bit[:n, :n]
    return ({} if blocks is None else {"layout_blocks": n}) | {
        "method": wm.METHOD_V2,
        "tag": f"{tag:04x}",
        "block": wm.BLOCK,
        "luma": [0.299, 0.587, 0.114],
        "bits": [int(b) for b in wm.payload_bits(tag)],
        "coeffs": len(wm.V2_ZIGZAG),
        "grid": g,
        "unit": unit,
        "units": units,
        "step": wm.V2_STEP,
        "iterations": wm.V2_ITERATIONS,
        "psnr_floor": wm.V2_PSNR_FLOOR,
        "psnr_backoff": wm.V2_PSNR_BACKOFF,
        "basis": wm.v2_basis().reshape(-1).tolist(),
        "signs": signs.reshape(-1).tolist(),
        "dither": dither.reshape(-1).tolist(),
        "bit": bit.reshape(-1).astype(int).tolist(),
    }


def run_generator_js(harness: str, job: object) -> object:
    """Run a node harness script against generator.js with `job` as JSON on stdin; its JSON answer."""
    from charforge.export import web

    r = subprocess.run(
        ["node", "-e", harness, str(web.STATIC / "generator.js")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(r.stdout)


def js_watermark(img: np.ndarray, layout: dict) -> np.ndarray:
    """generator.js's embedWatermark on a square image, in node."""
    size = img.shape[0]
    out = run_generator_js(WM_HARNESS, {"rgb": img.reshape(-1).tolist(), "size": size, "wm": layout})
    return np.asarray(out, np.uint8).reshape(size, size, 3)


def watermark_test_images(size: int) -> list[np.ndarray]:
    """A creator render (flat regions, outlines, clipping at 0/255), uniform noise, and a white image with black
    lines (saturated: the v2 PSNR floor applies), size x size."""
    from charforge.creators.builtin import BuiltinCreator

    cr = BuiltinCreator()
    saturated = np.full((size, size, 3), 255, np.uint8)  # where the PSNR floor scales the mark down
    saturated[:: max(size // 7, 2)] = 0
    return [
        cr.render(cr.sample(1, np.random.default_rng(1)), size)[0],
        np.random.default_rng(2).integers(0, 256, (size, size, 3), dtype=np.uint8),
        saturated,
    ]


def assert_same_mark(js: np.ndarray, py: np.ndarray, tag: str | None) -> None:
    """Within one level of Python's embedder on 99.9 % of pixels, detected, with Python's payload (and `tag`)."""
    from charforge.provenance import watermark as wm

    assert np.abs(js.astype(int) - py).max() <= 1 and (js == py).mean() > 0.999
    found, _, payload = wm.detect_watermark(js)
    assert found and payload == wm.detect_watermark(py)[2]
    assert tag is None or payload == tag


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("method", ["charforge-qim-v1", "charforge-qim-v2"])
def test_javascript_watermark_is_the_python_one(method, monkeypatch):
    """generator.js's port, fed the exporter's layout, against charforge.provenance.watermark at 64 px."""
    from charforge.export import web
    from charforge.provenance import metadata
    from charforge.provenance import watermark as wm

    monkeypatch.setattr(metadata, "WATERMARK_METHOD", method)
    sha = "c0ffee" + "0" * 58
    layout, why = web.watermark_layout(64, sha)
    assert why == "" and layout["method"] == method and layout["tag"] == "c0ff"
    if (
        method == wm.METHOD_V2
    ):  # the exporter writes watermark.py's keyed per-block grid (or the corner it uses)
        assert layout == v2_reference_layout(wm.model_tag(sha), layout.get("layout_blocks"))
    for img in watermark_test_images(64):
        py = wm.embed_watermark(img, wm.model_tag(sha), method=method)
        assert_same_mark(js_watermark(img, layout), py, "c0ff")
    monkeypatch.setattr(metadata, "WATERMARK_METHOD", "charforge-qim-v9")
    layout, why = web.watermark_layout(64, sha)
    assert layout is None and "no port of charforge-qim-v9" in why
    assert web.watermark_layout(16, sha) == (None, "none (image smaller than 32px)")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("size", [32, 100, 520])
def test_javascript_v2_watermark_follows_the_per_block_grid(size):
    """The v2 port against embed_watermark(method=V2), from watermark.py's own arrays: at the 32 px minimum,
    with partial edge blocks (100 px), and past the 64-block (512 px) grid, where the layout wraps (520 px)."""
    from charforge.provenance import watermark as wm

    tag = 0xBEEF
    layout = v2_reference_layout(tag)
    images = watermark_test_images(size)
    for img in images[:1] if size > 256 else images:
        py = wm.embed_watermark(img, tag, method=wm.METHOD_V2)
        js = js_watermark(img, layout)
        # at 32 px the 16 blocks' units carry only some of the 48 bits, so the tag is not always readable
        assert_same_mark(js, py, "beef" if size >= 64 else None)
        if size % wm.BLOCK:  # partial blocks at the right and bottom edges are left alone
            edge = size - size % wm.BLOCK
            assert (js[edge:] == img[edge:]).all() and (js[:, edge:] == img[:, edge:]).all()
    blocks = size // wm.BLOCK
    if blocks < wm.V2_GRID:  # the corner of the grid that the image's blocks use is enough
        assert (
            js_watermark(images[1], v2_reference_layout(tag, blocks)) == js_watermark(images[1], layout)
        ).all()
    # a layout that does not cover the image, or a tiled (pre-grid) one, is refused, not misread
    small = v2_reference_layout(tag, min(blocks, wm.V2_GRID) - 1)
    tiled = {k: v for k, v in v2_reference_layout(tag, 4).items() if k not in ("grid", "layout_blocks")}
    for bad in (small, tiled | {"tile": 4}):
        with pytest.raises(subprocess.CalledProcessError) as e:
            js_watermark(images[1], bad)
        assert "per-block grid" in e.value.stderr


def test_export_refuses_a_foreign_folder_and_a_missing_runtime(tmp_path, capsys, monkeypatch):
    (tmp_path / "mine.txt").write_text("keep me")
    assert cli(["export", "web", "-o", str(tmp_path)]) == 2
    assert "only writes into an empty folder" in capsys.readouterr().err
    monkeypatch.setattr(vendor, "RUNTIME_DIR", tmp_path / "nothing")
    assert cli(["export", "web", "-o", str(tmp_path / "site")]) == 2
    assert "python -m charforge.web.vendor" in capsys.readouterr().err


@needs_runtime
@needs_browser
def test_static_site_makes_the_cli_characters(browser, static_server):
    ctx, page, errors = open_site(browser, static_server + "/")
    assert "in this browser" in page.inner_text("#status")
    page.select_option("#tag-hair-color", "blonde hair")
    page.click("label[for=tri-smile-on]")
    page.fill("#seed", "100")
    page.fill("#count", "6")
    page.fill("#variety", "0.7")
    page.uncheck("#watermark")
    page.click("#generate")
    page.locator("#grid .tile img").nth(5).wait_for(timeout=60_000)
    zf = download_zip(page, "#zip-all")
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["seed_scheme"] == "portable-v1" and manifest["watermark"] == "none"
    bundle = sampling.load_generator(None, device="cpu")
    ref, seeds, tag_m = sampling.characters_for_request(
        bundle, "blonde hair, smile", 6, 100, truncation=0.7, seed_scheme="portable-v1"
    )
    assert [im["tag_seed"] for im in manifest["images"]] == list(range(100, 106))
    for im, want, tags in zip(manifest["images"], ref, tag_m):
        data = zf.read(im["file"])
        got = pixels(data)
        assert np.abs(got.astype(int) - want).max() <= 2, im["file"]  # <= 2/255 of the CLI's pixels
        meta = read_png_metadata(data)
        assert meta["tags"] == bundle.schema.from_vector(tags) == im["tags"]
        assert meta["seed_scheme"] == "portable-v1" and meta["truncation"] == 0.7
        assert meta["model_sha256"] == bundle.sha256 and meta["watermark"] == "none"
        assert "AI-generated" in meta["ai_generated"]
    # watermark on: Python's detector finds charforge's mark with the model's tag
    page.check("#watermark")
    page.fill("#count", "2")
    page.click("#generate")
    expect(page.locator("#grid .tile img")).to_have_count(2, timeout=60_000)
    zf = download_zip(page, "#zip-all")
    first = json.loads(zf.read("manifest.json"))["images"][0]
    data = zf.read(first["file"])
    found, score, payload = detect_watermark(pixels(data))
    assert found and payload == bundle.sha256[:4], score
    meta = read_png_metadata(data)
    assert meta["watermark"] == WATERMARK_METHOD and meta["watermark_tag"] == bundle.sha256[:4]
    from charforge.provenance.metadata import read_xmp

    assert "trainedAlgorithmicMedia" in (read_xmp(data) or "")
    assert page.evaluate("window.__csp") == []
    assert not errors, errors
    ctx.close()


@needs_runtime
@needs_browser
def test_static_site_npc_batch_matches_the_library(browser, static_server):
    ctx, page, errors = open_site(browser, static_server + "/")
    page.click("#tab-npc")
    page.fill("#npc-count", "6")
    page.fill("#npc-seed", "3")
    zf = download_zip(page, "#npc-go")
    manifest = json.loads(zf.read("manifest.json"))
    bundle = sampling.load_generator(None, device="cpu")
    recs = sampling.npc_batch(bundle, 6, 3, None, seed_scheme="portable-v1")
    assert [c["seed"] for c in manifest["characters"]] == [r.seed for r in recs]
    for c, r in zip(manifest["characters"], recs):
        assert c["tags"] == bundle.schema.from_vector(r.tags)
        found, _, _ = detect_watermark(pixels(zf.read(c["file"])))
        assert found
    assert page.evaluate("window.__csp") == []
    assert not errors, errors
    ctx.close()


@needs_runtime
@needs_browser
def test_static_site_fits_a_phone_screen(browser, static_server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    page.goto(static_server + "/")
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
    page.fill("#count", "4")
    page.click("#generate")
    page.locator("#grid .tile img").nth(3).wait_for(timeout=60_000)
    form, grid = page.locator("#gen-form").bounding_box(), page.locator("#grid").bounding_box()
    assert grid["y"] > form["y"] + form["height"] - 1  # one column: results below the controls
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    ctx.close()


# ---- pixel art: the page snaps a pixel-art model's outputs as the CLI does ------------------------------------
SNAP_HARNESS = """
const W = require(process.argv[1]).CharforgeWeb;
const jobs = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(jobs.map((j) => Array.from(W.snapPixelArt(Uint8Array.from(j.rgb), j.size, j.grid)))));
"""


def js_snap(jobs: list[tuple[np.ndarray, dict]]) -> list[np.ndarray]:
    """generator.js's snapPixelArt on square RGB images, in node."""
    out = run_generator_js(
        SNAP_HARNESS, [{"rgb": im.reshape(-1).tolist(), "size": im.shape[0], "grid": g} for im, g in jobs]
    )
    return [np.asarray(a, np.uint8).reshape(im.shape) for a, (im, _) in zip(out, jobs)]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_pixel_snap_is_the_python_one():
    """Byte for byte: random pictures, grids with offsets and part cells, palettes of 1 to 300 colours, and cells
    whose mean sits exactly between two palette colours (the tie goes to the lower index in both)."""
    from charforge.core.pixelart import snap

    rng = np.random.default_rng(3)
    jobs = []
    for size, cell, off, n_pal in [
        (64, 2, (0, 0), 16),
        (50, 3, (1, 2), 300),
        (40, 4, (0, 3), 1),
        (33, 5, (4, 0), 7),
    ]:
        pal = rng.integers(0, 256, (n_pal, 3))
        g = {"cell": cell, "offset": list(off), "palette": pal.tolist()}
        jobs.append((rng.integers(0, 256, (size, size, 3), dtype=np.uint8), g))
        smooth = np.clip(rng.normal(128, 40, (size // 4 + 1, size // 4 + 1, 3)), 0, 255)
        jobs.append((np.repeat(np.repeat(smooth, 4, 0), 4, 1)[:size, :size].astype(np.uint8), g))
    tie_pal = [[10, 10, 10], [20, 20, 20], [0, 0, 0]]  # 15 is as near to the first as to the second
    jobs.append((np.full((16, 16, 3), 15, np.uint8), {"cell": 2, "offset": [0, 0], "palette": tie_pal}))
    for (im, g), js in zip(jobs, js_snap(jobs)):
        py = snap(im[None], g)[0]
        assert np.array_equal(js, py), (im.shape, g["cell"], g["offset"], len(g["palette"]))
    assert (js_snap(jobs[-1:])[0] == 10).all()


def pixel_art_model(path: Path) -> Path:
    """The shipped default generator re-saved as if trained on pixel art: 2 px cells, a 20-colour palette."""
    from charforge.creators.builtin import palette as cp
    from charforge.models.generator import read_generator, save_generator

    gf = read_generator(sampling.load_generator(None, device="cpu").path)
    colours = list(cp.HAIR_RGB.values())[:13] + [
        [255, 255, 255],
        [0, 0, 0],
        [250, 220, 200],
        [200, 150, 120],
        [120, 180, 230],
        [230, 200, 240],
        [140, 140, 140],
    ]
    grid = {"cell": 2, "offset": [0, 0], "palette": [[int(v) for v in c] for c in colours], "share": 1.0}
    prov = dict(gf.meta.get("provenance") or {}) | {"pixel_art": grid}
    return save_generator(
        path, gf.tensors, gf.config, gf.schema, gf.freqs, model_id="pixel-test", provenance=prov
    )


@needs_runtime
@needs_browser
def test_static_site_snaps_a_pixel_art_model_like_the_cli(browser, tmp_path):
    from charforge.core.pixelart import snap

    model = pixel_art_model(tmp_path / "px.safetensors")
    site = tmp_path / "site"
    assert cli(["export", "web", "-o", str(site), "--model", str(model)]) == 0
    doc = json.loads((site / "model" / "model.json").read_text())
    assert doc["pixel_art"]["cell"] == 2 and len(doc["pixel_art"]["palette"]) == 20
    with serve_static(site) as url:
        ctx, page, errors = open_site(browser, url + "/")
        assert "pixel art (2 px cells, 20 colours)" in page.inner_text("#status")
        assert page.is_visible("#pixel-art") and page.is_checked("#pixel-art")
        page.fill("#seed", "40")
        page.fill("#count", "4")
        page.uncheck("#watermark")
        got = {}
        for snapped in (True, False):
            page.set_checked("#pixel-art", snapped)
            page.click("#generate")
            page.locator("#grid .tile img").nth(3).wait_for(timeout=60_000)
            zf = download_zip(page, "#zip-all")
            manifest = json.loads(zf.read("manifest.json"))
            assert manifest["pixel_art"] == ("snapped" if snapped else "off")
            got[snapped] = [pixels(zf.read(im["file"])) for im in manifest["images"]]
            note = read_png_metadata(zf.read(manifest["images"][0]["file"])).get("pixel_art")
            assert (note is not None and "2 px cells" in note and "20 colours" in note) == snapped
        assert not errors, errors
        ctx.close()
    bundle = sampling.load_generator(str(model), device="cpu")
    cli_snapped, _, _ = sampling.characters_for_request(bundle, "", 4, 40, seed_scheme="portable-v1")
    raw = [im for im in got[False]]
    pal = {tuple(c) for c in doc["pixel_art"]["palette"]}
    for page_px, page_raw, cli_px in zip(got[True], raw, cli_snapped):
        assert np.array_equal(page_px, snap(page_raw[None], doc["pixel_art"])[0])  # the page's rule is snap's
        assert {tuple(int(v) for v in c) for c in page_px.reshape(-1, 3)} <= pal
        cells = (page_px[::2, ::2] == cli_px[::2, ::2]).all(-1).mean()
        assert cells > 0.9, (
            cells
        )  # the rest: cells whose mean the runtimes' <= 2/255 differences tip over a tie
