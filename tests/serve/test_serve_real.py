"""The studio with the real pieces: the builtin creator always; the shipped generator and f2p model when installed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from serve_fakes import LOCAL, FakeF2P, fake_fit, make_bundle

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def client_for(**models):
    from fastapi.testclient import TestClient

    from charforge.serve.app import ServeSettings, create_app

    return TestClient(create_app(ServeSettings(), **models), base_url=LOCAL)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_builtin_creator_editor_round_trip():
    creator = pytest.importorskip("charforge.creators.builtin").BuiltinCreator()
    c = client_for(
        generators={"default": make_bundle()}, f2p=FakeF2P(creator), creator=creator, fitter=fake_fit
    )
    space = c.get("/api/v1/creator").json()["space"]
    assert len(space["continuous"]) >= 10 and space["categorical"]
    base = c.post("/api/v1/render", json={"params": {}, "size": 96})
    assert base.status_code == 200 and pixels(base.content).shape == (96, 96, 3)
    moved = 0
    for p in space["continuous"][:6]:  # pushing a slider to an end changes the picture for most parameters
        far = p["hi"] if p["default"] - p["lo"] < p["hi"] - p["default"] else p["lo"]
        r = c.post("/api/v1/render", json={"params": {p["name"]: far}, "size": 96})
        assert r.status_code == 200
        moved += int(np.abs(pixels(r.content) - pixels(base.content)).mean() > 0.2)
    assert moved >= 3
    p = space["continuous"][0]
    bad = c.post("/api/v1/render", json={"params": {p["name"]: p["hi"] + 1}})
    assert bad.status_code == 422 and bad.json()["field"] == f"params.{p['name']}"
    cat = space["categorical"][0]
    bad = c.post("/api/v1/render", json={"params": {cat["name"]: "no-such-option"}})
    assert bad.status_code == 422 and bad.json()["field"] == f"params.{cat['name']}"


def test_shipped_generator_respects_tags():
    from charforge import sampling

    if "default" not in sampling.available_generators():
        pytest.skip("no shipped default generator yet (charforge/weights/generator_default.safetensors)")
    c = client_for(generators={"default": sampling.load_generator(None)})
    r = c.post(
        "/api/v1/generate", json={"tags": {"hair color": "silver hair", "hat": True}, "seed": 1, "count": 2}
    )
    assert r.status_code == 200
    assert all("silver hair" in im["tags"] and "hat" in im["tags"] for im in r.json()["images"])


def test_shipped_f2p_fits_a_photo():
    from charforge.f2p.model import default_f2p_path

    if not default_f2p_path().is_file():
        pytest.skip("no shipped face-to-parameter model yet")
    from skimage import data

    from charforge.f2p import load_f2p

    f2p = load_f2p(None)
    c = client_for(f2p=f2p, creator=f2p.creator)
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG")
    r = c.post(
        "/api/v1/fit", files={"file": ("astronaut.jpg", buf.getvalue(), "image/jpeg")}, data={"mode": "fast"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    f2p.creator.space.validate(body["params"])  # every fitted parameter is a valid creator value
    assert -1.0 <= body["similarity"] <= 1.0


def test_serve_device_cuda_is_refused_where_there_is_none(tmp_path):
    import subprocess
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = subprocess.run(
        [sys.executable, "-m", "charforge", "serve", "--device", "cuda", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "--device cuda: no CUDA device is available" in r.stderr
    assert "Traceback" not in r.stderr
    from charforge.serve.server import load_generator_backend

    b = load_generator_backend(None, "torch", "cpu")
    assert b.device == "cpu"
