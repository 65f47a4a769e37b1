"""Seed schemes through sampling, the CLI and the studio API: chosen, recorded, and torch-v1 unchanged."""

from __future__ import annotations

import base64
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from charforge import sampling
from charforge.cli import main
from charforge.errors import UserError
from charforge.provenance import read_png_metadata
from charforge.web import seeds as S

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_fakes import LOCAL, make_app, make_bundle  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def bundle():
    return make_bundle(32)


def test_torch_v1_is_the_default_and_unchanged(bundle):
    z = sampling.noise_for_seeds([3, 9], bundle.z_dim, 0.7)
    ref = torch.stack([torch.randn(bundle.z_dim, generator=torch.Generator().manual_seed(s)) for s in (3, 9)])
    assert torch.equal(z, ref * 0.7)
    assert torch.equal(sampling.noise_for_seeds([3, 9], bundle.z_dim, 0.7, "torch-v1"), z)
    c = bundle.schema.parse("blonde hair")
    old = sampling.sample_tags(bundle, c, 1, np.random.default_rng(5))[0]
    assert np.array_equal(sampling.sample_tags_for_seeds(bundle, c, [5])[0], old)
    assert sampling.DEFAULT_SEED_SCHEME == "torch-v1"


def test_portable_v1_is_the_documented_generator(bundle):
    z = sampling.noise_for_seeds([3, 9], bundle.z_dim, 0.7, "portable-v1")
    assert z.dtype == torch.float32
    assert np.array_equal(z.numpy(), (S.normals([3, 9], bundle.z_dim) * 0.7).astype(np.float32))
    c = bundle.schema.parse("blonde hair, -hat")
    tags = sampling.sample_tags_for_seeds(bundle, c, [5, 6], "portable-v1")
    assert np.array_equal(tags, S.sample_tags(bundle.schema, bundle.freqs, c, [5, 6]))
    imgs, seeds, tag_m = sampling.characters_for_seeds(bundle, c, [5, 6], seed_scheme="portable-v1")
    assert np.array_equal(imgs, sampling.generate(bundle, tags, seeds=[5, 6], seed_scheme="portable-v1"))
    assert not np.array_equal(imgs, sampling.characters_for_seeds(bundle, c, [5, 6])[0])
    with pytest.raises(UserError, match="valid seed schemes"):
        sampling.generate(bundle, tags, seeds=[5, 6], seed_scheme="portable-v2")


def test_portable_npc_batch_reproduces_each_record(bundle):
    c = bundle.schema.parse("smile")
    recs = sampling.npc_batch(bundle, 5, 11, c, min_distance=0.0, batch_size=3, seed_scheme="portable-v1")
    assert [r.seed for r in recs] == S.npc_candidate_seeds(11, 0, 5)  # distance 0: every candidate is kept
    again = sampling.npc_batch(bundle, 5, 11, c, min_distance=0.0, batch_size=64, seed_scheme="portable-v1")
    assert [r.seed for r in again] == [r.seed for r in recs]  # batching does not change the candidates
    for r in recs:
        alone, _, tags = sampling.characters_for_seeds(bundle, c, [r.seed], seed_scheme="portable-v1")
        assert np.array_equal(tags[0], r.tags) and np.abs(alone[0].astype(int) - r.image).max() <= 1


def test_cli_records_the_seed_scheme_and_refuses_a_bad_one(tmp_path, capsys):
    out = tmp_path / "g.png"
    args = [
        "generate",
        "--tags",
        "blue eyes",
        "--n",
        "2",
        "--seed",
        "4",
        "-o",
        str(out),
        "--each",
        str(tmp_path),
    ]
    assert cli([*args, "--seed-scheme", "portable-v1", "--no-watermark"]) == 0
    each = sorted(tmp_path.glob("0*_seed*.png"))
    assert len(each) == 2
    meta = read_png_metadata(each[0])
    assert meta["seed_scheme"] == "portable-v1" and meta["seed"] == 4
    assert read_png_metadata(out)["seed_scheme"] == "portable-v1"
    bundle = sampling.load_generator(None)
    ref, _, _ = sampling.characters_for_request(bundle, "blue eyes", 2, 4, seed_scheme="portable-v1")
    assert np.array_equal(np.asarray(Image.open(each[1]).convert("RGB")), ref[1])
    assert cli(["generate", "--n", "1", "-o", str(tmp_path / "d.png")]) == 0
    assert read_png_metadata(tmp_path / "d.png")["seed_scheme"] == "torch-v1"
    capsys.readouterr()
    assert cli(["generate", "--n", "1", "-o", str(out), "--seed-scheme", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "--seed-scheme 'numpy'" in err and "torch-v1, portable-v1" in err
    assert cli(["npc", "--n", "2", "-o", str(tmp_path / "npc"), "--seed-scheme", "portable-v1"]) == 0
    manifest = json.loads((tmp_path / "npc" / "manifest.json").read_text())
    assert manifest["seed_scheme"] == "portable-v1"
    assert read_png_metadata(tmp_path / "npc" / "npc_0000.png")["seed_scheme"] == "portable-v1"


def test_api_takes_and_records_the_seed_scheme(bundle):
    from fastapi.testclient import TestClient

    with TestClient(make_app(), base_url=LOCAL) as client:
        body = {"tags": {"hair color": "pink hair"}, "seeds": [8, 9]}
        port = client.post("/api/v1/generate", json=body | {"seed_scheme": "portable-v1"}).json()
        old = client.post("/api/v1/generate", json=body).json()
        for im in port["images"]:
            assert read_png_metadata(base64.b64decode(im["png_base64"]))["seed_scheme"] == "portable-v1"
        assert (
            read_png_metadata(base64.b64decode(old["images"][0]["png_base64"]))["seed_scheme"] == "torch-v1"
        )
        app_bundle = client.app.state.studio.bundle("default")
        c = app_bundle.schema.parse("pink hair")
        _, _, tags = sampling.characters_for_seeds(app_bundle, c, [8, 9], seed_scheme="portable-v1")
        assert [im["tags"] for im in port["images"]] == [app_bundle.schema.from_vector(t) for t in tags]
        r = client.post("/api/v1/generate", json=body | {"seed_scheme": "numpy"})
        assert r.status_code == 422 and r.json()["field"] == "seed_scheme"
        z = client.post("/api/v1/npc", json={"count": 2, "seed": 3, "seed_scheme": "portable-v1"})
        manifest = json.loads(zipfile.ZipFile(io.BytesIO(z.content)).read("manifest.json"))
        assert manifest["seed_scheme"] == "portable-v1"
        assert [c["seed"] for c in manifest["characters"]][0] == S.npc_candidate_seeds(3, 0, 1)[0]
        gif = client.post(
            "/api/v1/interpolate",
            json={"a": {"seed": 1}, "b": {"seed": 2}, "frames": 2, "seed_scheme": "portable-v1"},
        )
        assert gif.status_code == 200
