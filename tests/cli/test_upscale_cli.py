"""`charforge upscale` and --upscale on generate / npc / interpolate, in process (tiny models)."""

import json

import numpy as np
from cli_helpers import run_cli
from PIL import Image

import charforge.sr as sr


def test_upscale_command(tmp_path, upscaler_file, capsys):
    from charforge.provenance import save_png
    from charforge.provenance.metadata import read_png_metadata

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    save_png(
        src / "gen.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), {"model_id": "g1", "seed": 7}
    )
    sprite = np.zeros((40, 30, 4), np.uint8)
    sprite[10:30, 8:22] = (200, 50, 50, 255)
    Image.fromarray(sprite).save(src / "sprite.png")
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "upscale", src, "-o", out, "--upscaler", upscaler_file)
    assert code == 2, err
    assert "broken.png" in err and "1 of 3" in err and "Traceback" not in err
    meta = read_png_metadata(out / "gen_x4.png")
    assert (
        meta["model_id"] == "g1"
        and meta["seed"] == 7
        and meta["upscaler_id"] == "tiny-sr"
        and meta["upscale"] == 4
    )
    assert meta["watermark"] != "none"
    with Image.open(out / "sprite_x4.png") as im:
        assert im.mode == "RGBA" and im.size == (120, 160)
        assert np.asarray(im)[0, 0, 3] == 0
    code, _, err = run_cli(capsys, "upscale", src / "gen.png", "-o", out, "--scale", "3")
    assert code == 2 and "choose 2 or 4" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "upscale", tmp_path / "missing", "-o", out)
    assert code == 2 and "missing: no such file or folder" in err


def _main(args, capsys) -> tuple[int, str]:
    code, _, err = run_cli(capsys, *args)
    return code, err


def test_generate_npc_interpolate_upscale(tmp_path, tiny_generator, upscaler_file, capsys):
    from charforge.provenance.metadata import read_png_metadata

    g, u = str(tiny_generator), str(upscaler_file)
    base = ["--model", g, "--upscaler", u, "--no-watermark"]
    code, err = _main(
        [
            "generate",
            *base,
            "--n",
            "2",
            "--seed",
            "3",
            "-o",
            str(tmp_path / "a.png"),
            "--each",
            str(tmp_path / "each"),
        ],
        capsys,
    )
    assert code == 0, err
    code, err = _main(
        [
            "generate",
            *base,
            "-n",  # the short spelling a user reaches for
            "2",
            "--seed",
            "3",
            "--upscale",
            "4",
            "-o",
            str(tmp_path / "b.png"),
            "--each",
            str(tmp_path / "big"),
        ],
        capsys,
    )
    assert code == 0, err
    small = sorted((tmp_path / "each").glob("*.png"))
    big = sorted((tmp_path / "big").glob("*.png"))
    assert [p.name for p in small] == [p.name for p in big]
    with Image.open(small[0]) as a, Image.open(big[0]) as b:
        assert b.size == (a.size[0] * 4, a.size[1] * 4)
        ref = sr.load_upscaler(u).upscale(np.asarray(a.convert("RGB")), 4)
        assert np.array_equal(np.asarray(b.convert("RGB")), ref)  # the same character, upscaled
    meta = read_png_metadata(big[0])
    assert meta["model_id"] == "tiny-cli" and meta["upscaler_id"] == "tiny-sr" and meta["upscale"] == 4
    npc_args = [
        "npc",
        *base,
        "-n",
        "2",
        "--min-distance",
        "0",
        "--upscale",
        "2",
        "-o",
        str(tmp_path / "npc"),
    ]
    code, err = _main(npc_args, capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "npc" / "manifest.json").read_text())
    assert manifest["upscale"]["upscaler_id"] == "tiny-sr"
    with Image.open(tmp_path / "npc" / "npc_0000.png") as im, Image.open(small[0]) as one:
        assert im.size == (2 * one.size[0], 2 * one.size[1])
    code, err = _main(
        ["interpolate", *base, "--frames", "2", "--upscale", "2", "-o", str(tmp_path / "morph")], capsys
    )
    assert code == 0, err
    assert read_png_metadata(tmp_path / "morph" / "frame_000.png")["upscale"] == 2
    code, _, err = run_cli(capsys, "generate", "--model", g, "--upscale", "3", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "choose 2 or 4" in err


def test_upscale_command_enlarges_pixel_art_by_pixel_repeats(tmp_path, upscaler_file, capsys):
    """Pixel art keeps its cells and palette (no watermark noise: no network changed a pixel); --pixel-art off
    runs the network on it like any picture."""
    from charforge.provenance.metadata import read_png_metadata

    rng = np.random.default_rng(2)
    palette = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    art = palette[rng.integers(0, 5, (16, 16))].repeat(4, 0).repeat(4, 1)  # 64 px, 4 px cells
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(art).save(src / "hero.png")
    out = tmp_path / "out"
    code, text, err = run_cli(capsys, "upscale", src, "-o", out, "--upscaler", upscaler_file, "--scale", "2")
    assert code == 0, err
    assert "pixel art: 1 of 1" in text
    got = np.asarray(Image.open(out / "hero_x2.png").convert("RGB"))
    assert np.array_equal(got, art.repeat(2, 0).repeat(2, 1))
    assert len(np.unique(got.reshape(-1, 3), axis=0)) == len(np.unique(art.reshape(-1, 3), axis=0))
    meta = read_png_metadata(out / "hero_x2.png")
    assert meta["upscale_method"] == "nearest (pixel art, 4 px cells)" and meta["watermark"] == "none"
    assert "pixel repeats" in meta["watermark_skipped"] and meta["upscaler_id"] == "tiny-sr"
    code, text, err = run_cli(
        capsys, "upscale", src, "-o", tmp_path / "net", "--upscaler", upscaler_file, "--pixel-art", "off"
    )
    assert code == 0 and "pixel art" not in text
    meta = read_png_metadata(tmp_path / "net" / "hero_x4.png")
    assert meta["upscale_method"] == "network (tiny-sr)" and meta["watermark"] != "none"
    code, _, err = run_cli(capsys, "upscale", src, "-o", out, "--pixel-art", "sometimes")
    assert code == 2 and "--pixel-art 'sometimes'" in err and "Traceback" not in err
