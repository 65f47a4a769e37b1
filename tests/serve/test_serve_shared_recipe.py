"""The studio and the CLI share one sampling recipe: the same seed, tags and fixed-noise flag give the same
images in both, NPC metadata's tag seed reproduces the NPC, and GIFs carry the AI-generated statement."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from serve_fakes import LOCAL, FakeF2P, fake_fit, make_bundle

from charforge import sampling
from charforge.cli import main
from charforge.models.io import save_model
from charforge.provenance import read_png_metadata
from charforge.provenance.metadata import AI_STATEMENT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TAGS = "blonde hair, smile, -hat"
FORM = {"hair color": "blonde hair", "smile": True, "hat": False}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(model file, studio test client) over the same tiny 32 px generator."""
    from fastapi.testclient import TestClient

    from charforge.serve.app import ServeSettings, create_app

    torch.set_num_threads(1)
    b = make_bundle(32)
    path = tmp_path_factory.mktemp("shared") / "gen.safetensors"
    save_model(
        path,
        b.net.state_dict(),
        kind="generator",
        config=b.config,
        extra={"tag_schema": b.schema.to_dict(), "tag_freqs": b.freqs.tolist(), "model_id": "shared-test"},
    )
    f2p = FakeF2P()
    app = create_app(
        ServeSettings(),
        generators={"default": sampling.load_generator(path)},
        f2p=f2p,
        creator=f2p.creator,
        fitter=fake_fit,
    )
    with TestClient(app, base_url=LOCAL) as client:
        yield path, client


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("fixed", [False, True])
def test_cli_and_studio_give_identical_images(setup, tmp_path, capsys, fixed):
    path, client = setup
    args = [
        "generate",
        "-m",
        str(path),
        "--tags",
        TAGS,
        "--n",
        "3",
        "--seed",
        "40",
        "-o",
        str(tmp_path / "g.png"),
        "--each",
        str(tmp_path / "each"),
    ] + (["--fixed-noise"] if fixed else [])
    try:
        main(args)
    except SystemExit as e:
        assert e.code == 0, capsys.readouterr().err
    files = sorted((tmp_path / "each").glob("*.png"))
    r = client.post("/api/v1/generate", json={"tags": FORM, "seed": 40, "count": 3, "fixed_noise": fixed})
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert len(files) == len(images) == 3
    for f, im in zip(files, images):
        cli_meta, api_meta = read_png_metadata(f), read_png_metadata(base64.b64decode(im["png_base64"]))
        assert cli_meta["seed"] == im["seed"] and cli_meta["tag_seed"] == im["tag_seed"]
        assert cli_meta["tags"] == im["tags"] == api_meta["tags"]
        assert np.array_equal(_rgb(f.read_bytes()), _rgb(base64.b64decode(im["png_base64"])))
    assert [im["seed"] for im in images] == ([40, 40, 40] if fixed else [40, 41, 42])
    assert [im["tag_seed"] for im in images] == [40, 41, 42]


def test_npc_tag_seed_reproduces_the_npc(setup):
    _, client = setup
    r = client.post("/api/v1/npc", json={"count": 4, "seed": 9, "tags": FORM, "min_distance": 0.0})
    assert r.status_code == 200, r.text
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    rows = json.loads(zf.read("manifest.json"))["characters"]
    for row in rows[:2]:
        meta = read_png_metadata(zf.read(row["file"]))
        assert meta["tag_seed"] == meta["seed"] == row["seed"]
        again = client.post("/api/v1/generate", json={"tags": FORM, "seeds": [meta["tag_seed"]]}).json()[
            "images"
        ][0]
        assert again["tags"] == meta["tags"] == row["tags"]
        assert np.array_equal(_rgb(base64.b64decode(again["png_base64"])), _rgb(zf.read(row["file"])))


def test_studio_gif_has_the_ai_statement(setup):
    _, client = setup
    body = {"a": {"seed": 1, "tags": FORM}, "b": {"seed": 2, "tags": FORM}, "frames": 3, "format": "gif"}
    r = client.post("/api/v1/interpolate", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(r.content)) as gif:
        comment = gif.info["comment"].decode()
    assert comment.startswith(AI_STATEMENT) and '"model_id": "shared-test"' in comment
