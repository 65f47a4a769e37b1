"""Is a picture pixel art on an exact grid? Then it is scaled up by repeating each pixel, never interpolated.

Pixel art is drawn as square cells of one colour each (often stored already enlarged, every cell k x k screen pixels).
Enlarged with any interpolating filter, or with a super-resolution network trained on smooth art, its hard cell
edges turn soft and its palette grows; the way pixel artists and game engines scale it is integer nearest-neighbour.
`grid_cell` finds the cell size (in pixels of the picture) where one exists, so the upscaler can take that path by
itself.

The test: for a cell size k and a grid offset, every neighbouring pair of pixels *inside* a cell must be (nearly)
equal, and the pairs *across* cell borders must carry the picture's changes. A smooth picture fails (its inside
pairs change as much as its border pairs); a flat one has nothing to decide and is not called pixel art. The
largest k that passes wins (cells of 4 px also pass as 2 px).
"""

from __future__ import annotations

import numpy as np

MAX_CELL = 32  # px; larger cells are rare and leave too few cells to judge in a small picture
MIN_CELLS = 6  # the picture must hold at least this many whole cells along each side
INSIDE_MAX = 0.02  # share of neighbouring pairs inside cells that may differ (antialiased or damaged pixels)
PAIR_TOL = 3  # a pair "differs" when a channel moves more than this (of 255): PNG-exact art has 0
BORDER_MIN = 0.02  # share of border pairs that must differ (else the picture is too flat to tell)


def _pairs(img: np.ndarray, axis: int) -> np.ndarray:
    """(positions along `axis` - 1,) share of neighbouring pixel pairs that differ at each position."""
    d = np.abs(np.diff(img.astype(np.int16), axis=axis)).max(axis=-1) > PAIR_TOL  # (H-1, W) or (H, W-1)
    return d.mean(axis=1 - axis)


def _fits(share: np.ndarray, k: int) -> bool:
    """Does some grid offset put (almost) every change of this axis on a cell border of size k?"""
    n = share.size + 1  # pixels along the axis
    if n < k * MIN_CELLS:
        return False
    pos = np.arange(share.size)  # pair between pixel i and i+1
    for off in range(k):
        border = (pos - off) % k == k - 1
        inside = share[~border]
        if (
            inside.size
            and inside.mean() <= INSIDE_MAX * max(share[border].mean(), 1e-9)
            and (share[border].mean() >= BORDER_MIN)
        ):
            return True
    return False


def grid_cell(image: np.ndarray, max_cell: int = MAX_CELL) -> int | None:
    """The cell size in pixels (>= 2) of a uint8 (H, W, C) picture drawn on an exact square grid, else None.
    An alpha channel is ignored (only the colours are tested)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[0] < 2 * MIN_CELLS or img.shape[1] < 2 * MIN_CELLS:
        return None
    rgb = img[..., :3]
    rows, cols = _pairs(rgb, 0), _pairs(rgb, 1)
    if rows.max(initial=0) == 0 and cols.max(initial=0) == 0:
        return None  # flat: nothing to decide
    for share in (
        rows,
        cols,
    ):  # quick no: any grid keeps at least half the positions inside cells, nearly quiet
        if np.sort(share)[: share.size // 2].sum() > INSIDE_MAX * share.max() * share.size:
            return None
    for k in range(min(max_cell, min(img.shape[:2]) // MIN_CELLS), 1, -1):
        if _fits(rows, k) and _fits(cols, k):
            return k
    return None


def nearest_upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Every pixel repeated scale x scale times (any channel count)."""
    return np.ascontiguousarray(np.repeat(np.repeat(np.asarray(image), scale, axis=-3), scale, axis=-2))
