"""The studio's `upscale` field on /generate, /interpolate and /npc (in-process, tiny models)."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from serve_fakes import LOCAL, FakeF2P, fake_fit, make_bundle
from sr_fakes import tiny_upscaler

import charforge.sr as sr
from charforge.provenance import read_png_metadata

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def upscaler_path(tmp_path_factory):
    return tiny_upscaler(tmp_path_factory.mktemp("up") / "up.safetensors", blocks=1, up_channels=4)


def _client(upscaler):
    from fastapi.testclient import TestClient

    from charforge.serve.app import ServeSettings, create_app

    f2p = FakeF2P()
    app = create_app(
        ServeSettings(),
        generators={"default": make_bundle()},
        f2p=f2p,
        creator=f2p.creator,
        fitter=fake_fit,
        upscaler=upscaler,
    )
    return TestClient(app, base_url=LOCAL)


def _img(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_generate_upscaled_is_the_same_character_bigger(upscaler_path):
    with _client(str(upscaler_path)) as c:
        body = {"seed": 5, "count": 2}
        small = c.post("/api/v1/generate", json=body).json()["images"]
        r = c.post("/api/v1/generate", json=body | {"upscale": 4})
        assert r.status_code == 200, r.text
        big = r.json()["images"]
        assert [b["seed"] for b in big] == [s["seed"] for s in small]
        assert _img(big[0]["png_base64"]).shape == (128, 128, 3)  # the fake generator draws 32 px
        meta = read_png_metadata(base64.b64decode(big[0]["png_base64"]))
        assert meta["upscaler_id"] == "tiny-sr" and meta["upscale"] == 4 and meta["seed"] == 5
        # the same picture: the 32 px image through the upscaler; the watermarks on both (>= 40 dB each by the
        # watermark's own goal) are the only difference allowed
        ref = sr.load_upscaler(upscaler_path).upscale(_img(small[0]["png_base64"]), 4).astype(float)
        mse = ((_img(big[0]["png_base64"]) - ref) ** 2).mean()
        assert 10 * np.log10(255**2 / mse) > 34
        z = c.post("/api/v1/generate", json=body | {"upscale": 2, "format": "zip"})
        manifest = json.loads(zipfile.ZipFile(io.BytesIO(z.content)).read("manifest.json"))
        assert manifest["upscale"] == 2
        bad = c.post("/api/v1/generate", json=body | {"upscale": 3})
        assert bad.status_code == 422 and "upscale" in bad.text


def test_interpolate_and_npc_upscaled(upscaler_path):
    with _client(str(upscaler_path)) as c:
        r = c.post(
            "/api/v1/interpolate", json={"a": {"seed": 1}, "b": {"seed": 2}, "frames": 2, "upscale": 2}
        )
        assert r.status_code == 200, r.text
        assert _img(r.json()["frames"][0]).shape == (64, 64, 3)
        r = c.post("/api/v1/npc", json={"count": 2, "min_distance": 0.0, "upscale": 2})
        assert r.status_code == 200, r.text
        z = zipfile.ZipFile(io.BytesIO(r.content))
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["upscale"]["upscaler_id"] == "tiny-sr"
        name = manifest["characters"][0]["file"]
        assert Image.open(io.BytesIO(z.read(name))).size == (64, 64)


def test_no_upscaler_is_a_clear_422(tmp_path, monkeypatch):
    monkeypatch.setattr(sr, "WEIGHTS_DIR", tmp_path)  # nothing shipped
    with _client(None) as c:
        assert c.post("/api/v1/generate", json={"count": 1}).status_code == 200  # upscale 1 needs none
        r = c.post("/api/v1/generate", json={"count": 1, "upscale": 2})
        assert r.status_code == 422 and "upscaling is off on this server" in r.text
