"""`charforge creator sheet | render | schema` through the real CLI entry point, writing real files."""

import json

import numpy as np
import pytest
from PIL import Image

from charforge.cli import main
from charforge.provenance import read_png_metadata


def run(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sheet_writes_a_grid_with_provenance(tmp_path, capsys):
    path = tmp_path / "sheet.png"
    code, out, _ = run(
        ["creator", "sheet", "--n", "5", "--seed", "3", "--size", "32", "-o", str(path)], capsys
    )
    assert code == 0 and "wrote" in out
    im = np.asarray(Image.open(path))
    assert im.shape == (64, 96, 3)  # 5 characters: 3 columns, 2 rows, the last cell empty
    assert im[32:, 64:].min() > 235 and im[32:, 32:64].std() > 10  # near white: the watermark nudges pixels
    meta = read_png_metadata(path)
    assert meta["creator"] == "builtin" and meta["seed"] == 3


def test_render_partial_params(tmp_path, capsys):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"hair_color": "pink", "hat": "witch", "eye_size": 1.1}))
    path = tmp_path / "out.png"
    code, out, _ = run(
        ["creator", "render", "--params", str(params), "-o", str(path), "--size", "48"], capsys
    )
    assert code == 0 and "pink hair" in out and "hat" in out
    assert np.asarray(Image.open(path)).shape == (48, 48, 3)
    meta = read_png_metadata(path)
    assert meta["params"]["hair_color"] == "pink" and meta["params"]["mouth"] == "closed"
    assert "hat" in meta["tags"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"hair_colour": "pink"}', "hair_colour"),
        ('{"eye_size": 9}', "eye_size"),
        ('{"hat": "crown"}', "hat"),
        ("{broken", "not valid JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_params_exit_2_naming_the_problem(tmp_path, capsys, content, needle):
    params = tmp_path / "p.json"
    params.write_text(content)
    code, _, err = run(["creator", "render", "--params", str(params), "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_missing_params_file(tmp_path, capsys):
    code, _, err = run(["creator", "render", "--params", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "nope.json" in err


def test_schema_prints_space_and_tags(capsys):
    code, out, _ = run(["creator", "schema"], capsys)
    doc = json.loads(out)
    assert code == 0
    assert len(doc["param_space"]["continuous"]) >= 20
    assert (
        sum(len(g["tags"]) for g in doc["tag_schema"]["groups"]) + len(doc["tag_schema"]["independent"]) == 34
    )
