"""Estimated tags that speak: warnings on implausible or unsure estimates, review sheet, editable CSV,
uncertain groups left unknown, and `--estimate-tags` alone meaning the shipped tagger."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image

from charforge.cli import main
from charforge.core.tags import make_girls_moe_schema
from charforge.data.importer import import_folder


def _src(tmp_path, n: int):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(n):
        rng = np.random.default_rng(i)
        low = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(low).resize((64, 64), Image.Resampling.BICUBIC).save(src / f"{i:02d}.png")
    return src


def _fake(monkeypatch, proba_fn):
    """A tagger module whose tagger returns `proba_fn(n)` as (n, T) probabilities."""
    schema = make_girls_moe_schema()

    class FakeTagger:
        def predict_proba(self, images):
            return proba_fn(len(images), schema)

    import charforge.tagger.net as real

    fake = types.ModuleType("charforge.tagger.net")
    fake.load_tagger = lambda path: FakeTagger()
    fake.decide_tags, fake.INDEPENDENT_THRESHOLD = real.decide_tags, real.INDEPENDENT_THRESHOLD
    fake.keep_likelier_of_conflicts = real.keep_likelier_of_conflicts
    fake.default_tagger_path = real.default_tagger_path
    monkeypatch.setitem(sys.modules, "charforge.tagger.net", fake)
    return schema


def _confident(n, schema, hat=0.9, hair="blonde hair", hair_p=0.95):
    p = np.full((n, len(schema)), 0.02, np.float32)
    for sl in schema.group_slices():  # every group: its first tag at 0.95
        p[:, sl] = (1 - 0.95) / (sl.stop - sl.start - 1)
        p[:, sl.start] = 0.95
    sl = schema.group_slices()[0]  # the hair colour group: `hair` at `hair_p`
    p[:, sl] = (1 - hair_p) / (sl.stop - sl.start - 1)
    p[:, schema.index(hair)] = hair_p
    p[:, schema.index("hat")] = hat
    return p


def test_implausible_estimates_warn_and_point_to_the_review_sheet(tmp_path, monkeypatch):
    schema = _fake(monkeypatch, lambda n, s: _confident(n, s))
    src = _src(tmp_path, 10)
    (tmp_path / "t.safetensors").write_bytes(b"x")
    r = import_folder(
        src, tmp_path / "out", size=16, estimate_tags=tmp_path / "t.safetensors", progress=False
    )
    hat = [w for w in r.warnings if "'hat'" in w]
    assert hat and "'hat' on 100%" in hat[0] and "implausible" in hat[0]
    assert "import_tags_review.png" in r.warnings[-1] and "--tags" in r.warnings[-1]  # what to do, once
    assert any("same" in w and schema.groups[0].name in w for w in r.warnings)  # all blonde: suspicious
    sheet = tmp_path / "out" / "import_tags_review.png"
    assert str(sheet) in r.sheets["tags review"]
    with Image.open(sheet) as im:  # every estimated image is drawn: 4 to a row, 96 px each
        assert im.height >= 3 * 96 and im.width >= 4 * 96
    csv_path = tmp_path / "out" / "import_tags.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "file,tags,license" and len(lines) == 11 and "hat" in lines[1]
    # the CSV re-imports as a tags file (after editing: here unchanged)
    again = import_folder(src, tmp_path / "again", size=16, tags_file=csv_path, progress=False)
    np.testing.assert_array_equal(again.dataset.tags, r.dataset.tags)
    assert again.tags_from == {"file": 10}
    assert all(f"warning      {w}" in r.summary() for w in r.warnings)


def test_plausible_estimates_raise_no_tag_warning(tmp_path, monkeypatch):
    def varied(n, schema):
        p = _confident(n, schema, hat=0.02)
        for sl in schema.group_slices():  # every group varies across the images
            p[:, sl] = 0.01
            for i in range(n):
                p[i, sl.start + i % (sl.stop - sl.start)] = 0.9
        return p

    _fake(monkeypatch, varied)
    src = _src(tmp_path, 10)
    (tmp_path / "t.safetensors").write_bytes(b"x")
    r = import_folder(
        src, tmp_path / "out", size=16, estimate_tags=tmp_path / "t.safetensors", progress=False
    )
    assert not any("tagger" in w or "estimated" in w for w in r.warnings), r.warnings


def test_unsure_groups_become_unknown_and_are_listed(tmp_path, monkeypatch):
    schema = _fake(monkeypatch, lambda n, s: _confident(n, s, hat=0.3, hair_p=0.3))
    src = _src(tmp_path, 4)
    (tmp_path / "t.safetensors").write_bytes(b"x")
    r = import_folder(
        src, tmp_path / "out", size=16, estimate_tags=tmp_path / "t.safetensors", progress=False
    )
    hair = schema.group_slices()[0]
    assert r.dataset.tags[:, hair].sum() == 0  # unknown (all-zero group, masked in training), not a guess
    assert r.dataset.tags[:, schema.index("hat")].all()  # 0.3 passes the 0.25 threshold, but ...
    items = r.dataset.manifest["items"]
    assert all(any("unknown" in u for u in it["uncertain"]) for it in items)
    assert all(any(u.startswith("hat ") for u in it["uncertain"]) for it in items)  # ... is listed as unsure
    md = (tmp_path / "out" / "import_report.md").read_text()
    assert "Uncertain tag estimates" in md and "unknown (0.30)" in md
    assert any("uncertain tags" in w for w in r.warnings)
    # which groups and tags, counted: the hair group on all four, hat on all four
    w = next(w for w in r.warnings if "uncertain tags" in w)
    assert f"{schema.groups[0].name} unknown on 4" in w and "hat on 4" in w, w
    assert f"Per group or tag: {schema.groups[0].name} unknown 4" in md
    keep = import_folder(
        src,
        tmp_path / "guess",
        size=16,
        estimate_tags=tmp_path / "t.safetensors",
        tag_min_confidence=0.0,
        progress=False,
    )
    assert keep.dataset.tags[:, schema.index("blonde hair")].all()  # 0 = always guess


def test_estimate_tags_alone_or_default_uses_the_shipped_tagger(tmp_path, capsys):
    from charforge.tagger.net import default_tagger_path

    if default_tagger_path() is None:
        pytest.skip("this install ships no tagger")
    src = _src(tmp_path, 3)
    for i, args in enumerate((["--estimate-tags"], ["--estimate-tags", "default"])):
        with pytest.raises(SystemExit) as e:
            main(["data", "import", str(src), "-o", str(tmp_path / f"o{i}"), "--size", "32", *args])
            sys.exit(0)
        text = "".join(capsys.readouterr())
        assert (e.value.code or 0) == 0, text
        assert "tagger: 3" in text and "tags review" in text and "Traceback" not in text
    with pytest.raises(SystemExit) as e:
        main(
            ["data", "import", str(src), "-o", str(tmp_path / "o3"), "--estimate-tags", str(tmp_path / "no")]
        )
    assert e.value.code == 2 and "'default' for the shipped" in capsys.readouterr().err


def test_default_estimates_read_hair_colour_from_the_hair(tmp_path):
    """`--estimate-tags default` uses the shipped part reader: flat avatars whose hair is blue are tagged blue
    hair, and each sample records that its hair colour came from the hair's pixels and which colour was read."""
    import json

    from charforge.creators.builtin import palette
    from charforge.tagger.parts import default_parts_path

    if default_parts_path() is None:
        pytest.skip("this install ships no part reader")
    src = tmp_path / "src"
    src.mkdir()
    yy, xx = np.mgrid[0:128, 0:128]
    looks = [((250, 250, 250), 42, 46, 64), ((200, 230, 200), 40, 44, 60), ((230, 210, 240), 46, 40, 70)]
    for i, (bg, rx, ry, cx) in enumerate(looks):  # three different avatars (not near-duplicates)
        im = np.full((128, 128, 3), bg, np.uint8)
        im[((xx - cx) / rx) ** 2 + ((yy - 56) / ry) ** 2 <= 1] = palette.HAIR_RGB["blue"]  # hair
        im[((xx - cx) / 28.0) ** 2 + ((yy - 66) / 30.0) ** 2 <= 1] = (240, 200, 170)  # face
        im[104:, cx - 36 + 8 * i : cx + 36] = [(200, 60, 60), (60, 160, 60), (240, 200, 40)][i]  # shirt
        Image.fromarray(im).save(src / f"{i}.png")
    # three ellipses are far from any art the estimator learned from: its familiarity model may flag them, and
    # this test is about the hair reading, so they are estimated anyway
    import_folder(
        src,
        tmp_path / "ds",
        estimate_tags="default",
        progress=False,
        dedupe_threshold=0,
        keep_unfamiliar=True,
    )
    items = json.loads((tmp_path / "ds" / "manifest.json").read_text())["items"]
    assert len(items) == 3 and all(it["tags_from"] == "tagger" for it in items)
    tags = np.load(tmp_path / "ds" / "tags.npy")
    blue = make_girls_moe_schema().index("blue hair")
    for k, it in enumerate(items):
        assert it["hair_from"] == "hair pixels" and it["hair_read"] == "blue"
        rgb = np.array([int(it["hair_rgb"][j : j + 2], 16) for j in (1, 3, 5)])
        assert np.abs(rgb - palette.HAIR_RGB["blue"]).max() <= 16
        assert tags[k, blue] == 1


def test_a_group_unknown_on_most_images_is_named_once_and_called_safe(tmp_path, monkeypatch):
    def no_eyes(n, schema):  # art that draws no irises: the eye colour group is unsure on every image
        p = _confident(n, schema, hat=0.02)
        eyes = schema.group_slices()[1]
        p[:, eyes] = 1.0 / (eyes.stop - eyes.start)
        for i in range(n):  # hair varies, so no "same hair colour" warning muddles the check
            hair = schema.group_slices()[0]
            p[i, hair] = 0.01
            p[i, hair.start + i % (hair.stop - hair.start)] = 0.9
        p[:3, schema.index("smile")] = 0.3  # and 3 of the 10 an unsure smile (threshold 0.25)
        return p

    schema = _fake(monkeypatch, no_eyes)
    eye_group = schema.groups[1].name
    src = _src(tmp_path, 10)
    (tmp_path / "t.safetensors").write_bytes(b"x")
    r = import_folder(
        src, tmp_path / "out", size=16, estimate_tags=tmp_path / "t.safetensors", progress=False
    )
    assert r.dataset.tags[:, schema.group_slices()[1]].sum() == 0  # unknown, masked in training
    # the count is of images unsure about something else: the eye colour alone made it "10 of 10 (100%)"
    unsure = next(w for w in r.warnings if "uncertain tags" in w)
    assert unsure.startswith(f"3 of 10 (30%) estimated images have uncertain tags besides the {eye_group}"), (
        unsure
    )
    assert "smile on 3" in unsure and "unknown on" not in unsure and "hat" not in unsure, unsure
    safe = [w for w in r.warnings if w.startswith(f"{eye_group} is unknown on 10 of 10")]
    assert len(safe) == 1 and "safe" in safe[0] and "CSV" in safe[0]
    assert "--tags" in r.warnings[-1]  # and what to do, last


def test_keep_unfamiliar_is_an_option_of_data_import(tmp_path, monkeypatch, capsys):
    """The import's own warnings, the report and docs/import.md tell the user to re-import with
    `--keep-unfamiliar`; the command must take it (it answered "No such option") and pass it on."""
    import charforge.data.importer as importer

    got = []

    class Report:
        def summary(self):
            return "imported"

    monkeypatch.setattr(importer, "import_folder", lambda *a, **kw: got.append(kw) or Report())
    src = _src(tmp_path, 1)
    for args, want in (([], False), (["--keep-unfamiliar"], True)):
        with pytest.raises(SystemExit) as e:
            main(["data", "import", str(src), "-o", str(tmp_path / "o"), "--estimate-tags", *args])
            sys.exit(0)
        assert (e.value.code or 0) == 0, "".join(capsys.readouterr())
        assert got[-1]["keep_unfamiliar"] is want


def test_the_review_sheet_puts_images_unsure_about_something_drawn_first(tmp_path, monkeypatch):
    """The review sheet draws the first 256 estimated images, uncertain ones first. Eye colour unknown on every
    image (art that draws no irises) made all "uncertain", so the sheet showed the first files by name and the
    images really in doubt (here the last three, an unsure smile) could fall off it."""
    import charforge.data.importer as importer

    def no_eyes(n, schema):
        p = _confident(n, schema, hat=0.02)
        eyes, hair = schema.group_slices()[1], schema.group_slices()[0]
        p[:, eyes] = 1.0 / (eyes.stop - eyes.start)
        for i in range(n):
            p[i, hair] = 0.01
            p[i, hair.start + i % (hair.stop - hair.start)] = 0.9
        p[-3:, schema.index("smile")] = 0.3  # unsure (threshold 0.25)
        return p

    _fake(monkeypatch, no_eyes)
    pages, real = {}, importer._sheet_pages

    def spy(out, name, rows, title):
        pages[name] = rows
        return real(out, name, rows, title)

    monkeypatch.setattr(importer, "_sheet_pages", spy)
    src = _src(tmp_path, 10)
    (tmp_path / "t.safetensors").write_bytes(b"x")
    import_folder(src, tmp_path / "out", size=16, estimate_tags=tmp_path / "t.safetensors", progress=False)
    first = [caption[0] for _, caption in pages[importer.REVIEW_SHEET][:3]]
    assert first == ["07.png", "08.png", "09.png"], first


def test_the_summary_says_how_many_estimated_images_the_review_sheet_draws(tmp_path, monkeypatch):
    """The review sheet draws at most REVIEW_MAX images; the summary said "tags review ... (+7 pages)" for 600
    estimated images, as if all were on those pages (256 were)."""
    import charforge.data.importer as importer

    _fake(monkeypatch, lambda n, s: _confident(n, s, hat=0.02))
    monkeypatch.setattr(importer, "REVIEW_MAX", 4)
    src = _src(tmp_path, 10)
    (tmp_path / "t.safetensors").write_bytes(b"x")
    r = import_folder(
        src, tmp_path / "out", size=16, estimate_tags=tmp_path / "t.safetensors", progress=False
    )
    (line,) = [x for x in r.summary().splitlines() if x.startswith("tags review")]
    assert line.endswith("(4 of the 10 estimated images, those in doubt first)"), line
