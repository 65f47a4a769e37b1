"""Safe image loading: odd modes become correct RGB, bad files become reasons (charforge.core.images)."""

from __future__ import annotations

import numpy as np
import pytest
from corpus import gif_bomb, patch_png_size, pattern, png_bytes
from PIL import Image

from charforge.core.images import BadImage, load_image, to_rgb


def _reason(path, **kw) -> str:
    with pytest.raises(BadImage) as e:
        load_image(path, **kw)
    return e.value.reason


def test_rgb_roundtrip_is_exact(tmp_path):
    img = pattern(1)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (80, 96, 3)
    np.testing.assert_array_equal(out, img)


def test_16bit_gray_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")
    out = load_image(tmp_path / "g16.png")
    expected = np.round(ramp / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 200  # a clip would give mostly 255


def test_32bit_int_and_float_modes_scale():
    vals = np.array([[0, 257, 65535, 70000]], dtype=np.int32)
    assert to_rgb(Image.fromarray(vals))[0, :, 0].tolist() == [0, 1, 255, 255]
    f = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    assert to_rgb(Image.fromarray(f))[0, :, 0].tolist() == [0, 128, 255]


def test_alpha_modes_composite_on_white(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 20:, 3] = 255  # right half opaque red, left half fully transparent
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    assert (out[:, :20] == 255).all()
    assert (out[:, 20:] == [200, 0, 0]).all()
    la = np.stack([np.full((40, 40), 30, np.uint8), np.full((40, 40), 0, np.uint8)], axis=2)
    la[:, :10, 1] = 255
    Image.fromarray(la).save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    assert (out[:, :10] == 30).all() and (out[:, 10:] == 255).all()


def test_palette_transparency_becomes_white(tmp_path):
    pal = Image.new("P", (40, 40), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    pal.paste(1, (0, 0, 20, 40))
    pal.save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "p.png")
    assert (out[:, :20] == [10, 200, 30]).all()
    assert (out[:, 20:] == 255).all()  # the transparent index would be black without compositing


def test_gray_bilevel_cmyk(tmp_path):
    Image.fromarray(np.full((40, 40), 77, np.uint8)).save(tmp_path / "l.png")
    assert (load_image(tmp_path / "l.png") == 77).all()
    bits = np.zeros((40, 40), bool)
    bits[:, :13] = True
    Image.fromarray(bits).save(tmp_path / "b.png")
    out = load_image(tmp_path / "b.png")
    assert (out[:, :13] == 255).all() and (out[:, 13:] == 0).all()
    Image.new("CMYK", (40, 40), (255, 0, 0, 0)).save(tmp_path / "c.tif")  # pure cyan ink
    assert (load_image(tmp_path / "c.tif") == [0, 255, 255]).all()
    Image.new("CMYK", (40, 40), (0, 255, 0, 0)).save(tmp_path / "m.jpg", quality=95)  # magenta ink, JPEG
    mean = load_image(tmp_path / "m.jpg").reshape(-1, 3).mean(axis=0)
    assert mean[0] > 200 and mean[1] < 60 and mean[2] > 200


def test_exif_orientation_applied(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)  # (H, W) = (40, 60)
    img[:10, :10] = [255, 0, 0]  # red marker top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(img).save(tmp_path / "r.jpg", quality=95, exif=exif)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (60, 40, 3)
    assert out[:10, -10:, 0].mean() > 200 and out[:10, :10, 0].mean() < 50  # marker moved to the top-right


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(tmp_path / "a.gif").n_frames == 3
    out = load_image(tmp_path / "a.gif")
    assert (out == [255, 0, 0]).all()


def test_size_guards_before_decoding(tmp_path):
    tiny = png_bytes(Image.fromarray(pattern(2, 8, 8)))
    (tmp_path / "big.png").write_bytes(patch_png_size(tiny, 30000, 30000))
    assert "decompression bomb" in _reason(tmp_path / "big.png")
    (tmp_path / "mid.png").write_bytes(
        patch_png_size(tiny, 5000, 5000)
    )  # header lies: only 8x8 pixels inside
    assert "too many pixels" in _reason(tmp_path / "mid.png", max_pixels=1_000_000)
    (tmp_path / "bomb.gif").write_bytes(gif_bomb())
    assert "decompression bomb" in _reason(tmp_path / "bomb.gif")
    Image.fromarray(pattern(3, 20, 50)).save(tmp_path / "small.png")
    assert "too small" in _reason(tmp_path / "small.png", min_size=32)
    assert load_image(tmp_path / "small.png", min_size=20).shape == (20, 50, 3)


def test_bad_files_give_reasons(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "text.jpg").write_text("not a picture")
    data = png_bytes(Image.fromarray(pattern(4)))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    assert "empty" in _reason(tmp_path / "empty.png")
    assert "directory" in _reason(tmp_path / "dir.png")
    assert "not an image" in _reason(tmp_path / "text.jpg")
    assert "truncated" in _reason(tmp_path / "cut.png")
    assert "does not exist" in _reason(tmp_path / "missing.png")
    # the wrong suffix typed (grace_hopper.png for grace_hopper.jpg): the message names the file that is there
    Image.fromarray(pattern(5)).save(tmp_path / "grace[1].jpg")
    assert _reason(tmp_path / "grace[1].png") == "file does not exist (there is grace[1].jpg)"


def test_load_with_alpha_keeps_transparency_text_and_orientation_from_one_decode(tmp_path):
    from PIL import PngImagePlugin

    from charforge.core.images import load_image, load_image_with_alpha

    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :10, 3] = 0  # the left third transparent
    rgba[:, 10:, 3] = 255
    info = PngImagePlugin.PngInfo()
    info.add_text("charforge:seed", "7")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    Image.fromarray(rgba).save(tmp_path / "a.png", pnginfo=info, exif=exif)
    got = load_image_with_alpha(tmp_path / "a.png")
    assert got.rgb.shape == (30, 20, 3) and got.alpha.shape == (30, 20)  # turned, both of them
    np.testing.assert_array_equal(got.rgb, load_image(tmp_path / "a.png"))
    assert (got.alpha[:10] == 0).all() and (got.alpha[10:] == 255).all()  # the transparent band is now on top
    assert got.text["charforge:seed"] == "7"

    Image.fromarray(np.full((8, 8, 4), 255, np.uint8)).save(tmp_path / "opaque.png")
    assert load_image_with_alpha(tmp_path / "opaque.png").alpha is None  # alpha that hides nothing is dropped
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(tmp_path / "b.jpg")
    jpg = load_image_with_alpha(tmp_path / "b.jpg")
    assert jpg.alpha is None and jpg.text == {}
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(BadImage):
        load_image_with_alpha(tmp_path / "bad.png")


def test_a_grid_pads_its_last_row_with_white_cells():
    from charforge.core.images import image_grid

    imgs = np.stack([np.full((4, 4, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    grid = image_grid(imgs, 3)
    assert grid.shape == (8, 12, 3)
    assert (grid[4:, 4:8] == 50).all() and (grid[4:, 8:] == 255).all()  # the 5th image, then one empty cell
