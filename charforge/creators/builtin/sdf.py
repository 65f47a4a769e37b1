"""Signed-distance primitives and the batched canvas the renderer paints on.

Everything is float32 torch on CPU and uses only +, -, *, /, sqrt, abs, min, max, floor and clamp per pixel:
those are exactly rounded, so a pixel's value never depends on SIMD lanes or on the rest of the batch.
Distances are in frame units (the portrait spans [-1, 1]); coverage ramps over one pixel.
"""

from __future__ import annotations

import numpy as np
import torch

Tensor = torch.Tensor

NECK_Y = 0.42  # image y of the neck pivot the head tilts and scales around, frame units
PIVOT_V = 0.42  # head-frame v of that pivot (the face centre is v = 0)
HEAD_ZOOM = 1.15  # head-frame units per image unit at head_scale 1


# ---- primitives: all return signed distance, negative inside ----------------------------------------
def circle(x: Tensor, y: Tensor, r) -> Tensor:
    return torch.sqrt(x * x + y * y) - r


def ellipse(x: Tensor, y: Tensor, rx, ry) -> Tensor:
    """Implicit ellipse divided by its gradient length: exact on the outline, good within a few pixels."""
    a, b = x / rx, y / ry
    f = a * a + b * b - 1.0
    ga, gb = a / rx, b / ry
    return f / (2.0 * torch.sqrt(ga * ga + gb * gb) + 1e-4)


def segment(x: Tensor, y: Tensor, ax, ay, bx, by, r0, r1=None) -> Tensor:
    """Capsule from a to b with radius r0 at a tapering linearly to r1 at b (approximate when tapered)."""
    pax, pay = x - ax, y - ay
    bax, bay = bx - ax, by - ay
    h = ((pax * bax + pay * bay) / (bax * bax + bay * bay)).clamp(0.0, 1.0)
    dx, dy = pax - bax * h, pay - bay * h
    r = r0 if r1 is None else r0 + (r1 - r0) * h
    return torch.sqrt(dx * dx + dy * dy) - r


def box(x: Tensor, y: Tensor, hx, hy, r=0.0) -> Tensor:
    """Rounded box centred at the origin with half sizes hx, hy and corner radius r."""
    qx, qy = x.abs() - hx + r, y.abs() - hy + r
    ox, oy = qx.clamp(min=0), qy.clamp(min=0)
    outside = torch.sqrt(ox * ox + oy * oy)
    return outside + torch.maximum(qx, qy).clamp(max=0) - r


def triangle(x: Tensor, y: Tensor, pts) -> Tensor:
    """Convex triangle (counter-clockwise in y-down frame does not matter): max of the three edge distances."""
    (x0, y0), (x1, y1), (x2, y2) = pts
    cx, cy = (x0 + x1 + x2) / 3.0, (y0 + y1 + y2) / 3.0
    d = None
    for (ax, ay), (bx, by) in (((x0, y0), (x1, y1)), ((x1, y1), (x2, y2)), ((x2, y2), (x0, y0))):
        nx, ny = by - ay, ax - bx
        norm = (nx * nx + ny * ny) ** 0.5
        nx, ny = nx / norm, ny / norm
        if (cx - ax) * nx + (cy - ay) * ny > 0:  # make the normal point outward
            nx, ny = -nx, -ny
        e = (x - ax) * nx + (y - ay) * ny
        d = e if d is None else torch.maximum(d, e)
    return d


def teeth(x: Tensor, period, amp, phase=0.0) -> tuple[Tensor, Tensor]:
    """Saw-tooth strand tips: offset in [0, amp] (amp at each tip) and its slope d/dx."""
    t = x / period + phase
    f = t - torch.floor(t)
    s = torch.sign(f - 0.5)
    return amp * (1.0 - (2.0 * f - 1.0).abs()), (-2.0 * amp / period) * s


def rotate(x: Tensor, y: Tensor, c, s) -> tuple[Tensor, Tensor]:
    """Coordinates in a frame rotated by the angle with cos c, sin s."""
    return x * c + y * s, y * c - x * s


def inter(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.maximum(out, d)
    return out


def union(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.minimum(out, d)
    return out


# ---- canvas -----------------------------------------------------------------------------------------
class Canvas:
    """(N, 3, S, S) float image plus per-image head transforms; layers paint through `window`s."""

    def __init__(
        self, size: int, head_x: np.ndarray, tilt_deg: np.ndarray, scale: np.ndarray, line: float = 1.0
    ):
        self.size, self.n = size, len(head_x)
        self.line = float(line)  # outline width factor of the render style (0: no outlines)
        self.px = 2.0 / size  # one pixel in frame units
        self.img = torch.zeros((self.n, 3, size, size), dtype=torch.float32)  # (N, 3, S, S)
        self.grid = (torch.arange(size, dtype=torch.float32) + 0.5) * self.px - 1.0  # pixel centres (S,)
        a = np.deg2rad(tilt_deg.astype(np.float64))
        self.np_head = (head_x.astype(np.float64), np.cos(a), np.sin(a), scale.astype(np.float64) * HEAD_ZOOM)
        self.head = tuple(torch.tensor(v, dtype=torch.float32).view(-1, 1, 1) for v in self.np_head)

    def head_to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per image, the image position of head-frame points u, v: (N, k) arrays each."""
        hx, c, s, k = (t[:, None] for t in self.np_head)
        ru, rv = u[None] * k, (v[None] - PIVOT_V) * k
        return hx + ru * c - rv * s, NECK_Y + ru * s + rv * c

    def subset(self, mask: np.ndarray) -> torch.Tensor | None | bool:
        """Indices of images where mask holds: None means all of them, False means none."""
        if mask.all():
            return None
        if not mask.any():
            return False
        return torch.from_numpy(np.flatnonzero(mask))

    def window(self, box: tuple[float, float, float, float], idx=None, head: bool = True) -> Window:
        """A pixel window covering `box` = (x0, x1, y0, y1) in head (or image) frame for images `idx`."""
        x0, x1, y0, y1 = box
        if head:
            sel = slice(None) if idx is None else idx.numpy()
            xs, ys = self.head_to_image(np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]))
            xs, ys = xs[sel], ys[sel]
            x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        lo = lambda t: int(np.clip(np.floor((t + 1.0) / self.px) - 1, 0, self.size))  # noqa: E731
        hi = lambda t: int(np.clip(np.ceil((t + 1.0) / self.px) + 1, 0, self.size))  # noqa: E731
        return Window(self, idx, lo(y0), max(hi(y1), lo(y0) + 1), lo(x0), max(hi(x1), lo(x0) + 1))


class Window:
    """A rectangle of the canvas for a subset of images; paint into `reg`, then `commit()`."""

    def __init__(self, cv: Canvas, idx, r0: int, r1: int, c0: int, c1: int):
        self.cv, self.idx = cv, idx
        self.r0, self.r1, self.c0, self.c1 = r0, r1, c0, c1
        self.x = cv.grid[c0:c1].view(1, 1, -1)  # (1, 1, w)
        self.y = cv.grid[r0:r1].view(1, -1, 1)  # (1, h, 1)
        # a contiguous (n, 3, h, w) copy: short strided rows would make every paint several times slower
        self.reg = cv.img[:, :, r0:r1, c0:c1].clone() if idx is None else cv.img[idx, :, r0:r1, c0:c1]
        self._uv = None

    def take(self, t: Tensor) -> Tensor:
        return t if self.idx is None else t[self.idx]

    @property
    def uv(self) -> tuple[Tensor, Tensor]:
        """Head-frame coordinates of the window's pixels, (n, h, w) each."""
        if self._uv is None:
            hx, c, s, k = (self.take(t) for t in self.cv.head)
            dx, dy = self.x - hx, self.y - NECK_Y
            self._uv = ((dx * c + dy * s) / k, (dy * c - dx * s) / k + PIVOT_V)
        return self._uv

    def cov(self, d: Tensor) -> Tensor:
        """Anti-aliased coverage in [0, 1] of the shape with signed distance d."""
        return (0.5 - d / self.cv.px).clamp_(0.0, 1.0)

    def paint(self, alpha: Tensor, color: Tensor) -> None:
        """Over-composite `color` ((n, 3) or (n, 3, h, w)) with coverage alpha (n, h, w)."""
        if color.dim() == 2:
            color = color.view(-1, 3, 1, 1)
        self.reg += (color - self.reg) * alpha.unsqueeze(1)

    def fill(self, d: Tensor, color: Tensor, outline: Tensor | None = None, width: float = 0.0) -> Tensor:
        """Paint a shape (optionally with an outline `width` wide outside it); returns its fill coverage."""
        if outline is not None and self.cv.line > 0:
            self.paint(self.cov(d - (width if self.cv.line == 1.0 else width * self.cv.line)), outline)
        a = self.cov(d)
        self.paint(a, color)
        return a

    def commit(self) -> None:
        if self.idx is None:
            self.cv.img[:, :, self.r0 : self.r1, self.c0 : self.c1] = self.reg
        else:
            self.cv.img[self.idx, :, self.r0 : self.r1, self.c0 : self.c1] = self.reg
