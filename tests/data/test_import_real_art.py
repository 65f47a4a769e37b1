"""Importing real-art cases built from the built-in creator (tests/data/corpus.py `write_real_art`)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from corpus import write_real_art
from PIL import Image

from charforge.data.importer import import_folder
from charforge.errors import UserError


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_art")
    expect = write_real_art(root / "src")
    report = import_folder(root / "src", root / "anime", size=64, faces="anime", progress=False)
    return root, expect, report


def _kept(report) -> Counter:
    return Counter(it["source"] for it in report.dataset.manifest["items"])


def test_every_closeup_is_kept_and_said_so(art):
    _, expect, report = art
    kept = _kept(report)
    closeups = [rel for rel, kind in expect.items() if kind == "closeup"]
    assert len(closeups) == 8 and all(kept[rel] == 1 for rel in closeups)
    items = {it["source"]: it for it in report.dataset.manifest["items"]}
    how = Counter(items[rel]["found_by"] for rel in closeups)
    assert set(how) <= {"face (padded close-up)", "close-up"} and how["close-up"] >= 1
    md = (report.report_path.parent / "import_report.md").read_text()
    assert "Kept without a detected face" in md and "no face detected, but" in md
    for rel in closeups:
        if items[rel]["found_by"] == "close-up":
            assert rel in md and items[rel]["face_box"] is None


def test_closeups_off_skips_them_with_the_flag_named(tmp_path):
    from corpus import _builtin_renders, closeup

    _, _, portraits = _builtin_renders(12, seed=0)
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(closeup(portraits[0])).save(src / "face.png")  # not found by animeface (seed 0, #0)
    Image.new("RGB", (96, 96), (120, 130, 140)).save(src / "wall.png")
    with pytest.raises(UserError, match="none of the 2 image files"):
        import_folder(src, tmp_path / "off", faces="anime", closeups=False, progress=False)
    assert "close-ups off" in (tmp_path / "off" / "import_report.md").read_text()
    on = import_folder(src, tmp_path / "on", faces="anime", progress=False)
    assert [it["source"] for it in on.dataset.manifest["items"]] == ["face.png"]
    assert any("--no-closeups" in w for w in on.warnings)  # 1 of 1 kept samples is a guess: say so
    assert "not a close-up" in on.skipped[0]["reason"]


def test_expression_variants_survive_dedupe(art):
    _, expect, report = art
    kept = _kept(report)
    detected = {rel.split("_")[0] for rel in kept if rel.startswith("variants/char")}
    # all three characters: the detector sees two; the third one's portraits are read as busts by the portrait
    # probe (charforge/weights/bust_probe.md), and every expression of each is kept
    assert len(detected) == 3
    for char in detected:
        assert all(kept[f"{char}_{m}.png"] == 1 for m in ("closed", "smile", "open")), char
    assert not any(
        d["path"].startswith("variants/char") and "copy" not in d["path"] for d in report.duplicates
    )


def test_a_resized_recompressed_copy_is_dropped_and_drawn(tmp_path, art):
    root, expect, anime = art
    none = import_folder(root / "src", tmp_path / "none", size=64, faces="none", progress=False)
    for report in (anime, none):  # with a detector the copy's face box moves: the whole picture is checked
        dup = {d["path"]: d for d in report.duplicates}
        d = dup["variants/zz_char0_open_copy.jpg"]
        assert d["duplicate_of"] == "variants/char0_open.png"  # its own original, not a sibling expression
        assert d["distance"] <= 6 and d["detail"] <= 72
        assert [p for p in dup if p != "variants/zz_char0_open_copy.jpg"] == []  # nothing else dropped
    assert (
        "whole picture"
        in {d["path"]: d for d in anime.duplicates}["variants/zz_char0_open_copy.jpg"]["level"]
    )
    kept = _kept(none)  # without a detector (whole portraits at 64 px) every expression survives too
    assert all(kept[rel] == 1 for rel, kind in expect.items() if kind == "variant")
    sheet = tmp_path / "none" / "import_duplicates.png"
    assert str(sheet) in none.sheets["duplicates"]
    with Image.open(sheet) as im:
        assert im.height >= 24 + len(none.duplicates) * 96  # one row per dropped pair
    md = (tmp_path / "none" / "import_report.md").read_text()
    assert "hash distance" in md and "zz_char0_open_copy.jpg" in md
    off = import_folder(root / "src", tmp_path / "off", size=32, dedupe_threshold=-1, progress=False)
    assert off.duplicates == [] and off.kept == len(expect)  # off keeps every image


def test_two_faces_become_two_samples(art):
    _, _, report = art
    items = [it for it in report.dataset.manifest["items"] if it["source"] == "group/two_faces.png"]
    assert [it["face"] for it in items] == [0, 1] and all(it["faces_in_image"] == 2 for it in items)
    x_centres = sorted(it["face_box"][0] + it["face_box"][2] / 2 for it in items)
    assert x_centres[0] < 256 < x_centres[1]  # one face in each half
    md = (report.report_path.parent / "import_report.md").read_text()
    assert "Images with several faces" in md and "two_faces.png | 2" in md


def test_sprites_get_a_white_background_and_tall_ones_are_cut_at_the_head(art, tmp_path):
    root, expect, report = art
    kept = _kept(report)
    assert all(kept[r] == 1 for r, k in expect.items() if k in ("sprite", "tall"))  # faces found
    centre = import_folder(root / "src", tmp_path / "n", faces="none", progress=False)
    rows = {it["source"]: i for i, it in enumerate(centre.dataset.manifest["items"])}
    for rel in [r for r, k in expect.items() if k == "sprite"]:
        sample = centre.dataset.images[rows[rel]]  # the whole sprite: its corners are transparent
        assert sample[0, 0].min() >= 245 and sample[-1, -1].min() >= 245  # white, not black
    for r in (report, centre):
        items = {it["source"]: it for it in r.dataset.manifest["items"]}
        for rel in [r_ for r_, k in expect.items() if k == "tall"]:
            x, y, w, h = items[rel]["crop"]
            assert y + h / 2 < 256, (rel, items[rel]["crop"])  # the head: the top 256 of 640 px
            assert w <= 400


def test_no_face_drops_raise_a_warning_naming_the_flag(art):
    _, _, report = art
    skipped = [s for s in report.skipped if s["reason"].startswith("no face found")]
    if len(skipped) >= 0.1 * report.total_files:
        assert any("--faces" in w and f"{len(skipped)} of" in w for w in report.warnings)
    assert all(f"warning      {w}" in report.summary() for w in report.warnings)


def test_a_killed_import_with_a_detector_resumes_to_the_same_dataset(art, tmp_path, monkeypatch):
    from charforge.data import importer

    root, _, clean = art
    monkeypatch.setattr(importer, "CHUNK_FILES", 4)
    real, calls = importer.process_file, {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 19:  # in the 5th chunk: the copy's original (chunk 4+) must be remembered
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(importer, "process_file", dying)
    with pytest.raises(KeyboardInterrupt):
        import_folder(root / "src", tmp_path / "out", size=64, faces="anime", progress=False)
    monkeypatch.setattr(importer, "process_file", real)
    resumed = import_folder(root / "src", tmp_path / "out", size=64, faces="anime", progress=False)
    assert resumed.dataset.manifest["items"] == clean.dataset.manifest["items"]
    assert resumed.duplicates == clean.duplicates
    np.testing.assert_array_equal(resumed.dataset.images, clean.dataset.images)


def test_expression_variants_of_a_large_sprite_survive_dedupe(tmp_path):
    """Visual-novel sprites come as one large canvas per expression: every expression is kept, with a detector
    and without, and a JPEG copy of one is dropped. (The real case this guards, Debian's renpy sprites, where a
    512 px preview hid a changed mouth on sharp line art, is measured by `bench/foreign/run.py --set renpy
    --parts import`: these creator renders are too soft to show it.)"""
    from corpus import _builtin_renders, keyed, tall_sprite

    src = tmp_path / "src"
    src.mkdir()
    for mouth in ("closed", "smile", "open"):
        _, _, (face,) = _builtin_renders(1, seed=11, size=400, mouth=mouth)
        Image.fromarray(tall_sprite(keyed(face), height=900)).save(src / f"hero_{mouth}.png")
    sprite = Image.open(src / "hero_smile.png")
    flat = Image.new("RGB", sprite.size, "white")
    flat.paste(sprite, mask=sprite.getchannel("A"))  # as import puts a sprite on white
    flat.save(src / "zz_hero_smile_copy.jpg", quality=80)
    for faces in ("anime", "none"):
        report = import_folder(src, tmp_path / faces, size=64, faces=faces, progress=False)
        kept = _kept(report)
        assert all(kept[f"hero_{m}.png"] == 1 for m in ("closed", "smile", "open")), (faces, kept)
        assert [d["path"] for d in report.duplicates] == ["zz_hero_smile_copy.jpg"], (
            faces,
            report.duplicates,
        )


def test_a_shrunk_copy_of_a_standing_sprite_is_dropped_without_a_detector(tmp_path):
    """--faces none cuts a standing sprite at its head; a 0.6x copy's head square lands a little elsewhere, so its
    crop alone does not match (a Ren'Py sprite's copy was kept this way). The whole picture is compared as with a
    detector: the copy is cut where the kept sprite was cut and dropped; another character's sprite is kept."""
    from corpus import _builtin_renders, keyed, tall_sprite

    _, _, portraits = _builtin_renders(2, seed=5)
    src = tmp_path / "src"
    src.mkdir()
    sprite = Image.fromarray(tall_sprite(keyed(portraits[0])))
    sprite.save(src / "a.png")
    sprite.resize((int(sprite.width * 0.6), int(sprite.height * 0.6)), Image.Resampling.LANCZOS).save(
        src / "a_small_copy.png"
    )
    Image.fromarray(tall_sprite(keyed(portraits[1]))).save(src / "b.png")
    report = import_folder(src, tmp_path / "out", faces="none", progress=False)
    assert sorted(it["source"] for it in report.dataset.manifest["items"]) == ["a.png", "b.png"]
    [dup] = report.duplicates
    assert (dup["path"], dup["duplicate_of"]) == ("a_small_copy.png", "a.png")
    assert dup["level"].startswith("whole picture")
