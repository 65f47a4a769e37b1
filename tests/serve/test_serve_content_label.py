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
