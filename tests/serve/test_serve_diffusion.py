"""The studio API with a diffusion model: steps, guidance, sampler, negative tags and img2img as request fields,
recorded in every PNG; a GAN refuses them with a 422 naming the field."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest
from PIL import Image
from serve_fakes import LOCAL, make_bundle, make_diffusion_bundle, png_of


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from charforge.serve.app import ServeSettings, create_app

    app = create_app(ServeSettings(), generators={"default": make_bundle(), "diff": make_diffusion_bundle()})
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def _text(b64: str) -> dict:
    return dict(Image.open(io.BytesIO(base64.b64decode(b64))).text)


def test_models_say_which_take_diffusion_fields(client):
    models = {m["name"]: m for m in client.get("/api/v1/models").json()["models"]}
    assert models["diff"]["family"] == "diffusion" and "steps" in models["diff"]["sample_options"]
    assert models["default"]["family"] == "acgan" and models["default"]["sample_options"] == []


def test_generate_records_sampler_settings_and_negatives(client):
    body = {
        "model": "diff",
        "seed": 5,
        "count": 2,
        "steps": 3,
        "guidance": 3.5,
        "sampler": "ddim",
        "negative_tags": ["hat"],
        "tags": {"hair color": "blonde hair"},
    }
    r = client.post("/api/v1/generate", json=body)
    assert r.status_code == 200, r.text
    again = client.post("/api/v1/generate", json=body).json()
    imgs = r.json()["images"]
    assert [i["png_base64"] for i in imgs] == [i["png_base64"] for i in again["images"]]  # seeds reproduce
    meta = _text(imgs[0]["png_base64"])
    assert meta["charforge:steps"] == "3" and meta["charforge:guidance"] == "3.5"
    assert meta["charforge:sampler"] == "ddim" and json.loads(meta["charforge:negative_tags"]) == ["hat"]
    assert all("hat" not in i["tags"] for i in imgs)
    other = client.post("/api/v1/generate", json={**body, "guidance": 1.0}).json()["images"]
    assert other[0]["png_base64"] != imgs[0]["png_base64"]  # guidance changes the picture


def test_img2img_and_npc_variations(client):
    init = base64.b64encode(png_of((200, 40, 40), (24, 24))).decode()
    base = {"model": "diff", "seed": 1, "count": 1, "steps": 4, "init_image_base64": init}
    near = client.post("/api/v1/generate", json={**base, "strength": 0.25}).json()["images"][0]
    far = client.post("/api/v1/generate", json={**base, "strength": 1.0}).json()["images"][0]

    def redness(b64):
        im = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
        px = list(im.getdata())
        return sum(p[0] - p[2] for p in px) / len(px)

    assert redness(near["png_base64"]) > redness(far["png_base64"]) + 20  # low strength keeps the red image
    assert _text(near["png_base64"])["charforge:strength"] == "0.25"
    from charforge.models.diffusion import DEFAULT_STRENGTH

    default = client.post("/api/v1/generate", json=base).json()["images"][
        0
    ]  # no strength: the family's default
    assert _text(default["png_base64"])["charforge:strength"] == str(DEFAULT_STRENGTH)
    r = client.post(
        "/api/v1/npc",
        json={
            "model": "diff",
            "count": 3,
            "seed": 2,
            "steps": 3,
            "min_distance": 0.0,
            "init_image_base64": init,
            "strength": 0.5,
        },
    )
    assert r.status_code == 200, r.text
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert len([n for n in z.namelist() if n.endswith(".png")]) == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"model": "default", "steps": 4}, "steps"),
        ({"model": "diff", "strength": 0.5}, "strength"),
        ({"model": "diff", "negative_tags": ["hat"], "tags": {"hat": True}}, "negative_tags"),
        (
            {"model": "diff", "init_image_base64": base64.b64encode(b"not an image").decode()},
            "init_image_base64",
        ),
        ({"model": "diff", "steps": 0}, "steps"),
        ({"model": "default", "init_image_base64": base64.b64encode(png_of()).decode()}, "init_image"),
    ],
)
def test_bad_diffusion_requests_name_the_field(client, body, field):
    r = client.post("/api/v1/generate", json={"count": 1, **body})
    assert r.status_code in (413, 415, 422), r.text
    assert field in (r.json().get("field") or "") + r.json()["detail"]


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
def test_page_controls_for_a_diffusion_model(tmp_path, browser):
    from serve_fakes import LiveServer

    from charforge.serve.app import ServeSettings, create_app

    app = create_app(ServeSettings(), generators={"default": make_bundle(), "diff": make_diffusion_bundle()})
    with LiveServer(app) as server:
        page = browser.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/?generate=server#generate")
        page.wait_for_selector("#groups select", state="attached")
        assert page.is_hidden("#diffusion-fields")  # the GAN is the default model
        page.select_option("#model", "diff")
        assert page.is_visible("#diffusion-fields") and page.is_hidden("#variety")
        page.fill("#steps", "3")
        page.fill("#guidance", "4")
        page.select_option("#sampler", "ddim")
        page.fill("#negative-tags", "hat, glasses")
        page.fill("#count", "2")
        with page.expect_request(lambda r: r.url.endswith("/api/v1/generate")) as req:
            page.click("#generate")
        body = json.loads(req.value.post_data)
        assert (body["steps"], body["guidance"], body["sampler"]) == (3, 4, "ddim")
        assert body["negative_tags"] == ["hat", "glasses"] and body["model"] == "diff"
        page.wait_for_function("document.querySelectorAll('#grid .tile img').length === 2")
        titles = page.eval_on_selector_all("#grid .tile", "ts => ts.map(t => t.title)")
        assert all("hat" not in t.split(", ") and "glasses" not in t.split(", ") for t in titles)
        page.click("#grid .tile >> nth=0")
        page.fill("#strength", "0.3")
        with page.expect_request(lambda r: r.url.endswith("/api/v1/generate")) as req2:
            page.click("#img2img")
        body2 = json.loads(req2.value.post_data)
        assert body2["strength"] == 0.3 and len(body2["init_image_base64"]) > 100
        page.wait_for_function("document.querySelector('#gen-info').textContent.includes('2 images')")
        page.screenshot(path=str(tmp_path / "studio_diffusion.png"))
        page.context.close()
        assert not errors, errors
