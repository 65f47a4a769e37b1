"""`--json` on the data commands and verify, `--version`, and the documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from cli_helpers import run_cli
from PIL import Image

from charforge import __version__


def test_version(capsys):
    code, out, err = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"charforge {__version__}"
    r = subprocess.run([sys.executable, "-m", "charforge", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"charforge {__version__}"


def test_data_build_and_inspect_json(tmp_path, capsys):
    ds = tmp_path / "ds"
    code, out, err = run_cli(capsys, "data", "build", "--n", "6", "--size", "32", "-o", ds, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["command"] == "data build"
    d = doc["dataset"]
    assert d["path"] == str(ds) and d["images"] == 6 and d["size"] == 32 and d["parameters"] is True
    assert len(d["tags"]) == 34 and set(d["tag_frequencies"]) == set(d["tags"])
    code, out, err = run_cli(capsys, "data", "inspect", ds, "--n", "4", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["checksums"] == "ok" and doc["dataset"]["images"] == 6
    assert Image.open(doc["sheet"]).format == "PNG" and Image.open(doc["tags"]).format == "PNG"
    # an error: nothing on stdout, the reason on stderr, exit 2
    code, out, err = run_cli(capsys, "data", "inspect", tmp_path / "nope", "--json")
    assert code == 2 and out == "" and "nope" in err and "Traceback" not in err


def test_data_import_json(tmp_path, capsys):
    src = tmp_path / "art"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(src / f"a{i}.png")
    (src / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(
        capsys,
        "data",
        "import",
        src,
        "-o",
        tmp_path / "ds",
        "--size",
        "32",
        "--dedupe-threshold",
        "off",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["command"] == "data import" and doc["kept"] == 4 and doc["dataset"]["images"] == 4
    assert [s["path"].rsplit("/", 1)[-1] for s in doc["skipped"]] == ["broken.png"]


def test_verify_json_one_document(tmp_path, capsys):
    from charforge.provenance import save_png

    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    save_png(tmp_path / "a.png", img, {"seed": 3})
    code, out, err = run_cli(capsys, "verify", tmp_path / "a.png", tmp_path / "missing.png", "--json")
    assert code == 2 and "missing.png" in err  # the document is still printed for the files that were read
    doc = json.loads(out)
    assert doc["command"] == "verify" and doc["checked"] == 2 and doc["unreadable"] == 1
    good, missing = doc["files"]
    assert good["ok"] and good["watermark_detected"] and good["metadata"]["seed"] == 3
    assert not missing["ok"] and missing["error"] == "no such file"


def test_exit_codes(tmp_path, capsys):
    code, _, err = run_cli(capsys, "generate", "--n", "zero")  # usage error (click)
    assert code == 2 and "Traceback" not in err
    code, _, err = run_cli(capsys, "no-such-command")
    assert code == 2
    code, _, err = run_cli(capsys, "data", "build", "-o", tmp_path / "x", "--creator", "nope")  # UserError
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
