import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from charforge import __version__
from charforge.cli import app
from charforge.provenance import png_bytes, read_png_metadata, save_png
from charforge.provenance.verify import verify_bytes, verify_image

META = {
    "generator": "acgan",
    "model_id": "tiny-1",
    "model_sha256": "c0ffee00" * 8,
    "seed": 42,
    "tags": ["blonde hair", "smile"],
}


def _portrait(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size
    img = np.stack([200 * xx + 30, 150 * yy + 50, 120 + 60 * np.sin(6 * xx * yy)], axis=-1)
    return img.astype(np.uint8)


def test_save_png_carries_metadata_and_watermark(tmp_path):
    path = save_png(tmp_path / "out" / "a.png", _portrait(), META)
    meta = read_png_metadata(path)
    assert meta["seed"] == 42 and meta["tags"] == ["blonde hair", "smile"] and meta["model_id"] == "tiny-1"
    assert meta["software"] == f"charforge {__version__}" and "AI-generated" in meta["ai_generated"]
    assert meta["watermark"] == "charforge-qim-v2" and meta["watermark_tag"] == "c0ff"
    r = verify_image(path)
    assert r.ok and r.detected and r.payload == "c0ff" and r.tag_matches_metadata is True
    assert not list(tmp_path.glob("out/.*.tmp"))  # atomic write left no temp file


def test_no_watermark_is_recorded_and_not_detected():
    data = png_bytes(_portrait(), {"seed": 1}, watermark=False)
    assert read_png_metadata(data)["watermark"] == "none"
    r = verify_bytes(data)
    assert r.ok and not r.detected and r.payload is None
    pixels = np.asarray(Image.open(__import__("io").BytesIO(data)))
    assert np.array_equal(pixels, _portrait())  # untouched when not watermarked


def test_tiny_image_is_recorded_as_unmarked():
    meta = read_png_metadata(png_bytes(_portrait(16), {"seed": 1}))
    assert meta["watermark"].startswith("none (image smaller than")


def test_verify_cli_table_and_bad_files(tmp_path):
    save_png(tmp_path / "good.png", _portrait(), META)
    save_png(tmp_path / "plain.png", _portrait(), {"seed": 3}, watermark=False)
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(_portrait()).save(tmp_path / "other.jpg", quality=90)
    res = CliRunner().invoke(
        app,
        [
            "verify",
            str(tmp_path / "good.png"),
            str(tmp_path / "notes.png"),
            str(tmp_path / "plain.png"),
            str(tmp_path / "missing.png"),
            str(tmp_path / "other.jpg"),
        ],
    )
    # unreadable files are reported in the table and make the run fail (charforge's main() exits 2), after the rest
    assert res.exit_code != 0 and "2 of 5 files could not be checked" in str(res.exception), res.output
    lines = {ln.split()[0].rsplit("/", 1)[-1]: ln for ln in res.output.splitlines()[1:]}
    assert (
        "detected" in lines["good.png"]
        and "c0ff" in lines["good.png"]
        and "model_id=tiny-1" in lines["good.png"]
    )
    assert "not an image file" in lines["notes.png"]
    assert "absent" in lines["plain.png"] and "watermark=none" in lines["plain.png"]
    assert "no such file" in lines["missing.png"]
    assert "absent" in lines["other.jpg"] and "no charforge metadata" in lines["other.jpg"]


def test_verify_cli_json(tmp_path):
    save_png(tmp_path / "good.png", _portrait(), META)
    res = CliRunner().invoke(app, ["verify", "--json", str(tmp_path / "good.png")])
    rec = json.loads(res.output)["files"][0]
    assert rec["watermark_detected"] and rec["metadata"]["seed"] == 42 and rec["size"] == [64, 64]


def test_generator_png_meta_round_trips_through_verify(tmp_path):
    sampling = pytest.importorskip("charforge.sampling")
    from charforge.core.tags import make_girls_moe_schema

    schema = make_girls_moe_schema()
    bundle = sampling.GeneratorBundle(
        None,
        schema,
        np.full(len(schema), 0.1),
        {"family": "acgan", "name": "tiny"},
        16,
        64,
        "tiny-run",
        "9f3e" + "0" * 60,
        tmp_path / "g.safetensors",
    )
    tags = schema.to_vector(["blue hair", "smile"])
    save_png(tmp_path / "g.png", _portrait(), bundle.png_meta(7, tags))
    r = verify_image(tmp_path / "g.png")
    assert r.detected and r.payload == "9f3e" and r.metadata["seed"] == 7
    assert r.metadata["tags"] == ["blue hair", "smile"] and r.metadata["generator"] == "acgan/tiny"
