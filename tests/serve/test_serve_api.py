"""The studio HTTP API on a tiny untrained generator, a toy creator and a toy fitter (in-process, no sockets)."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from serve_fakes import LOCAL, make_app, png_of

from charforge.provenance import read_png_metadata

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    with TestClient(make_app(), base_url=LOCAL) as c:
        yield c


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_health_models_creator(client):
    h = client.get("/api/v1/health").json()
    assert h["status"] == "ok" and h["models"] == ["default"] and h["f2p"] is True
    m = client.get("/api/v1/models").json()
    info = m["models"][0]
    assert m["default"] == "default" and info["image_size"] == 32
    assert [g["name"] for g in info["schema"]["groups"]] == ["hair color", "eye color"]
    assert set(info["freqs"]) == {t for g in info["schema"]["groups"] for t in g["tags"]} | set(
        info["schema"]["independent"]
    )
    space = client.get("/api/v1/creator").json()["space"]
    assert [p["name"] for p in space["continuous"]] == ["radius", "x"]


def test_generate_respects_tags_and_seeds(client):
    tags = {"hair color": "blonde hair", "eye color": "any", "smile": True, "hat": False, "glasses": "any"}
    r = client.post("/api/v1/generate", json={"tags": tags, "seed": 40, "count": 5})
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert [im["seed"] for im in images] == [40, 41, 42, 43, 44]
    for im in images:
        assert "blonde hair" in im["tags"] and "smile" in im["tags"] and "hat" not in im["tags"]
        assert decode(im["png_base64"]).shape == (32, 32, 3)
        assert im["tag_form"]["smile"] is True and im["tag_form"]["hair color"] == "blonde hair"
    meta = read_png_metadata(base64.b64decode(images[2]["png_base64"]))
    assert meta["seed"] == 42 and "blonde hair" in meta["tags"] and meta["model_id"] == "tiny-test-0"
    # a seed reproduces its image whatever else is in the batch
    alone = client.post("/api/v1/generate", json={"tags": tags, "seeds": [42]}).json()["images"][0]
    assert alone["tags"] == images[2]["tags"]
    assert np.array_equal(decode(alone["png_base64"]), decode(images[2]["png_base64"]))


def test_fixed_noise_shares_the_face_and_varies_tags(client):
    r = client.post("/api/v1/generate", json={"seed": 7, "count": 6, "fixed_noise": True}).json()["images"]
    assert {im["seed"] for im in r} == {7}
    assert len({tuple(im["tags"]) for im in r}) > 1


def test_generate_zip_has_manifest(client):
    r = client.post("/api/v1/generate", json={"seed": 3, "count": 3, "format": "zip", "truncation": 0.7})
    assert r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(zf.read("manifest.json"))
    assert [row["seed"] for row in manifest["images"]] == [3, 4, 5] and manifest["truncation"] == 0.7
    assert all(zf.read(row["file"]).startswith(b"\x89PNG") for row in manifest["images"])


@pytest.mark.parametrize(
    "body, field",
    [
        ({"tags": {"hair color": "blond hair"}}, "tags.hair color"),
        ({"tags": {"wings": True}}, "tags.wings"),
        ({"tags": {"long hair": True, "short hair": True}}, "tags"),
        ({"tags": {"smile": "yes"}}, "tags.smile"),
        ({"count": 65}, "count"),
        ({"seed": -1}, "seed"),
        ({"seeds": [1, 2**40]}, "seeds.1"),
        ({"model": "../../etc/passwd"}, "model"),
    ],
)
def test_generate_bad_input_is_422_naming_the_field(client, body, field):
    r = client.post("/api/v1/generate", json=body)
    assert r.status_code == 422
    assert r.json()["field"] == field and r.json()["detail"]


def test_interpolate_end_points_match_generate(client):
    a = client.post("/api/v1/generate", json={"seeds": [11]}).json()["images"][0]
    b = client.post("/api/v1/generate", json={"seeds": [12]}).json()["images"][0]
    body = {"a": {"seed": 11, "tags": a["tag_form"]}, "b": {"seed": 12, "tags": b["tag_form"]}, "frames": 5}
    r = client.post("/api/v1/interpolate", json=body).json()
    assert len(r["frames"]) == 5 and r["tags_a"] == a["tags"]
    # the same noise and tags; the frames run as one batch of 5, and some CPUs' conv kernels (oneDNN on
    # AVX-512 / AMX) round a batch of 5 differently from a batch of 1: at most one level of 255
    for frame, end in ((r["frames"][0], a), (r["frames"][-1], b)):
        assert np.abs(decode(frame).astype(int) - decode(end["png_base64"]).astype(int)).max() <= 1
    gif = client.post("/api/v1/interpolate", json={**body, "format": "gif"})
    assert gif.headers["content-type"] == "image/gif" and Image.open(io.BytesIO(gif.content)).n_frames == 5


def test_npc_zip_unique_and_limited(client):
    r = client.post("/api/v1/npc", json={"count": 12, "seed": 1, "tags": {"hat": True}, "min_distance": 0.0})
    assert r.status_code == 200, r.text
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(zf.read("manifest.json"))
    seeds = [c["seed"] for c in manifest["characters"]]
    assert len(seeds) == 12 == len(set(seeds)) and all("hat" in c["tags"] for c in manifest["characters"])
    assert len(zf.namelist()) == 13
    assert client.post("/api/v1/npc", json={"count": 501}).status_code == 422


def test_render_and_parameter_errors(client):
    r = client.post("/api/v1/render", json={"params": {"color": "blue", "radius": 0.2}, "size": 64})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    im = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert (
        im.shape == (64, 64, 3) and np.abs(im[32, 32].astype(int) - (40, 60, 220)).max() <= 4
    )  # watermark: +-few levels
    bigger = client.post(
        "/api/v1/render", json={"params": {"color": "blue", "radius": 0.4}, "size": 64}
    ).content
    assert (np.asarray(Image.open(io.BytesIO(bigger)).convert("RGB")) != im).any()
    for params, field in [
        ({"radius": 3}, "params.radius"),
        ({"color": "teal"}, "params.color"),
        ({"tail": 1}, "params.tail"),
    ]:
        bad = client.post("/api/v1/render", json={"params": params})
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text


def test_fit_sniffs_content_not_names(client):
    # a real PNG sent with a misleading name and type is still an image
    r = client.post(
        "/api/v1/fit",
        files={"file": ("notes.txt", png_of((30, 50, 200)), "text/plain")},
        data={"mode": "fast"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["params"]["color"] == "blue" and 0 <= body["similarity"] <= 1
    assert decode(body["preview_base64"]).shape == (64, 64, 3)
    # text called photo.png is not
    r = client.post("/api/v1/fit", files={"file": ("photo.png", b"<html>not a picture</html>", "image/png")})
    assert r.status_code == 415 and r.json()["field"] == "file"
    # a truncated PNG is an image that cannot be decoded
    r = client.post("/api/v1/fit", files={"file": ("cut.png", png_of()[:60], "image/png")})
    assert r.status_code == 422 and "decoded" in r.json()["detail"]
    assert (
        client.post(
            "/api/v1/fit", files={"file": ("a.png", png_of(), "image/png")}, data={"mode": "slow"}
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/v1/fit", content=b"raw", headers={"content-type": "application/octet-stream"}
        ).status_code
        == 415
    )


def test_fit_limits_size_and_pixels():
    from fastapi.testclient import TestClient

    with TestClient(make_app(max_upload_bytes=3000, max_pixels=50 * 50), base_url=LOCAL) as c:
        big = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(big).save(buf, format="PNG")  # ~4.8 kB of noise: over the 3000-byte limit
        r = c.post("/api/v1/fit", files={"file": ("noise.png", buf.getvalue(), "image/png")})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = c.post("/api/v1/fit", files={"file": ("wide.png", png_of(size=(60, 60)), "image/png")})
        assert r.status_code == 413 and "3,600" in r.json()["detail"]
        r = c.post("/api/v1/generate", content=b"x" * 200_000, headers={"content-type": "application/json"})
        assert r.status_code == 413  # the declared Content-Length alone is enough


def test_fit_writes_nothing_to_disk(client, monkeypatch):
    import tempfile

    def refuse(*a, **k):
        raise AssertionError("an upload touched the disk")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    big = np.random.default_rng(1).integers(
        0, 255, (700, 700, 3), dtype=np.uint8
    )  # ~1.5 MB PNG: above any spool size
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG", compress_level=0)
    r = client.post("/api/v1/fit", files={"file": ("big.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text


def test_token_required_when_set():
    from fastapi.testclient import TestClient

    with TestClient(make_app(token="s3cret-token"), base_url=LOCAL) as c:
        assert c.get("/api/v1/health").status_code == 401
        assert c.get("/api/v1/health", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        r = c.post("/api/v1/generate", json={"count": 1})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/v1/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        page = c.get("/")  # the page itself holds no data; it asks for the token
        assert page.status_code == 200 and "charforge studio" in page.text


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/docs").status_code == 200 and "/api/v1/generate" in client.get("/openapi.json").text


def test_docs_page_is_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs-static/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["paths"]


def test_truncation_changes_the_image_and_is_validated(client):
    full = client.post("/api/v1/generate", json={"seeds": [9]}).json()["images"][0]
    trunc = client.post("/api/v1/generate", json={"seeds": [9], "truncation": 0.5}).json()["images"][0]
    assert trunc["tags"] == full["tags"]  # the tags come from the seed; only the noise shrinks
    assert not np.array_equal(decode(trunc["png_base64"]), decode(full["png_base64"]))
    assert read_png_metadata(base64.b64decode(trunc["png_base64"]))["truncation"] == 0.5
    r = client.post("/api/v1/generate", json={"truncation": 0})
    assert r.status_code == 422 and r.json()["field"] == "truncation"


def test_interpolate_end_points_match_generate_when_truncated(client):
    a = client.post("/api/v1/generate", json={"seeds": [21], "truncation": 0.6}).json()["images"][0]
    b = client.post("/api/v1/generate", json={"seeds": [22], "truncation": 0.6}).json()["images"][0]
    body = {
        "a": {"seed": 21, "tags": a["tag_form"]},
        "b": {"seed": 22, "tags": b["tag_form"]},
        "frames": 3,
        "truncation": 0.6,
    }
    r = client.post("/api/v1/interpolate", json=body).json()
    # the same noise and tags; the frames run as one batch of 5, and some CPUs' conv kernels (oneDNN on
    # AVX-512 / AMX) round a batch of 5 differently from a batch of 1: at most one level of 255
    for frame, end in ((r["frames"][0], a), (r["frames"][-1], b)):
        assert np.abs(decode(frame).astype(int) - decode(end["png_base64"]).astype(int)).max() <= 1


def test_a_pixel_art_model_is_listed_as_such_and_served_snapped():
    """/models says which model learned from pixel art (grid and palette size, for the page's crisp tiles), and
    /generate's pictures sit on its grid in its palette, up to the invisible watermark's faint changes (the
    studio always marks)."""
    import dataclasses

    from fastapi.testclient import TestClient
    from serve_fakes import FakeF2P, fake_fit, make_bundle

    from charforge.serve.app import ServeSettings, create_app

    palette = [[0, 0, 0], [255, 255, 255], [200, 40, 40], [40, 90, 200], [240, 200, 60]]
    grid = {"cell": 4, "offset": [0, 2], "palette": palette, "share": 1.0}
    px = dataclasses.replace(make_bundle(), pixel_art=grid)
    f2p = FakeF2P()
    app = create_app(
        ServeSettings(),
        generators={"default": make_bundle(), "px": px},
        f2p=f2p,
        creator=f2p.creator,
        fitter=fake_fit,
    )
    with TestClient(app, base_url=LOCAL) as c:
        info = {m["name"]: m for m in c.get("/api/v1/models").json()["models"]}
        assert info["px"]["pixel_art"] == {"cell": 4, "offset": [0, 2], "colours": 5}
        assert info["default"]["pixel_art"] is None
        r = c.post("/api/v1/generate", json={"model": "px", "seed": 3, "count": 2})
        assert r.status_code == 200, r.text
        pal = np.asarray(palette, float)
        for im in r.json()["images"]:
            a = decode(im["png_base64"]).astype(float)
            near = np.abs(a.reshape(-1, 1, 3) - pal[None]).max(-1).min(-1)  # to the nearest palette colour
            inner = a[:, 2:30]  # whole 4 px cells from column 2
            cells = inner.reshape(8, 4, 7, 4, 3).mean((1, 3)).repeat(4, 0).repeat(4, 1)
            assert np.median(near) <= 3 and np.abs(inner - cells).mean() < 3
            raw = np.abs(
                decode(
                    c.post("/api/v1/generate", json={"model": "default", "seed": 3}).json()["images"][0][
                        "png_base64"
                    ]
                ).astype(float)
                - a
            )
            assert raw.mean() > 10  # the same seed from the same weights, unsnapped, is another picture
