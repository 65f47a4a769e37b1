"""`--json` on generate / npc / interpolate: one JSON document on stdout, messages on stderr."""

from __future__ import annotations

import json

from cli_helpers import run_cli
from PIL import Image

from charforge.provenance import read_png_metadata


def test_generate_json_is_one_document_matching_the_files(tiny_generator, tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "generate",
        "-m",
        tiny_generator,
        "--tags",
        "blonde hair, hat",
        "--n",
        "3",
        "--seed",
        "4",
        "-o",
        tmp_path / "g.png",
        "--each",
        tmp_path / "each",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)  # the whole of stdout is one document
    assert doc["command"] == "generate" and doc["charforge_version"]
    assert doc["grid"] == str(tmp_path / "g.png") and doc["model_id"] == "tiny-cli"
    assert [im["tag_seed"] for im in doc["images"]] == [4, 5, 6]
    for im in doc["images"]:
        meta = read_png_metadata(im["file"])
        assert meta["seed"] == im["seed"] and meta["tags"] == im["tags"] and "blonde hair" in im["tags"]
    assert Image.open(doc["grid"]).size == (32, 32)
    assert "wrote" not in out


def test_generate_json_error_leaves_stdout_empty(tiny_generator, tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", "-m", tiny_generator, "--tags", "blond hair", "--json")
    assert code == 2 and out == "" and "unknown tag 'blond hair'" in err and "Traceback" not in err


def test_npc_and_interpolate_json(tiny_generator, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "npc", "-m", tiny_generator, "--n", "3", "--min-distance", "0", "-o", tmp_path / "n", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    man = json.loads((tmp_path / "n" / "manifest.json").read_text())
    assert doc["command"] == "npc" and [i["seed"] for i in doc["items"]] == [i["seed"] for i in man["items"]]
    assert all(Image.open(i["file"]).size == (16, 16) for i in doc["items"])
    code, out, err = run_cli(
        capsys, "interpolate", "-m", tiny_generator, "--frames", "3", "-o", tmp_path / "i", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["frames"]) == 3 and doc["gif"].endswith("interpolation.gif")


def test_generate_out_without_suffix_or_a_folder_is_a_png(tiny_generator, tmp_path, capsys):
    """`-o gen1` wrote a PNG named gen1 with no suffix (seen walking the main job); now gen1.png. A folder gets
    grid.png inside; another suffix is a clear error naming the option, before anything is generated."""
    code, out, err = run_cli(capsys, "generate", "-m", tiny_generator, "-n", "2", "-o", tmp_path / "gen1")
    assert code == 0, err
    assert (tmp_path / "gen1.png").is_file() and not (tmp_path / "gen1").exists()
    assert str(tmp_path / "gen1.png") in out
    (tmp_path / "folder").mkdir()
    code, out, err = run_cli(capsys, "generate", "-m", tiny_generator, "-n", "2", "-o", tmp_path / "folder")
    assert code == 0, err
    assert Image.open(tmp_path / "folder" / "grid.png").format == "PNG"
    code, out, err = run_cli(capsys, "generate", "-m", tiny_generator, "-n", "2", "-o", tmp_path / "g.jpg")
    assert code != 0 and "--out" in err and "g.png" in err and "Traceback" not in err
    assert not (tmp_path / "g.jpg").exists()
