"""C2PA content credentials (optional extra charforge[c2pa]): local keys, signed outputs, verify's verdicts."""

from __future__ import annotations

import io
import json
import os
import stat
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("c2pa", reason="charforge[c2pa] is not installed (pip install 'charforge[c2pa]')")

from charforge.cli import main  # noqa: E402
from charforge.provenance import content_credentials as cc  # noqa: E402
from charforge.provenance import png_bytes  # noqa: E402
from charforge.provenance.verify import verify_bytes  # noqa: E402
from charforge.provenance.watermark import detect_watermark  # noqa: E402

IMG = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _cli(capsys, *args):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def keys(tmp_path, monkeypatch):
    folder = tmp_path / "keys"
    monkeypatch.setenv("CHARFORGE_KEYS", str(folder))
    monkeypatch.delenv("CHARFORGE_C2PA", raising=False)
    cc.init_keys()
    return folder


def _retext(data: bytes, old: bytes, new: bytes) -> bytes:
    """Change a tEXt chunk's value and fix its CRC: a well-formed PNG the manifest no longer matches."""
    out, pos = bytearray(data[:8]), 8
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"tEXt" and old in body:
            body = body.replace(old, new)
        out += len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
        pos += 12 + n
    return bytes(out)


def test_keys_init_makes_private_files_and_refuses_repos_and_overwrites(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "k"
    code, out, err = _cli(capsys, "keys", "init", "--dir", folder, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["key"] == str(folder / "signer.key")
    assert stat.S_IMODE(os.stat(folder / "signer.key").st_mode) == 0o600
    assert (
        b"PRIVATE KEY" in (folder / "signer.key").read_bytes()
        and b"PRIVATE" not in (folder / "ca.pem").read_bytes()
    )
    code, _, err = _cli(capsys, "keys", "init", "--dir", folder)
    assert code == 2 and "already exists" in err and "--force" in err
    assert _cli(capsys, "keys", "init", "--dir", folder, "--force")[0] == 0
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    code, _, err = _cli(capsys, "keys", "init", "--dir", tmp_path / "repo" / "keys")
    assert code == 2 and "never be committed" in err and "Traceback" not in err


def test_outputs_are_signed_and_verify_trusts_your_own_key(keys, monkeypatch):
    signed = png_bytes(IMG, {"seed": 3, "model_sha256": "cd" * 32})
    monkeypatch.setenv("CHARFORGE_C2PA", "0")
    plain = png_bytes(IMG, {"seed": 3, "model_sha256": "cd" * 32})
    monkeypatch.delenv("CHARFORGE_C2PA")
    # the manifest adds chunks; pixels, watermark and the XMP label stay
    px = lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))  # noqa: E731
    assert np.array_equal(px(signed), px(plain)) and detect_watermark(px(signed))[0]
    r = verify_bytes(signed, "s.png")
    assert r.ai_label and r.metadata["seed"] == 3
    c = r.c2pa
    assert c["present"] and c["valid"] and c["trusted"] and c["state"] == "Trusted", c
    assert c["digital_source_type"] == cc.TRAINED and c["claim_generator"] == ["charforge"]
    assert len(signed) < len(plain) + 30_000  # no thumbnail: small images stay small
    # tampered metadata: the manifest's hash no longer matches
    bad = verify_bytes(_retext(signed, b"3", b"4"), "t.png").c2pa
    assert bad["present"] and not bad["valid"] and "does not validate" in bad["note"], bad
    # re-encoded: gone, and said
    buf = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(buf, format="PNG")
    gone = verify_bytes(buf.getvalue(), "r.png").c2pa
    assert not gone["present"] and gone["note"] == "no C2PA content credentials"
    assert not verify_bytes(plain, "p.png").c2pa["present"]


def test_another_signer_is_valid_but_not_trusted(keys, tmp_path, monkeypatch):
    signed = png_bytes(IMG, {"seed": 1})
    monkeypatch.setenv("CHARFORGE_KEYS", str(tmp_path / "someone_else"))
    cc.init_keys()
    c = verify_bytes(signed, "o.png").c2pa
    assert c["valid"] and not c["trusted"] and "not in your trust list" in c["note"]


def test_verify_cli_shows_the_c2pa_column(keys, tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(png_bytes(IMG, {"seed": 1}))
    code, out, err = _cli(capsys, "verify", tmp_path / "a.png")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert "c2pa" in header and "trusted" in row and "iptc-ai" in row
