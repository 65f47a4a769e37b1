"""Hostile inputs to `creator render/sheet`, `verify` and `tagger predict`: clear errors, no tracebacks."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS / "data") not in sys.path:
    sys.path.insert(0, str(TESTS / "data"))

from corpus import damage_idat, gif_bomb, patch_png_size, pattern, png_bytes  # noqa: E402

from charforge.cli import main  # noqa: E402
from charforge.provenance.verify import verify_bytes  # noqa: E402


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)


# ---- creator render / sheet ------------------------------------------------------------------------


PARAMS_CASES = {
    "deeply-nested": ("[" * 200_000 + "]" * 200_000, ["nested too deeply"]),
    "nested-object": ('{"hair_color": ' * 50_000 + "1" + "}" * 50_000, ["nested too deeply"]),
    "huge-integer": ('{"eye_size": ' + "9" * 50_000 + "}", ["not valid JSON"]),
    "not-utf8": (b"\xff\xfe\x00{", ["not valid JSON"]),
}


@pytest.mark.parametrize("case", sorted(PARAMS_CASES))
def test_render_bad_params_file(case, tmp_path, capsys):
    content, fragments = PARAMS_CASES[case]
    f = tmp_path / "p.json"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = run(["creator", "render", "--params", f, "-o", tmp_path / "o.png", "--size", "32"], capsys)
    assert_user_error(code, err, str(f), *fragments)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["/dev/zero", "folder"])
def test_render_params_that_are_not_a_regular_file(target, tmp_path, capsys):
    f = tmp_path / "p.json"
    if target == "folder":
        f.mkdir()
    else:
        f.symlink_to(target)
    code, _, err = run(["creator", "render", "--params", f, "-o", tmp_path / "o.png"], capsys)
    assert_user_error(code, err, str(f), "not a regular file")


@pytest.mark.parametrize("size", [16, 31, 513, 1024, 0, -5])
@pytest.mark.parametrize("command", ["render", "sheet"])
def test_creator_size_outside_32_to_512_is_refused(command, size, tmp_path, capsys):
    params = tmp_path / "p.json"
    params.write_text("{}")
    argv = ["creator", command, "-o", tmp_path / "o.png", "--size", size]
    argv += ["--params", params] if command == "render" else ["--n", "2"]
    code, _, err = run(argv, capsys)
    assert_user_error(code, err, f"--size {size}", "between 32 and 512")
    assert not (tmp_path / "o.png").exists()


def test_creator_size_limits_themselves_are_accepted(tmp_path, capsys):
    code, out, err = run(["creator", "sheet", "--n", "1", "--size", "32", "-o", tmp_path / "s.png"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "s.png").size == (32, 32)


# ---- verify ----------------------------------------------------------------------------------------


def _good_png(path: Path) -> None:
    Image.fromarray(pattern(3, 64, 64)).save(path)


def _bomb(path: Path) -> None:
    path.write_bytes(patch_png_size(png_bytes(Image.fromarray(pattern(1, 8, 8))), 40_000, 40_000))


def _nested_metadata(path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("charforge:tags", "[" * 100_000 + "]" * 100_000)
    Image.fromarray(pattern(4, 64, 64)).save(path, pnginfo=info)


BAD_FILES = {
    "bomb.png": (_bomb, "too many pixels"),
    "bomb.gif": (lambda p: p.write_bytes(gif_bomb()), "too many pixels"),
    "damaged.png": (lambda p: p.write_bytes(damage_idat(png_bytes(Image.fromarray(pattern(2))))), "damaged"),
    "text.png": (lambda p: p.write_text("not an image"), "not an image"),
}


@pytest.mark.timeout(120)
def test_verify_reports_bad_files_and_goes_on(tmp_path, capsys):
    files = []
    for name, (make, _) in BAD_FILES.items():
        make(tmp_path / name)
        files.append(tmp_path / name)
        _good_png(tmp_path / f"after_{name}.png")  # a good file after each bad one must still be checked
        files.append(tmp_path / f"after_{name}.png")
    code, out, err = run(["verify", *files], capsys)
    assert_user_error(code, err, f"{len(BAD_FILES)} of {len(files)} files could not be checked")
    rows = {ln.split()[0].rsplit("/", 1)[-1]: ln for ln in out.splitlines()[1:] if ln.strip()}
    for name, (_, fragment) in BAD_FILES.items():
        assert "error:" in rows[name] and fragment in rows[name], rows[name]
        assert name in err
        assert "absent" in rows[f"after_{name}.png"], rows
    # --json: one document, a record per file, the bad ones ok=false with the reason
    code, out, err = run(["verify", "--json", *files], capsys)
    assert code == 2 and "Traceback" not in err
    doc = json.loads(out)
    assert doc["unreadable"] == len(BAD_FILES)
    recs = doc["files"]
    assert len(recs) == len(files)
    assert [r["ok"] for r in recs] == [False, True] * len(BAD_FILES)


def test_verify_all_good_exits_0(tmp_path, capsys):
    _good_png(tmp_path / "a.png")
    code, out, err = run(["verify", tmp_path / "a.png"], capsys)
    assert code == 0, err


def test_verify_hostile_metadata_is_a_note_not_a_crash(tmp_path, capsys):
    _nested_metadata(tmp_path / "m.png")
    code, out, err = run(["verify", tmp_path / "m.png"], capsys)
    assert code == 0, err
    assert "absent" in out and "metadata could not be read" in out


def test_verify_bytes_never_raises_on_a_bomb():
    small = png_bytes(Image.fromarray(pattern(1, 8, 8)))
    r = verify_bytes(patch_png_size(small, 7_000, 7_000), "b.png")  # over our limit, under Pillow's
    assert not r.ok and "too many pixels: 7000x7000" in r.error and r.size == (7_000, 7_000)
    r = verify_bytes(patch_png_size(small, 7_000, 7_000), "b.png", max_pixels=10**8)  # decodes: damaged
    assert not r.ok and "damaged" in r.error
    r = verify_bytes(patch_png_size(small, 60_000, 60_000), "b.png")  # over Pillow's limit too
    assert not r.ok and "more than 40,000,000" in r.error and "decompression bomb" in r.error
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    assert verify_bytes(buf.getvalue()[:30]).ok is False  # truncated inside the header


# ---- tagger predict --------------------------------------------------------------------------------


def test_tagger_predict_without_a_tagger_uses_the_shipped_one(tmp_path, capsys):
    from charforge.tagger.net import default_tagger_path

    if default_tagger_path() is None:
        pytest.skip("this install ships no default tagger")
    _good_png(tmp_path / "face.png")
    code, out, err = run(["tagger", "predict", tmp_path / "face.png"], capsys)
    assert code == 0, err
    assert out.startswith(f"{tmp_path / 'face.png'}: ") and "header too large" not in out + err


def test_tagger_predict_without_a_tagger_and_none_shipped(tmp_path, capsys, monkeypatch):
    import charforge.tagger.net as net

    monkeypatch.setattr(net, "default_tagger_path", lambda: None)
    _good_png(tmp_path / "face.png")
    code, _, err = run(["tagger", "predict", tmp_path / "face.png"], capsys)
    assert_user_error(code, err, "no tagger given", "charforge tagger predict [TAGGER] IMAGE...")
    assert "header too large" not in err


def test_tagger_predict_tagger_but_no_image(tmp_path, capsys):
    (tmp_path / "t").mkdir()
    code, _, err = run(["tagger", "predict", tmp_path / "t"], capsys)
    assert_user_error(code, err, "no image given after the tagger")
