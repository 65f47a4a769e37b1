"""Pixel art on an exact grid: found, resized, enlarged and generated without losing its cells or palette.

Pixel art is drawn as square cells of one colour each (often stored already enlarged, every cell k x k screen pixels).
Resized with any interpolating filter, or enlarged by a super-resolution network trained on smooth art, its hard
cell edges turn soft and its palette grows; pixel artists and game engines scale it by whole cells. Here:
`pixel_grid` / `grid_cell` find the grid; the upscaler enlarges such pictures by `nearest_upscale`; the import
resizes them cell by cell (`pixel_resize`); training records a pixel-art set's grid and palette (`dataset_grid`)
and generation puts outputs onto them (`snap`).

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


MODES = ("auto", "off")  # --pixel-art: pixel art handled as pixel art where it is found, or like any picture
QUICK_LINES = 48  # lines across the other axis read by the quick test


def check_mode(mode: str) -> str:
    """A --pixel-art value, or a UserError naming the choices."""
    if mode not in MODES:
        from charforge.errors import UserError

        raise UserError(f"--pixel-art {mode!r}: choose {' or '.join(MODES)}", field="pixel_art")
    return mode


def _pairs(img: np.ndarray, axis: int, lines: int | None = None) -> np.ndarray:
    """(positions along `axis` - 1,) share of neighbouring pixel pairs that differ at each position; with `lines`,
    from that many evenly spread lines across the other axis only (the quick test)."""
    if lines is not None and img.shape[1 - axis] > lines:
        pick = np.linspace(0, img.shape[1 - axis] - 1, lines).round().astype(int)
        img = img[:, pick] if axis == 0 else img[pick]
    d = np.abs(np.diff(img.astype(np.int16), axis=axis)).max(axis=-1) > PAIR_TOL  # (H-1, W) or (H, W-1)
    return d.mean(axis=1 - axis)


def _fits(share: np.ndarray, k: int) -> int | None:
    """The grid offset (0..k-1: where the first whole cell starts) that puts (almost) every change of this axis
    on a border of k-px cells, else None."""
    n = share.size + 1  # pixels along the axis
    if n < k * MIN_CELLS:
        return None
    pos = np.arange(share.size)  # pair between pixel i and i+1
    for off in range(k):
        border = (pos - off) % k == k - 1
        inside = share[~border]
        edges = share[border].mean()
        if inside.size and inside.mean() <= INSIDE_MAX * max(edges, 1e-9) and edges >= BORDER_MIN:
            return off  # borders after pixels off - 1, off - 1 + k, ...: whole cells start at off
    return None


def _quiet_enough(share: np.ndarray) -> bool:
    """Quick no: any grid keeps at least half the positions inside cells, and those nearly quiet."""
    return bool(np.sort(share)[: share.size // 2].sum() <= INSIDE_MAX * share.max() * share.size)


def pixel_grid(image: np.ndarray, max_cell: int = MAX_CELL) -> tuple[int, int, int] | None:
    """(cell px >= 2, row offset, column offset) of a uint8 (H, W, C) picture drawn on an exact square grid (the
    offsets: where the first whole cell starts, 0..cell-1), else None. An alpha channel is ignored."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[0] < 2 * MIN_CELLS or img.shape[1] < 2 * MIN_CELLS:
        return None
    rgb = img[..., :3]
    # first on a few lines across each axis (a photo, a painting or a smooth picture is ruled out in a few ms
    # even when large), then the grid that fits there is checked on every line
    quick = _grid_of(_pairs(rgb, 0, QUICK_LINES), _pairs(rgb, 1, QUICK_LINES), img.shape, max_cell)
    if quick is None:
        return None
    return _grid_of(_pairs(rgb, 0), _pairs(rgb, 1), img.shape, max_cell, only=quick[0])


def _grid_of(rows: np.ndarray, cols: np.ndarray, shape, max_cell: int, only: int | None = None):
    """The largest cell size (or only `only`) whose grid fits both axes' change shares: (k, oy, ox) or None."""
    if rows.max(initial=0) == 0 and cols.max(initial=0) == 0:
        return None  # flat: nothing to decide
    if not (_quiet_enough(rows) and _quiet_enough(cols)):
        return None
    sizes = [only] if only else range(min(max_cell, min(shape[:2]) // MIN_CELLS), 1, -1)
    for k in sizes:
        oy = _fits(rows, k)
        if oy is None:
            continue
        ox = _fits(cols, k)
        if ox is not None:
            return k, oy, ox
    return None


def grid_cell(image: np.ndarray, max_cell: int = MAX_CELL) -> int | None:
    """The cell size in pixels (>= 2) of a picture on an exact pixel grid (pixel_grid), else None."""
    g = pixel_grid(image, max_cell)
    return g[0] if g else None


def cell_colours(image: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """One pixel per cell of a pixel-art picture (each cell's centre pixel); a cell cut by the picture's edge
    counts when at least half of it is inside."""
    k, oy, ox = grid
    h, w = image.shape[:2]
    y0 = oy - k if oy >= (k + 1) // 2 else oy  # a leading part-cell of half a cell or more counts
    x0 = ox - k if ox >= (k + 1) // 2 else ox
    ys = np.clip(np.arange(y0, h - (k - 1) // 2, k) + k // 2, 0, h - 1)
    xs = np.clip(np.arange(x0, w - (k - 1) // 2, k) + k // 2, 0, w - 1)
    return np.ascontiguousarray(np.asarray(image)[ys][:, xs])


def pixel_resize(image: np.ndarray, size: int) -> np.ndarray | None:
    """A square pixel-art picture brought to size x size px keeping its cells crisp and its palette exact (one
    pixel per cell, then nearest-neighbour: cells of size / cells px, uneven by one px where that does not
    divide); None when the picture is not on an exact grid (resize it the usual way)."""
    from PIL import Image

    grid = pixel_grid(image)
    if grid is None:
        return None
    small = cell_colours(image, grid)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST))


def nearest_upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Every pixel repeated scale x scale times (any channel count)."""
    return np.ascontiguousarray(np.repeat(np.repeat(np.asarray(image), scale, axis=-3), scale, axis=-2))


# ---- a training set of pixel art, and generated pictures snapped to its grid and palette ---------------------
DATA_SAMPLE = 256  # training pictures looked at
DATA_SHARE = 0.8  # share of them that must sit on one and the same grid
PALETTE_MAX = 1024  # colours kept (the commonest; the rest map to their nearest kept colour)


def dataset_grid(images: np.ndarray, seed: int = 0) -> dict | None:
    """{"cell", "offset", "share", "palette"} when most pictures of a (N, S, S, 3) uint8 training set are pixel
    art on one grid (same cell size and offset), else None. palette: the set's commonest colours, [[r, g, b], ...]."""
    n = len(images)
    if n == 0:
        return None
    idx = np.sort(np.random.default_rng(seed).choice(n, min(n, DATA_SAMPLE), replace=False))
    grids = [pixel_grid(np.asarray(images[i])) for i in idx]
    found = [g for g in grids if g is not None]
    if not found:
        return None
    values, counts = np.unique(np.array(found), axis=0, return_counts=True)
    best = values[int(np.argmax(counts))]
    share = float(counts.max() / len(grids))
    if share < DATA_SHARE:
        return None
    pixels = np.concatenate(
        [np.asarray(images[i]).reshape(-1, 3) for i, g in zip(idx, grids) if g is not None]
    )
    colours, freq = np.unique(pixels, axis=0, return_counts=True)
    keep = colours[np.argsort(-freq, kind="stable")[:PALETTE_MAX]]
    return {
        "cell": int(best[0]),
        "offset": [int(best[1]), int(best[2])],
        "share": round(share, 3),
        "palette": keep.astype(int).tolist(),
    }


def snap(images: np.ndarray, grid: dict) -> np.ndarray:
    """(N, S, S, 3) uint8 pictures brought onto a training set's pixel grid and palette (dataset_grid): each cell
    takes the palette colour nearest its pixels' mean, and is filled with it.

    The rule is exact integer arithmetic, so the browser's port (charforge/web/static/generator.js, snapPixelArt)
    gives the same bytes: for a cell of n pixels with channel sums s, the colour p minimising
    sum over channels of (s - n * p)^2 (that is n^2 times the squared RGB distance of the mean), ties to the
    lowest palette index. Cells are k x k from `offset` (row, column), with part cells at the edges."""
    imgs = np.asarray(images)
    k = int(grid["cell"])
    oy, ox = (int(v) for v in grid["offset"])
    palette = np.asarray(grid["palette"], np.int64).reshape(-1, 3)
    n, h, w, _ = imgs.shape
    ys = np.unique(
        np.clip(np.r_[0, np.arange(oy, h, k)], 0, h)
    )  # cell starts along each axis (part cells too)
    xs = np.unique(np.clip(np.r_[0, np.arange(ox, w, k)], 0, w))
    f = imgs.astype(np.int64)
    rows = np.add.reduceat(f, ys, axis=1)  # sums over each cell's rows
    sums = np.add.reduceat(rows, xs, axis=2)  # (N, cy, cx, 3)
    hy, wx = np.diff(np.r_[ys, h]), np.diff(np.r_[xs, w])
    counts = np.broadcast_to((hy[:, None] * wx[None, :])[None, :, :, None], sums.shape[:3] + (1,))
    idx = nearest_exact(sums.reshape(-1, 3), counts.reshape(-1, 1), palette)
    cells = palette[idx].reshape(sums.shape).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(cells, hy, axis=1), wx, axis=2))


NEAR_CANDIDATES = (
    2  # colours the k-d tree proposes per cell for the exact check (2 or more; 4 and 8 were slower)
)


def nearest_exact(sums: np.ndarray, counts: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the palette colour p minimising sum((s - n * p)^2) for each cell (channel sums s (M, 3), pixel
    counts n (M, 1), integers), ties to the lowest index: the exact rule of `snap`.

    A k-d tree on the means proposes the NEAR_CANDIDATES nearest colours (1.7 ms a 64 px noise picture with 2 px
    cells and 1,024 colours, with the machine busy, where the whole table took 16-40 ms); the integer distances
    pick among them. Where the proposals' last distance is not clearly beyond the first (a near tie the float
    search could misorder), that cell is checked against the whole palette."""
    from scipy.spatial import cKDTree

    sums = np.asarray(sums, np.int64)
    counts = np.asarray(counts, np.int64)
    pal = np.asarray(palette, np.int64)
    kk = min(NEAR_CANDIDATES, len(pal))
    dist, cand = cKDTree(pal.astype(np.float64)).query(sums / counts, k=kk)
    dist, cand = dist.reshape(len(sums), kk), cand.reshape(len(sums), kk)
    exact = ((sums[:, None, :] - counts[:, None, :] * pal[cand]) ** 2).sum(-1)  # (M, kk)
    best = exact.min(axis=1, keepdims=True)
    pick = np.where(exact == best, cand, len(pal)).min(axis=1)  # ties: the lowest palette index
    unsure = dist[:, -1] <= dist[:, 0] + 1e-6 if kk < len(pal) else np.zeros(len(sums), bool)
    for i in np.flatnonzero(unsure):
        d = ((sums[i] - counts[i] * pal) ** 2).sum(-1)
        pick[i] = int(np.argmin(d))  # argmin keeps the first (lowest index) of equal minima
    return pick
