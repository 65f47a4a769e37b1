"""Hostile folders and outputs for `charforge data import`: each gets correct handling or a clear error."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from charforge.cli import main
from charforge.data import importer
from charforge.data.importer import import_folder
from charforge.data.packed import load_packed
from charforge.errors import UserError


def _pattern(seed: int, side: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    return Image.fromarray(low).resize((side, side), Image.Resampling.BICUBIC)


def _folder(root: Path, n: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _pattern(1000 + i).save(root / f"img_{i}.png")
    return root


def _cli(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(list(args))
        sys.exit(0)
    cap = capsys.readouterr()
    return e.value.code or 0, cap.out + cap.err


def test_non_utf8_file_and_folder_names_are_imported(tmp_path):
    src = _folder(tmp_path / "src", 1)
    bad_dir = os.path.join(os.fsencode(src), b"dossier_\xff\xfe")
    os.mkdir(bad_dir)
    _pattern(1).save(os.fsdecode(os.path.join(bad_dir, b"caf\xe9.png")))
    _pattern(2).save(os.fsdecode(os.path.join(os.fsencode(src), b"na\xefve.png")))
    os.mkdir(os.path.join(os.fsencode(src), b"empty_\xff"))
    report = import_folder(src, tmp_path / "out", size=16, progress=False)
    sources = sorted(it["source"] for it in report.dataset.manifest["items"])
    assert sources == ["dossier_\\xff\\xfe/caf\\xe9.png", "img_0.png", "na\\xefve.png"]
    json.loads(report.report_path.read_text())  # valid JSON, valid UTF-8
    load_packed(tmp_path / "out", verify=True)


def test_symlink_loops_are_reported_and_the_walk_continues(tmp_path, capsys):
    src = _folder(tmp_path / "src", 2)
    (src / "sub").mkdir()
    _pattern(5).save(src / "sub" / "deep.png")
    os.symlink("..", src / "sub" / "back_up")  # a folder link to an ancestor: a loop
    os.symlink("self.png", src / "self.png")  # a file link to itself: ELOOP
    report = import_folder(src, tmp_path / "out", size=16, progress=False)
    assert sorted(it["source"] for it in report.dataset.manifest["items"]) == [
        "img_0.png",
        "img_1.png",
        "sub/deep.png",
    ]
    folders = {f["path"]: f["reason"] for f in report.folders}
    assert "symlink loop" in folders["sub/back_up"] and "symlink loop" in folders["self.png"]
    assert any("could not be read" in w for w in report.warnings)
    md = (tmp_path / "out" / "import_report.md").read_text()
    assert "sub/back_up" in md and "self.png" in md
    rc, text = _cli(capsys, "data", "import", str(src), "-o", str(tmp_path / "out2"), "--size", "16")
    assert rc == 0 and "not read     2 folders or links" in text and "Traceback" not in text


def test_unreadable_and_mode_000_folders_are_listed_with_the_reason(tmp_path, monkeypatch):
    src = _folder(tmp_path / "src", 2)
    locked = src / "locked"
    locked.mkdir()
    _pattern(9).save(locked / "hidden.png")
    os.chmod(locked, 0)
    try:
        if os.geteuid() == 0:  # root reads a mode-000 folder anyway: make it fail as for a user
            real = os.scandir

            def scandir(path):
                if isinstance(path, (str, os.PathLike)) and Path(path) == locked:
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return real(path)

            monkeypatch.setattr(importer.os, "scandir", scandir)
        report = import_folder(src, tmp_path / "out", size=16, progress=False)
    finally:
        os.chmod(locked, 0o755)
    assert report.kept == 2
    [f] = report.folders
    assert f["path"] == "locked" and "permission denied" in f["reason"] and "chmod" in f["reason"]
    assert any("locked" in w for w in report.warnings)
    assert "| locked |" in (tmp_path / "out" / "import_report.md").read_text()


def test_output_inside_the_art_folder_or_an_existing_file_is_refused(tmp_path, capsys):
    src = _folder(tmp_path / "src", 1)
    for out in (src, src / "dataset", src / "a" / "b"):
        with pytest.raises(UserError, match="inside the art folder"):
            import_folder(src, out, progress=False)
    assert sorted(p.name for p in src.iterdir()) == ["img_0.png"]  # nothing written among the art
    (tmp_path / "file.txt").write_text("x")
    rc, text = _cli(capsys, "data", "import", str(src), "-o", str(tmp_path / "file.txt"))
    assert rc == 2 and "-o" in text and "is an existing file" in text and "Traceback" not in text
    rc, text = _cli(capsys, "data", "import", str(src), "-o", str(src))
    assert rc == 2 and "inside the art folder" in text and "Traceback" not in text


def test_kill_after_the_manifest_finishes_the_cleanup_on_rerun(tmp_path, monkeypatch):
    src = _folder(tmp_path / "src", 3)
    real_rmtree = shutil.rmtree

    def killed(path, *a, **k):
        if Path(path).name == importer.CHUNK_DIR:
            raise KeyboardInterrupt  # killed after manifest.json, before the cleanup
        return real_rmtree(path, *a, **k)

    monkeypatch.setattr(importer.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        import_folder(src, tmp_path / "out", size=16, progress=False)
    monkeypatch.setattr(importer.shutil, "rmtree", real_rmtree)
    assert (tmp_path / "out" / "manifest.json").exists() and (tmp_path / "out" / importer.CHUNK_DIR).exists()
    report = import_folder(src, tmp_path / "out", size=16, progress=False)
    assert report.kept == 3 and not (tmp_path / "out" / importer.CHUNK_DIR).exists()
    assert any("only cleaned up" in w for w in report.warnings)
    load_packed(tmp_path / "out", verify=True)
    with pytest.raises(UserError, match="finished dataset is already there"):
        import_folder(src, tmp_path / "out", size=16, progress=False)  # nothing left to finish
    with pytest.raises(UserError, match="finished dataset is already there"):
        import_folder(src, tmp_path / "out", size=32, progress=False)  # other settings


def test_newlines_and_pipes_in_names_keep_the_report_table_intact(tmp_path):
    src = _folder(tmp_path / "src", 1)
    (src / "bad\nname|x.png").write_bytes(b"")
    (src / "tab\there.png").write_bytes(b"not an image")
    report = import_folder(src, tmp_path / "out", size=16, progress=False)
    md = (tmp_path / "out" / "import_report.md").read_text()
    table = md.split("## Skipped files", 1)[1].strip().split("\n\n")[0].splitlines()
    assert len(table) == 2 + 2  # header, rule, one line per file
    assert all(len(re.split(r"(?<!\\)\|", line)) == 4 for line in table)  # two cells, pipes escaped
    assert "bad\\nname\\|x.png" in md and "tab\\there.png" in md
    assert {s["path"] for s in report.skipped} == {"bad\nname|x.png", "tab\there.png"}  # JSON keeps the name


def test_the_bomb_message_names_max_pixels(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "data"))
    from corpus import gif_bomb, patch_png_size, pattern, png_bytes

    src = _folder(tmp_path / "src", 1)
    tiny = png_bytes(Image.fromarray(pattern(31, 8, 8)))
    (src / "huge.png").write_bytes(patch_png_size(tiny, 20000, 20000))
    (src / "big.png").write_bytes(patch_png_size(tiny, 8000, 6000))
    (src / "bomb.gif").write_bytes(gif_bomb())
    report = import_folder(src, tmp_path / "out", size=16, progress=False)
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert (
        reasons["huge.png"]
        == "decompression bomb: declares 400,000,000 pixels, more than --max-pixels 40,000,000"
    )
    assert "--max-pixels 40,000,000" in reasons["big.png"] and "48,000,000" in reasons["big.png"]
    assert "--max-pixels" in reasons["bomb.gif"]
    assert not any("178956970" in r or "DOS attack" in r for r in reasons.values())  # not Pillow's words
    high = import_folder(src, tmp_path / "out2", size=16, max_pixels=500_000_000, progress=False)
    r2 = {s["path"]: s["reason"] for s in high.skipped}
    assert "hard limit" in r2["huge.png"] and "cannot raise it" in r2["huge.png"]


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch, capsys):
    src = _folder(tmp_path / "src", 3)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(importer.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    rc, text = _cli(capsys, "data", "import", str(src), "-o", str(tmp_path / "out"))
    assert rc == 2 and "Traceback" not in text
    assert "not enough free disk space" in text and str(tmp_path / "out") in text and "needs about" in text
    assert not (tmp_path / "out").exists()


def test_a_full_disk_while_writing_is_a_clear_message(tmp_path, monkeypatch, capsys):
    src = _folder(tmp_path / "src", 3)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(importer, "_save_arrays", full)
    rc, text = _cli(capsys, "data", "import", str(src), "-o", str(tmp_path / "out"))
    assert rc == 2 and "Traceback" not in text
    assert "the disk is full" in text and str(tmp_path / "out") in text and "needs about" in text
    assert "rerun the same command to resume" in text


def test_dedupe_threshold_range_and_off(tmp_path, capsys):
    src = _folder(tmp_path / "src", 2)
    _pattern(1000).resize((60, 60)).save(src / "img_0_copy.png")  # a resized copy of img_0
    rc, text = _cli(capsys, "data", "import", str(src), "-o", str(tmp_path / "a"), "--size", "16")
    assert rc == 0 and "duplicates   1" in text and "--dedupe-threshold" in text  # 1 of 3 dropped: warned
    rc, text = _cli(
        capsys, "data", "import", str(src), "-o", str(tmp_path / "b"), "--dedupe-threshold", "off"
    )
    assert rc == 0 and "duplicates   0" in text
    for bad in ("65", "-2", "many"):
        rc, text = _cli(
            capsys, "data", "import", str(src), "-o", str(tmp_path / "c"), "--dedupe-threshold", bad
        )
        assert rc == 2 and "0-64" in text and "'off'" in text and "Traceback" not in text
    rc, text = _cli(capsys, "data", "import", "--help")
    assert "0-64" in " ".join(text.split()) and "'off'" in text


def test_a_resume_needs_only_the_space_still_to_write(tmp_path, monkeypatch):
    src = _folder(tmp_path / "src", 3)
    real = importer.process_file
    calls = {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(importer, "CHUNK_FILES", 2)
    monkeypatch.setattr(importer, "process_file", dying)
    with pytest.raises(KeyboardInterrupt):
        import_folder(src, tmp_path / "out", size=64, progress=False)
    monkeypatch.setattr(importer, "process_file", real)
    written = importer._bytes_written(tmp_path / "out")
    full = importer._estimate_bytes(3, 64, 34)
    assert written > 0
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(  # enough for what is left, not for a fresh import
        importer.shutil, "disk_usage", lambda p: usage._replace(free=full - written + 1)
    )
    with pytest.raises(UserError, match="not enough free disk space"):
        import_folder(src, tmp_path / "fresh", size=64, progress=False)
    importer._check_free_space(tmp_path / "out", 3, 64, 34)  # the resume is allowed
