"""A user's own tag vocabulary: declared in the tags file or with --extra-tags, it joins the schema and
reaches training and generation (issue #21)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from charforge.core.tags import make_girls_moe_schema
from charforge.data.importer import import_folder
from charforge.data.packed import load_packed
from charforge.errors import UserError

BASE = len(make_girls_moe_schema())


def _art(root, n=12):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.zeros((48, 48, 3), np.uint8)
        img[:] = rng.integers(0, 256, 3)
        img[10 + i : 30 + i, 8:40] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(root / f"c{i:02d}.png")
    return root


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "charforge", *map(str, args)], capture_output=True, text=True
    )


def test_declared_tags_join_the_schema_and_reach_generation(tmp_path):
    src = _art(tmp_path / "art")
    rows = ["# extra tags: earrings, Freckles", "file,tags,license"]
    rows += [f'c{i:02d}.png,"{"earrings, " if i % 2 else ""}smile, blonde hair",CC0-1.0' for i in range(12)]
    (tmp_path / "tags.csv").write_text("\n".join(rows) + "\n")
    rep = import_folder(
        src, tmp_path / "ds", size=16, tags_file=tmp_path / "tags.csv", progress=False, dedupe_threshold=-1
    )
    ds = load_packed(tmp_path / "ds")
    assert ds.schema.tags[BASE:] == ["earrings", "freckles"] and rep.kept == 12
    j = ds.schema.index("earrings")
    assert ds.tags[:, j].sum() == 6 and ds.tags[:, ds.schema.index("freckles")].sum() == 0
    run = tmp_path / "run"
    r = _run(
        "train",
        "--data",
        tmp_path / "ds",
        "--out",
        run,
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--no-tensorboard",
    )
    assert r.returncode == 0, r.stderr
    assert "freckles" in json.loads((run / "config.json").read_text())["untrained_tags"]  # declared, unused
    r = _run(
        "generate",
        "--model",
        run,
        "--tags",
        "earrings",
        "--n",
        "2",
        "-o",
        tmp_path / "g.png",
        "--no-watermark",
    )
    assert r.returncode == 0, r.stderr
    from charforge.provenance import read_png_metadata

    meta = read_png_metadata(tmp_path / "g.png")
    assert all("earrings" in t for t in meta["tags"])


def test_extra_tags_flag_and_jsonl_declaration(tmp_path):
    src = _art(tmp_path / "art", 4)
    lines = [json.dumps({"extra_tags": ["scar"]})] + [
        json.dumps({"file": f"c{i:02d}.png", "tags": ["scar", "horns"] if i == 0 else ["smile"]})
        for i in range(4)
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"unknown tag 'horns'.*extra tags"):
        import_folder(src, tmp_path / "a", size=16, tags_file=tmp_path / "t.jsonl", progress=False)
    import_folder(
        src,
        tmp_path / "b",
        size=16,
        tags_file=tmp_path / "t.jsonl",
        progress=False,
        extra_tags=["horns"],
        dedupe_threshold=-1,
    )
    ds = load_packed(tmp_path / "b")
    assert ds.schema.tags[BASE:] == ["scar", "horns"]
    r = _run(
        "data",
        "import",
        src,
        "-o",
        tmp_path / "c",
        "--size",
        "16",
        "--extra-tags",
        "tail, wings!",
        "--dedupe-threshold",
        "off",
    )
    assert (
        r.returncode == 2 and "'wings!' is not a usable tag name" in r.stderr and "Traceback" not in r.stderr
    )


def test_estimated_images_get_own_tags_off_with_a_warning(tmp_path):
    src = _art(tmp_path / "art", 4)
    rep = import_folder(
        src,
        tmp_path / "e",
        size=16,
        estimate_tags="default",
        extra_tags=["earrings"],
        progress=False,
        dedupe_threshold=-1,
    )
    ds = load_packed(tmp_path / "e")
    assert len(ds.schema) == BASE + 1 and ds.tags[:, -1].sum() == 0
    assert any("knows none of your own tags (earrings)" in w for w in rep.warnings)


def test_reimporting_with_the_corrected_csv_names_a_new_folder(tmp_path):
    """The import says: correct OUT/import_tags.csv and re-import with --tags. Doing that into the same -o was
    refused with "choose another output folder or delete it", and deleting OUT deletes the corrected CSV. Now
    the refusal names a new folder, and importing there works."""
    src = _art(tmp_path / "art")
    out = tmp_path / "mine"
    import_folder(src, out, size=16, progress=False, license="CC0-1.0")
    csv = out / "import_tags.csv"  # as the estimator writes it, then corrected by hand
    csv.write_text("file,tags,license\n" + "".join(f'c{i:02d}.png,"red hair",CC0-1.0\n' for i in range(12)))
    with pytest.raises(UserError) as e:
        import_folder(src, out, size=16, progress=False, tags_file=csv)
    msg = str(e.value)
    assert f"your tags file {csv} is inside it" in msg and f"-o {tmp_path / 'mine-2'} --tags {csv}" in msg, (
        msg
    )
    assert "deleting" in msg and csv.exists()
    r = import_folder(src, tmp_path / "mine-2", size=16, progress=False, tags_file=csv)
    assert r.kept == 12 and load_packed(tmp_path / "mine-2").tags[:, 7].all()  # red hair, from the CSV
