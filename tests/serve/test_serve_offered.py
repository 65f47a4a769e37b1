"""`charforge serve` with no --model offers the other shipped models (the sharp and 128 px GANs, the styles GAN
and the diffusion model) beside the default GAN, each loaded on its first request (start-up only reads its
file): listed by /models with loaded=false, generated on demand, chosen in the page's model menu. An explicit
--model list loads exactly those models, as before."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from serve_fakes import LOCAL, LiveServer, make_bundle

from charforge import sampling
from charforge.serve.engine import LazyBundle

SHIPPED = sampling.available_generators()
OFFERED = [n for n in ("default", "sharp", "128px", "styles", "diffusion") if n in SHIPPED]
needs_shipped = pytest.mark.skipif(
    "diffusion" not in SHIPPED or "default" not in SHIPPED, reason="the shipped models are not installed"
)
needs_gans = pytest.mark.skipif(
    not {"default", "sharp", "128px"} <= set(SHIPPED), reason="the shipped GANs are not installed"
)
CHROMIUM = "/usr/bin/chromium"


@needs_shipped
def test_default_models_offer_diffusion_without_loading_it():
    # a fresh process, so "diffusers was not imported" means start-up did not build the UNet
    code = (
        "import json, sys, time\n"
        "from charforge.serve.server import load_models\n"
        "t = time.perf_counter()\n"
        "g = load_models(None, None, 'builtin', warn=lambda m: None)['generators']\n"
        "lazy = g['diffusion']\n"
        "assert all(not g[n].loaded for n in g if n != 'default')\n"
        "out = {'names': list(g), 'lazy': type(lazy).__name__, 'loaded': lazy.loaded,\n"
        "       'family': lazy.config['family'], 'size': lazy.image_size, 'diffusers': 'diffusers' in sys.modules,\n"
        "       'explicit': list(load_models(['default'], None, 'builtin', warn=lambda m: None)['generators'])}\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["names"] == OFFERED and out["lazy"] == "LazyBundle"
    assert out["loaded"] is False and out["diffusers"] is False
    assert (out["family"], out["size"]) == ("diffusion", 32)
    assert out["explicit"] == ["default"]  # --model lists exactly what loads


def test_lazy_bundle_loads_once_across_threads():
    calls = []
    real = make_bundle()

    def load():
        calls.append(1)
        time.sleep(0.05)
        return real

    lazy = LazyBundle(real, load)
    assert lazy.image_size == 32 and lazy.schema is real.schema and not calls  # the list reads no weights
    got = []
    threads = [threading.Thread(target=lambda: got.append(lazy.load())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(g is real for g in got) and lazy.loaded and lazy.net is real.net


def _app():
    from charforge.serve.app import ServeSettings, create_app
    from charforge.serve.server import offered_models

    return create_app(ServeSettings(), generators={"default": make_bundle(), **offered_models()})


@needs_shipped
def test_offered_model_is_listed_then_loaded_by_its_first_request():
    from fastapi.testclient import TestClient

    app = _app()
    with TestClient(app, base_url=LOCAL) as c:
        models = {m["name"]: m for m in c.get("/api/v1/models").json()["models"]}
        assert models["default"]["loaded"] is True and models["diffusion"]["loaded"] is False
        assert (
            models["diffusion"]["family"] == "diffusion" and "steps" in models["diffusion"]["sample_options"]
        )
        assert models["diffusion"]["image_size"] == 32 and len(models["diffusion"]["sha256"]) == 64
        assert c.get("/api/v1/health").json()["models"] == OFFERED
        assert "diffusion" not in c.get("/api/v1/web").json()["models"]  # server-side sampling only
        r = c.post("/api/v1/generate", json={"model": "diffusion", "count": 1, "seed": 3, "steps": 2})
        assert r.status_code == 200, r.text
        assert r.json()["model_id"] == models["diffusion"]["model_id"]
        assert {m["name"]: m["loaded"] for m in c.get("/api/v1/models").json()["models"]}["diffusion"] is True
        # the default model is still the GAN, and a GAN request still refuses diffusion fields
        r = c.post("/api/v1/generate", json={"count": 1, "steps": 2})
        assert r.status_code == 422 and "steps" in r.text


@pytest.mark.browser
@needs_shipped
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
def test_page_offers_the_diffusion_model_beside_the_gan(tmp_path, browser):
    with LiveServer(_app()) as server:
        page = browser.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/?generate=server#generate")
        page.wait_for_selector("#groups select", state="attached")
        assert page.is_visible("#model")  # two models: the menu shows
        labels = page.eval_on_selector_all("#model option", "os => os.map(o => o.textContent)")
        assert labels[0].startswith("default") and all("loads on first use" in x for x in labels[1:])
        assert page.is_hidden("#diffusion-fields")  # the GAN stays the default
        page.select_option("#model", "diffusion")
        assert page.is_visible("#diffusion-fields")
        page.fill("#steps", "2")
        page.fill("#count", "2")
        with page.expect_request(lambda r: r.url.endswith("/api/v1/generate")) as req:
            page.click("#generate")
        assert json.loads(req.value.post_data)["model"] == "diffusion"
        page.wait_for_function("document.querySelectorAll('#grid .tile img').length === 2", timeout=60_000)
        page.screenshot(path=str(tmp_path / "studio_offered_diffusion.png"))
        page.context.close()
        assert not errors, errors


@pytest.mark.browser
@needs_gans
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
def test_page_generates_with_the_sharp_and_128px_models(tmp_path, browser, monkeypatch):
    # the page's default path: in this browser where the vendored runtime allows, on the server otherwise
    from charforge.serve.app import ServeSettings, create_app
    from charforge.serve.server import offered_models
    from charforge.web import vendor

    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))  # the ONNX exports made on first use
    in_browser, _ = vendor.runtime_status()
    app = create_app(ServeSettings(), generators={"default": make_bundle(), **offered_models()})
    with LiveServer(app) as server:
        page = browser.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True).new_page()
        errors: list[str] = []
        posts: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: posts.append(r.url) if r.url.endswith("/api/v1/generate") else None)
        page.goto(f"{server.url}/#generate")
        page.wait_for_selector("#groups select", state="attached")
        values = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
        assert {"sharp", "128px"} <= set(values)
        for name, side in (("sharp", 64), ("128px", 128)):
            page.select_option("#model", name)
            page.fill("#seed", "7")
            page.fill("#count", "2")
            if in_browser:  # the selected model's ONNX is fetched into the page before it draws
                page.wait_for_function(
                    "document.querySelector('#where').dataset.where === 'client'", timeout=120_000
                )
            page.click("#generate")
            page.wait_for_function(
                "[...document.querySelectorAll('#grid .tile img')].length === 2 && [...document.querySelectorAll("
                f"'#grid .tile img')].every(i => i.complete && i.naturalWidth === {side})",
                timeout=120_000,
            )
            page.screenshot(path=str(tmp_path / f"studio_{name}.png"))
        page.context.close()
        assert not errors, errors
        assert len(posts) == (0 if in_browser else 2)  # drawn in the page, or by the server when it must
