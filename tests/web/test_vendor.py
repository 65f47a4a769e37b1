"""charforge.web.vendor: only the pinned onnxruntime-web tarball is accepted, and tampering is noticed."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from charforge.web import vendor


def fake_tarball(path, content: bytes = b"not the real runtime") -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name in vendor.FILES:
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path, capsys):
    tgz = tmp_path / "onnxruntime-web-1.30.0.tgz"
    fake_tarball(tgz)
    with pytest.raises(RuntimeError, match="is not the pinned onnxruntime-web@1.30.0 tarball"):
        vendor.vendor(tgz, tmp_path / "rt")
    assert not (tmp_path / "rt" / vendor.MANIFEST).exists()
    assert vendor.main(["--from", str(tgz), "--force"]) == 2
    assert "could not vendor" in capsys.readouterr().err
    assert vendor.main(["--from", str(tmp_path / "missing.tgz"), "--force"]) == 2


def test_missing_or_changed_files_make_the_runtime_unusable(tmp_path):
    ok, why = vendor.runtime_status(tmp_path)
    assert not ok and "python -m charforge.web.vendor" in why and "npm" in why
    if not vendor.runtime_status()[0]:
        pytest.skip("onnxruntime-web is not vendored here (npm missing?): nothing to tamper with")
    rt = tmp_path / "rt"
    shutil.copytree(vendor.RUNTIME_DIR, rt)
    assert vendor.runtime_status(rt) == (True, "")
    doc = json.loads((rt / vendor.MANIFEST).read_text())
    assert set(doc["files"]) == set(vendor.FILES) and doc["license"].startswith("MIT")
    with open(rt / "ort.wasm.min.js", "r+b") as f:  # same size, one byte changed
        first = f.read(1)
        f.seek(0)
        f.write(b"X" if first != b"X" else b"Y")
    ok, why = vendor.runtime_status(rt)
    assert not ok and "ort.wasm.min.js" in why and "changed" in why


def test_check_reports_the_status(capsys):
    ok, _ = vendor.runtime_status()
    assert vendor.main(["--check"]) == (0 if ok else 1)
    out = capsys.readouterr().out
    assert ("vendored and intact" in out) == ok
