"""Pixel art in a folder import keeps its cells and palette (charforge.core.pixelart.pixel_resize)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from charforge.data.importer import import_folder
from charforge.data.packed import load_packed


def test_pixel_art_is_resized_cell_by_cell_and_other_art_as_before(tmp_path):
    rng = np.random.default_rng(4)
    palette = rng.integers(0, 256, (7, 3), dtype=np.uint8)
    cells = palette[rng.integers(0, 7, (16, 16))]
    src = tmp_path / "art"
    src.mkdir()
    Image.fromarray(cells.repeat(16, 0).repeat(16, 1)).save(src / "a_hero.png")  # 256 px, 16 px cells
    y, x = np.mgrid[0:200, 0:200]
    smooth = np.stack([x, y, (x + y) // 2], -1).astype(np.uint8)
    Image.fromarray(smooth).save(src / "b_sky.png")
    rep = import_folder(src, tmp_path / "ds", size=64, progress=False)
    ds = load_packed(tmp_path / "ds")
    hero, sky = ds.images[0], ds.images[1]
    assert np.array_equal(hero, cells.repeat(4, 0).repeat(4, 1))  # exact 4 px cells, the same 7 colours
    assert rep.pixel_art == 1 and "pixel art    1 of 2 samples" in rep.summary()
    assert len(np.unique(sky.reshape(-1, 3), axis=0)) > 100  # a smooth picture: resized as before
    plain = import_folder(src, tmp_path / "ds2", size=64, progress=False, pixel_art=False)
    assert plain.pixel_art == 0 and "pixel art" not in plain.summary()
    soft = load_packed(tmp_path / "ds2").images[0]
    assert len(np.unique(soft.reshape(-1, 3), axis=0)) > len(np.unique(hero.reshape(-1, 3), axis=0))
    assert np.array_equal(load_packed(tmp_path / "ds2").images[1], sky)
