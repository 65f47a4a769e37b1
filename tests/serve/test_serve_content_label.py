"""The studio's downloads (the PNG bytes the page links to, and the zips) keep the IPTC AI-content label."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from serve_fakes import LOCAL, make_app

from charforge.provenance.verify import verify_bytes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_studio_downloads_keep_the_label():
    from fastapi.testclient import TestClient

    with TestClient(make_app(), base_url=LOCAL) as client:
        r = client.post("/api/v1/generate", json={"seed": 1, "count": 2})
        assert r.status_code == 200, r.text
        for im in r.json()["images"]:  # the page's "download PNG" link is this data, byte for byte
            assert verify_bytes(base64.b64decode(im["png_base64"]), "dl.png").ai_label
        r = client.post("/api/v1/generate", json={"seed": 1, "count": 2, "format": "zip"})
        zf = zipfile.ZipFile(io.BytesIO(r.content))
        pngs = [n for n in zf.namelist() if n.endswith(".png")]
        assert pngs and all(verify_bytes(zf.read(n), n).ai_label for n in pngs)


def test_studio_downloads_keep_c2pa_credentials(tmp_path, monkeypatch):
    pytest.importorskip("c2pa", reason="charforge[c2pa] is not installed (pip install 'charforge[c2pa]')")
    from fastapi.testclient import TestClient

    from charforge.provenance import content_credentials

    monkeypatch.setenv("CHARFORGE_KEYS", str(tmp_path / "keys"))
    monkeypatch.delenv("CHARFORGE_C2PA", raising=False)
    content_credentials.init_keys()
    with TestClient(make_app(), base_url=LOCAL) as client:
        im = client.post("/api/v1/generate", json={"seed": 2, "count": 1}).json()["images"][0]
        r = verify_bytes(base64.b64decode(im["png_base64"]), "dl.png")
        assert r.ai_label and r.c2pa["trusted"], r.c2pa
        z = client.post("/api/v1/npc", json={"count": 2, "seed": 1, "min_distance": 0.0})
        zf = zipfile.ZipFile(io.BytesIO(z.content))
        pngs = [n for n in zf.namelist() if n.endswith(".png")]
        assert pngs and all(verify_bytes(zf.read(n), n).c2pa["trusted"] for n in pngs)
