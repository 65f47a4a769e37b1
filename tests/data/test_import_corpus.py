"""Importing a folder of good, odd and bad files (charforge.data.importer)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from corpus import KEEP, make_corpus, pattern
from PIL import Image

from charforge.core.tags import make_girls_moe_schema
from charforge.data import importer
from charforge.data.faces import crop_sample
from charforge.data.importer import import_folder
from charforge.data.packed import PackedWriter, load_packed
from charforge.errors import UserError


@pytest.fixture
def corpus(tmp_path):
    src = tmp_path / "src"
    return src, make_corpus(src)


def _sources(report) -> list[str]:
    return [it["source"] for it in report.dataset.manifest["items"]]


def test_corpus_import_keeps_exactly_the_good_files(corpus, tmp_path):
    src, expect = corpus
    bad = {rel: why for rel, why in expect.items() if why not in (KEEP, "duplicate")}
    assert len(bad) >= 20
    report = import_folder(src, tmp_path / "out", size=32, progress=False)
    assert sorted(_sources(report)) == sorted(rel for rel, why in expect.items() if why == KEEP)
    assert report.kept == len(report.dataset) == 16 and report.total_files == len(expect)
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert set(reasons) == set(bad)
    for rel, why in bad.items():
        assert why in reasons[rel].lower(), (rel, reasons[rel])
    [dup] = report.duplicates
    assert (dup["path"], dup["duplicate_of"]) == ("good/z_copy_of_a.jpg", "good/a_rgb.png")
    assert dup["distance"] <= 6 and dup["detail"] is not None
    saved = json.loads(report.report_path.read_text())
    assert saved["skipped"] == report.skipped and saved["kept"] == 16
    md = (report.report_path.parent / "import_report.md").read_text()
    assert all(rel in md for rel in bad) and "z_copy_of_a.jpg" in md
    ds = load_packed(tmp_path / "out", verify=True)
    assert ds.images.shape == (16, 32, 32, 3) and ds.tags.sum() == 0
    assert all(
        it["license"] == "unknown" and it["face_box"] is None and it["tags_from"] == "none"
        for it in ds.manifest["items"]
    )
    assert not (tmp_path / "out" / importer.CHUNK_DIR).exists()
    assert "imported     16 samples from" in report.summary() and "decompression bomb" in report.summary()
    assert (tmp_path / "out" / "import_duplicates.png").is_file()  # the dropped pair is drawn


def test_odd_modes_reach_the_dataset_correctly(corpus, tmp_path):
    src, _ = corpus
    ds = import_folder(src, tmp_path / "out", size=32, progress=False).dataset
    row = {it["source"]: i for i, it in enumerate(ds.manifest["items"])}

    def err(rel, image):
        return float(
            np.abs(ds.images[row[rel]].astype(int) - crop_sample(image, None, 32)[0].astype(int)).mean()
        )

    rotated = np.rot90(pattern(23), k=-1)  # EXIF orientation 6 = displayed rotated 90 degrees clockwise
    assert err("modes/exif_rotated.jpg", rotated) < 4 < err("modes/exif_rotated.jpg", pattern(23))
    assert err("modes/animated.gif", pattern(24)) < 12 < err("modes/animated.gif", pattern(25))  # first frame
    gray16 = pattern(17)[..., 0]
    assert err("modes/gray16.png", np.repeat(gray16[..., None], 3, axis=2)) < 1.5


def test_tags_csv_with_header_and_licences(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.png", "b.png", "sub/c.png", "d.png"]):
        Image.fromarray(pattern(200 + i, 64, 64)).save(src / rel)
    tags = src / "tags.csv"  # inside SRC: not itself reported as a skipped file
    tags.write_text(
        'file,tags,license\na.png,"blonde hair, blue eyes, smile",CC-BY-4.0\n'
        'sub/c.png,"Red_Hair, hat, -glasses",\nmissing.png,"smile",\n'
    )
    report = import_folder(src, tmp_path / "out", size=16, tags_file=tags, license="mine", progress=False)
    schema, ds = make_girls_moe_schema(), report.dataset
    items = {it["source"]: (i, it) for i, it in enumerate(ds.manifest["items"])}
    i, a = items["a.png"]
    assert a["license"] == "CC-BY-4.0" and a["tags_from"] == "file"
    assert sorted(schema.from_vector(ds.tags[i])) == ["blonde hair", "blue eyes", "smile"]
    i, c = items["sub/c.png"]
    assert c["license"] == "mine" and sorted(schema.from_vector(ds.tags[i])) == ["hat", "red hair"]
    assert items["b.png"][1]["tags_from"] == "none" and ds.tags[items["b.png"][0]].sum() == 0
    assert report.tags_from == {"file": 2, "none": 2} and report.untagged == 2 and report.skipped == []
    assert len(report.warnings) == 1 and "row 4" in report.warnings[0] and "missing.png" in report.warnings[0]


def test_tags_csv_without_header_and_jsonl(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(pattern(300 + i, 64, 64)).save(src / f"{i}.png")
    (tmp_path / "t.csv").write_text('0.png,"pink hair"\n1.png,"green eyes, open mouth"\n')
    r1 = import_folder(src, tmp_path / "o1", size=16, tags_file=tmp_path / "t.csv", progress=False)
    (tmp_path / "t.jsonl").write_text(
        '{"file": "0.png", "tags": ["pink hair"]}\n\n'
        '{"file": "1.png", "tags": "green eyes, open mouth", "license": "CC0"}\n'
    )
    r2 = import_folder(src, tmp_path / "o2", size=16, tags_file=tmp_path / "t.jsonl", progress=False)
    np.testing.assert_array_equal(r1.dataset.tags, r2.dataset.tags)
    assert r1.dataset.tags.sum() == 3 and r2.dataset.manifest["items"][1]["license"] == "CC0"


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('file,tags\na.png,"smile"\nb.png,"blonde hair, catgirl"\n', "row 3 (b.png): unknown tag 'catgirl'"),
        ('a.png,"smile"\nb.png,"blonde hair, red hair"\n', "row 2 (b.png): contradicting tags"),
        ('a.png,"smile"\na.png,"hat"\n', "rows 1 and 2 both give tags"),
        ("file,labels\na.png,smile\n", "row 1: the header ['file', 'labels'] has no 'tags' column"),
    ],
)
def test_bad_tags_files_name_the_row(tmp_path, content, fragment):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(pattern(1, 64, 64)).save(src / "a.png")
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(UserError) as e:
        import_folder(src, tmp_path / "out", tags_file=tmp_path / "t.csv", progress=False)
    msg = str(e.value)
    assert "t.csv" in msg and fragment in msg
    if "unknown tag" in fragment:
        assert "blonde hair" in msg and "glasses" in msg  # the valid tags are listed
    assert not (tmp_path / "out").exists()  # the tags file is checked before any work


def test_bad_jsonl_and_arguments(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "t.jsonl").write_text('{"file": "a.png", "tags": ["smile"]}\n{oops\n')
    with pytest.raises(UserError, match=r"t.jsonl: row 2: not valid JSON"):
        import_folder(src, tmp_path / "o", tags_file=tmp_path / "t.jsonl", progress=False)
    with pytest.raises(UserError, match="no image files found"):
        import_folder(src, tmp_path / "o", progress=False)
    with pytest.raises(UserError, match="not a folder"):
        import_folder(tmp_path / "nope", tmp_path / "o", progress=False)
    with pytest.raises(UserError, match="unknown face detector 'cats'"):
        import_folder(src, tmp_path / "o", faces="cats", progress=False)
    with pytest.raises(UserError, match="no such tagger file"):
        import_folder(src, tmp_path / "o", estimate_tags=tmp_path / "nope.safetensors", progress=False)
    with pytest.raises(UserError, match="--crop-scale"):
        import_folder(src, tmp_path / "o", crop_scale=0, progress=False)
    (src / "bad.png").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 image files"):
        import_folder(src, tmp_path / "o", progress=False)
    assert "empty file" in (tmp_path / "o" / "import_report.md").read_text()


def test_killed_import_resumes_without_redoing_work(corpus, tmp_path, monkeypatch):
    src, _ = corpus
    monkeypatch.setattr(importer, "CHUNK_FILES", 5)  # 38 candidates -> 8 chunks
    clean = import_folder(src, tmp_path / "clean", size=16, progress=False)
    real_process = importer.process_file
    calls = {"write": 0, "process": 0}

    def dying_process(*a, **k):
        calls["process"] += 1
        if calls["process"] == 13:
            raise KeyboardInterrupt  # killed in the 3rd chunk: chunks 0 and 1 are saved
        return real_process(*a, **k)

    monkeypatch.setattr(importer, "process_file", dying_process)
    with pytest.raises(KeyboardInterrupt):
        import_folder(src, tmp_path / "out", size=16, progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()
    calls["process"] = -(10**6)  # no more kills
    real_write = PackedWriter.write_chunk

    def dying_write(self, *a, **k):
        calls["write"] += 1
        if calls["write"] == 4:
            raise KeyboardInterrupt  # killed while the packed dataset's 4th chunk is being written
        return real_write(self, *a, **k)

    monkeypatch.setattr(PackedWriter, "write_chunk", dying_write)
    with pytest.raises(KeyboardInterrupt):
        import_folder(src, tmp_path / "out", size=16, progress=False)
    assert calls["process"] == -(10**6) + 38 - 2 * 5  # the two finished chunks were not redone
    with pytest.raises(UserError, match="unfinished build"):
        load_packed(tmp_path / "out")
    monkeypatch.setattr(PackedWriter, "write_chunk", real_write)
    calls["process"] = 0
    resumed = import_folder(src, tmp_path / "out", size=16, progress=False)
    monkeypatch.setattr(importer, "process_file", real_process)
    assert calls["process"] == 0  # every chunk was processed before: only the packing is finished
    np.testing.assert_array_equal(resumed.dataset.images, clean.dataset.images)
    assert resumed.dataset.manifest["items"] == clean.dataset.manifest["items"]
    assert resumed.skipped == clean.skipped and resumed.duplicates == clean.duplicates
    with pytest.raises(UserError, match="finished dataset is already there"):
        import_folder(src, tmp_path / "out", size=16, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / ".build_state.json").write_text(json.dumps({"config": {"kind": "x"}, "done": []}))
    with pytest.raises(UserError, match="different settings"):
        import_folder(src, tmp_path / "other", size=16, progress=False)


def test_workers_give_the_same_dataset(corpus, tmp_path):
    src, _ = corpus
    one = import_folder(src, tmp_path / "w1", size=16, progress=False)
    two = import_folder(src, tmp_path / "w2", size=16, workers=2, progress=False)
    np.testing.assert_array_equal(one.dataset.images, two.dataset.images)
    assert one.skipped == two.skipped and one.dataset.manifest["items"] == two.dataset.manifest["items"]


def test_estimate_tags_fills_only_untagged_images(tmp_path, monkeypatch):
    schema = make_girls_moe_schema()
    seen = []

    class FakeTagger:
        def predict_tags(self, images):
            seen.append(images.shape)
            out = np.zeros((len(images), len(schema)), np.uint8)
            out[:, schema.index("glasses")] = 1
            return out

    fake = types.ModuleType("charforge.tagger.net")
    fake.load_tagger = lambda path: FakeTagger()
    monkeypatch.setitem(sys.modules, "charforge.tagger.net", fake)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(pattern(400 + i, 64, 64)).save(src / f"{i}.png")
    (tmp_path / "t.csv").write_text('1.png,"smile"\n')
    (tmp_path / "tagger.safetensors").write_bytes(b"fake")
    report = import_folder(
        src,
        tmp_path / "out",
        size=16,
        tags_file=tmp_path / "t.csv",
        estimate_tags=tmp_path / "tagger.safetensors",
        progress=False,
    )
    ds = report.dataset
    assert seen == [(2, 16, 16, 3)]
    assert [it["tags_from"] for it in ds.manifest["items"]] == ["tagger", "file", "tagger"]
    assert [schema.from_vector(t) for t in ds.tags] == [["glasses"], ["smile"], ["glasses"]]


def test_estimate_tags_refuses_a_tagger_of_other_tags_before_any_work(tmp_path, monkeypatch):
    from charforge.core.tags import TagSchema
    from charforge.errors import UserError

    class OtherTagger:
        schema = TagSchema(groups=[], independent=["cat ears", "tail"])

    fake = types.ModuleType("charforge.tagger.net")
    fake.load_tagger = lambda path: OtherTagger()
    monkeypatch.setitem(sys.modules, "charforge.tagger.net", fake)
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(pattern(7, 64, 64)).save(src / "a.png")
    (tmp_path / "tagger.safetensors").write_bytes(b"fake")
    with pytest.raises(UserError, match="trained on other tags"):
        import_folder(
            src, tmp_path / "out", size=16, estimate_tags=tmp_path / "tagger.safetensors", progress=False
        )
    assert not (tmp_path / "out").exists()


def test_estimated_tags_never_hold_both_of_a_conflict_pair(tmp_path, monkeypatch):
    """A tagger that finds long and short hair both likely (art the creator did not draw does this) gives the
    dataset the likelier one only: no training image of the schema shows both."""
    import charforge.tagger.net as net

    schema = make_girls_moe_schema()
    assert ("long hair", "short hair") in schema.conflicts
    long_i, short_i = schema.index("long hair"), schema.index("short hair")

    class ProbaTagger:
        def __init__(self):
            self.schema = schema

        def predict_proba(self, images):
            p = np.full((len(images), len(schema)), 0.05, np.float32)
            p[:, long_i] = [0.9, 0.6, 0.7][: len(images)]
            p[:, short_i] = [0.6, 0.9, 0.1][: len(images)]
            return p

    monkeypatch.setattr(net, "load_tagger", lambda path: ProbaTagger())
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(pattern(500 + i, 64, 64)).save(src / f"{i}.png")
    (tmp_path / "tagger.safetensors").write_bytes(b"fake")
    ds = import_folder(
        src, tmp_path / "out", size=16, estimate_tags=tmp_path / "tagger.safetensors", progress=False
    ).dataset
    got = [(int(t[long_i]), int(t[short_i])) for t in ds.tags]
    assert got == [(1, 0), (0, 1), (1, 0)]


def test_keep_likelier_of_conflicts_is_deterministic_and_leaves_others_alone():
    from charforge.tagger.net import keep_likelier_of_conflicts

    schema = make_girls_moe_schema()
    a, b, g = schema.index("long hair"), schema.index("short hair"), schema.index("glasses")
    proba = np.zeros((3, len(schema)), np.float32)
    proba[:, [a, b, g]] = [[0.5, 0.5, 0.9], [0.3, 0.8, 0.9], [0.9, 0.2, 0.1]]
    tags = (proba >= 0.25).astype(np.uint8)
    out = keep_likelier_of_conflicts(tags.copy(), proba, schema)
    assert out[:, [a, b, g]].tolist() == [
        [1, 0, 1],
        [0, 1, 1],
        [1, 0, 0],
    ]  # a tie keeps the first of the pair
    assert (np.delete(out, [a, b], axis=1) == np.delete(tags, [a, b], axis=1)).all()


def test_review_sheet_shows_a_swatch_of_a_colour_read_from_the_picture(tmp_path):
    from charforge.data.importer import _sheet_pages

    img = np.full((16, 16, 3), 200, np.uint8)
    pages = _sheet_pages(
        tmp_path, "review.png", [([img], ["a.png", "hair pixels read as red (#d01010)"])], "t"
    )
    sheet = np.asarray(Image.open(pages[0]).convert("RGB"))
    assert (sheet == (0xD0, 0x10, 0x10)).all(axis=-1).sum() >= 64  # a filled square of the hex's colour
    plain = _sheet_pages(tmp_path, "plain.png", [([img], ["a.png", "no colour here"])], "t")
    assert not (np.asarray(Image.open(plain[0]).convert("RGB")) == (0xD0, 0x10, 0x10)).all(axis=-1).any()
