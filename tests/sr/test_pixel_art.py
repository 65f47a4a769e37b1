"""Pixel art on an exact grid is enlarged by pixel repeats, not by the network (charforge.core.pixelart)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from charforge.core.pixelart import grid_cell, nearest_upscale
from charforge.errors import UserError


def cells(k: int, n: int = 16, seed: int = 0) -> np.ndarray:
    """n x n random colour cells of k x k px (a random palette of 6, so neighbours often repeat a colour)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    return palette[rng.integers(0, 6, (n, n))].repeat(k, 0).repeat(k, 1)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 8])
def test_grid_cells_are_found_at_their_size_and_offset(k):
    img = cells(k)
    assert grid_cell(img) == k
    shifted = img[1:, k // 2 :]  # the grid need not start at the corner
    assert grid_cell(shifted) == k
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], -1)
    assert grid_cell(rgba) == k


def test_smooth_flat_small_and_recompressed_pictures_are_not_pixel_art():
    from charforge.creators import get_creator

    y, x = np.mgrid[0:64, 0:64]
    gradient = np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8)
    assert grid_cell(gradient) is None
    assert grid_cell(np.full((64, 64, 3), 90, np.uint8)) is None  # nothing to decide
    assert grid_cell(cells(2, n=4)) is None  # 8 px: too few cells to judge
    buf = io.BytesIO()
    Image.fromarray(cells(4)).save(buf, format="JPEG", quality=80)
    assert grid_cell(np.asarray(Image.open(buf))) is None  # JPEG noise inside the cells: not exact
    c = get_creator("builtin")
    renders = np.asarray(c.render(c.sample(4, np.random.default_rng(1)), 64))
    assert [grid_cell(r) for r in renders] == [None] * 4
    p = get_creator("builtin-styles=pixel")
    pix = np.asarray(p.render(p.sample(2, np.random.default_rng(1)), 64))
    assert [grid_cell(r) for r in pix] == [2, 2]  # the creator's own pixel style: 2 px cells at 64 px


def test_the_upscaler_repeats_pixel_art_and_runs_the_network_on_the_rest(upscaler_file):
    import charforge.sr as sr

    up = sr.load_upscaler(upscaler_file)  # tiny-sr, a network that does more than bicubic
    pix = cells(4)  # 64 x 64
    smooth = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    how: list[str] = []
    out = up.upscale(np.stack([pix, smooth, pix]), 2, methods=how)
    assert np.array_equal(out[0], nearest_upscale(pix, 2)) and np.array_equal(out[2], out[0])
    assert np.array_equal(out[1], up.upscale(smooth, 2, pixel_art="off"))
    assert how == ["nearest (pixel art, 4 px cells)", "network (tiny-sr)", "nearest (pixel art, 4 px cells)"]
    net_only = up.upscale(pix, 4, pixel_art="off")
    assert not np.array_equal(net_only, nearest_upscale(pix, 4))  # the network softens the cell edges
    rgba = np.concatenate([pix, np.where(pix[..., :1] > 128, 255, 0).astype(np.uint8)], -1)
    big = up.upscale(rgba, 4)
    assert np.array_equal(big, nearest_upscale(rgba, 4))  # the alpha keeps its cells too
    with pytest.raises(UserError, match="--pixel-art 'maybe'"):
        up.upscale(pix, 2, pixel_art="maybe")
    images, meta = sr.apply(up, np.stack([pix, smooth]), 2)
    assert meta["upscale_method"] == "nearest (pixel art, 4 px cells), network (tiny-sr)"


def test_odd_inputs_are_simply_not_pixel_art():
    rng = np.random.default_rng(5)
    for img in (
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((1, 500, 3), np.uint8),
        rng.integers(0, 256, (40, 40), dtype=np.uint8),  # grey, no channel axis
        rng.integers(0, 256, (13, 200, 4), dtype=np.uint8),
        np.full((300, 300, 3), 7, np.uint8),
    ):
        assert grid_cell(img) is None
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # 1 px columns: a grid of 1 px is no grid
    assert grid_cell(stripes) is None
