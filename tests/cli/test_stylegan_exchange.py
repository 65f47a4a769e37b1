"""`charforge data export --format stylegan` and `data import --format stylegan`: round trip, foreign labels,
bad archives named by entry."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image

from charforge.core.tags import make_girls_moe_schema
from charforge.data.exchange import entry_name, import_stylegan
from charforge.data.packed import load_packed, write_packed
from charforge.errors import UserError


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    n = 7
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    tags = schema.sample_training(n, rng).astype(np.uint8)
    items = [{"source": f"art/{i}.png", "license": "CC-BY-4.0" if i % 2 else "CC0-1.0"} for i in range(n)]
    root = tmp_path_factory.mktemp("pk") / "ds"
    return write_packed(root, images, tags, schema, items=items)


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("as_zip", [True, False])
def test_round_trip_keeps_pixels_tags_and_licences(packed, tmp_path, capsys, as_zip):
    dest = tmp_path / ("sg.zip" if as_zip else "sg")
    code, out, err = run_cli(capsys, "data", "export", packed.root, dest, "--format", "stylegan", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["images"] == 7 and doc["labels"] == 34 and doc["format"] == "stylegan"
    if as_zip:
        with zipfile.ZipFile(dest) as zf:
            meta = json.loads(zf.read("dataset.json"))
            assert sorted(zf.namelist())[0] == "00000/img00000000.png"
    else:
        meta = json.loads((dest / "dataset.json").read_text())
    # the labels StyleGAN reads: [file, multi-hot vector] in file order
    assert meta["labels"][3] == [entry_name(3), packed.tags[3].tolist()]
    assert meta["charforge"]["tags"] == packed.schema.tags
    code, out, err = run_cli(
        capsys, "data", "import", dest, "--format", "stylegan", "-o", tmp_path / "back", "--json"
    )
    assert code == 0, err
    back = load_packed(tmp_path / "back", verify=True)
    assert json.loads(out)["dataset"]["images"] == 7
    assert np.array_equal(np.asarray(back.images), np.asarray(packed.images))
    assert np.array_equal(np.asarray(back.tags), np.asarray(packed.tags))
    assert back.schema.to_dict() == packed.schema.to_dict()
    assert [it["license"] for it in back.manifest["items"]] == [
        it["license"] for it in packed.manifest["items"]
    ]


def test_foreign_class_and_vector_labels(tmp_path):
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    with zipfile.ZipFile(tmp_path / "cls.zip", "w") as zf:
        for i, im in enumerate(imgs):
            zf.writestr(f"a/{i}.png", _png(im))
        zf.writestr(
            "dataset.json", json.dumps({"labels": [[f"a/{i}.png", c] for i, c in enumerate([2, 0, 2])]})
        )
    ds = import_stylegan(tmp_path / "cls.zip", tmp_path / "c", license="MIT")
    assert ds.schema.tags == ["class 0", "class 1", "class 2"] and ds.tags[:, 2].tolist() == [1, 0, 1]
    assert ds.licence_counts() == {"MIT": 3} and np.array_equal(ds.images[1], imgs[1])
    folder = tmp_path / "vec"
    folder.mkdir()
    for i, im in enumerate(imgs):
        (folder / f"{i}.png").write_bytes(_png(im))
    (folder / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", [i % 2, 1]] for i in range(3)]}))
    ds = import_stylegan(folder, tmp_path / "v")
    assert ds.schema.tags == ["label 0", "label 1"] and ds.tags.tolist() == [[0, 1], [1, 1], [0, 1]]


def _zip(path, entries: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def test_bad_archives_name_the_entry(tmp_path, capsys):
    ok = _png(np.zeros((8, 8, 3), np.uint8))
    lab = lambda *pairs: json.dumps({"labels": [list(p) for p in pairs]})  # noqa: E731
    cases = {
        "nojson.zip": ({"0.png": ok}, "no dataset.json"),
        "badjson.zip": ({"0.png": ok, "dataset.json": "{oops"}, "badjson.zip:dataset.json: not valid JSON"),
        "damaged.zip": (
            {"0.png": ok[:40], "dataset.json": lab(["0.png", 1])},
            "damaged.zip:0.png: not a readable",
        ),
        "unlisted.zip": (
            {"0.png": ok, "1.png": ok, "dataset.json": lab(["0.png", [1]])},
            "unlisted.zip:1.png: this image has no entry",
        ),
        "ghost.zip": ({"0.png": ok, "dataset.json": lab(["0.png", [1]], ["9.png", [0]])}, "names '9.png'"),
        "width.zip": (
            {"0.png": ok, "1.png": ok, "dataset.json": lab(["0.png", [1, 0]], ["1.png", [1]])},
            "'1.png' has 1 values",
        ),
        "float.zip": ({"0.png": ok, "dataset.json": lab(["0.png", [0.5]])}, "holds 0.5"),
        "sizes.zip": (
            {
                "0.png": ok,
                "1.png": _png(np.zeros((4, 4, 3), np.uint8)),
                "dataset.json": lab(["0.png", 0], ["1.png", 0]),
            },
            "sizes.zip:1.png: 4x4",
        ),
        "wide.zip": (
            {"0.png": _png(np.zeros((8, 6, 3), np.uint8)), "dataset.json": lab(["0.png", 0])},
            "wide.zip:0.png: 6x8",
        ),
    }
    for name, (entries, fragment) in cases.items():
        _zip(tmp_path / name, entries)
        code, out, err = run_cli(
            capsys, "data", "import", tmp_path / name, "--format", "stylegan", "-o", tmp_path / f"o_{name}"
        )
        assert code == 2 and fragment in err and "Traceback" not in err, (name, err)
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(UserError, match="text.zip: not a zip archive"):
        import_stylegan(tmp_path / "text.zip", tmp_path / "o")
    code, _, err = run_cli(capsys, "data", "import", tmp_path / "text.zip", "-o", tmp_path / "o2")
    assert code == 2 and "--format stylegan" in err


def test_export_refuses_to_mix_into_a_folder(packed, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_bytes(b"")
    code, _, err = run_cli(capsys, "data", "export", packed.root, tmp_path / "full")
    assert code == 2 and "not an empty folder" in err
    assert run_cli(capsys, "data", "export", packed.root, tmp_path / "a.zip")[0] == 0
    code, _, err = run_cli(capsys, "data", "export", packed.root, tmp_path / "a.zip")
    assert code == 2 and "--overwrite" in err
    assert run_cli(capsys, "data", "export", packed.root, tmp_path / "a.zip", "--overwrite")[0] == 0


def test_folder_only_options_are_refused_with_stylegan(packed, tmp_path, capsys):
    assert run_cli(capsys, "data", "export", packed.root, tmp_path / "a.zip")[0] == 0
    code, _, err = run_cli(
        capsys,
        "data",
        "import",
        tmp_path / "a.zip",
        "--format",
        "stylegan",
        "--size",
        "32",
        "-o",
        tmp_path / "x",
    )
    assert code == 2 and "--size: not used with --format stylegan" in err
    code, _, err = run_cli(
        capsys, "data", "import", tmp_path / "a.zip", "--format", "stylegan", "--suggest-labels", "8",
        "--no-learn-tags", "-o", tmp_path / "x",
    )  # fmt: skip
    assert code == 2 and "--suggest-labels, --no-learn-tags: not used with --format stylegan" in err
    code, _, err = run_cli(
        capsys, "data", "import", tmp_path / "a.zip", "--format", "pix2pix", "-o", tmp_path / "x"
    )
    assert code == 2 and "must be one of folder, stylegan" in err
