"""Hair layers in the head frame: back silhouette, twintails / ponytail, drills, side locks, bangs."""

from __future__ import annotations

import torch

from charforge.creators.builtin.sdf import ellipse, inter, segment, teeth, union

BANGS = {  # style: (tooth period, tooth depth, slant du/dv, centre parting depth), head units
    "straight": (0.105, 0.065, 0.0, 0.0),
    "swept": (0.15, 0.07, 0.3, 0.0),
    "parted": (0.13, 0.06, 0.0, 1.3),
    "choppy": (0.2, 0.11, 0.0, 0.0),
}
PART_HALF_WIDTH = 0.17  # half width of the forehead gap of parted bangs, head units


def _sq(x):
    return x * x


def draw_back(cv, lk) -> None:
    """The hair behind head and body, one window per length class (short hair needs a small one)."""
    for cls, v1 in (("short", 0.4), ("medium", 0.85), ("long", 1.6)):
        idx = cv.subset(lk.is_("hair_length", cls))
        if idx is False:
            continue
        win = cv.window((-0.95, 0.95, -0.75, v1), idx)
        u, v = win.uv
        t = {k: win.take(lk.t[k]) for k in ("cap_rx", "cap_ry", "hair_spread", "hair_end")}
        cap = ellipse(u, v + 0.06, t["cap_rx"] + 0.03, t["cap_ry"] + 0.03)
        w = t["cap_rx"] + 0.03 + t["hair_spread"] * (v + 0.1).clamp(min=0)
        side = (u.abs() - w) / torch.sqrt(1.0 + t["hair_spread"] * t["hair_spread"])
        tip, slope = teeth(u, 0.13, 0.06)
        bottom = (v - t["hair_end"] - tip) / torch.sqrt(1.0 + slope * slope)
        d = union(cap, inter(side, bottom, -0.1 - v))
        win.fill(d, win.take(lk.c["hair_shadow"]), win.take(lk.c["ink"]), 0.01)
        win.commit()


def draw_tails(cv, lk) -> None:
    """Twintails (both sides, mirrored) and a high ponytail (viewer's right), behind the body."""
    idx = cv.subset(lk.is_("hair_extra", "twintails"))
    if idx is not False:
        win = cv.window((-1.05, 1.05, -0.6, 1.1), idx)
        u, v = win.uv
        rx, tl = win.take(lk.t["cap_rx"]), win.take(lk.t["tail_length"])
        au = u.abs()
        d = union(
            segment(au, v, rx - 0.02, -0.44, rx + 0.15, -0.12, 0.065, 0.12),
            segment(au, v, rx + 0.15, -0.12, rx + 0.13, 0.12 + 0.85 * tl, 0.12, 0.025),
        )
        win.fill(d, win.take(lk.c["hair"]), win.take(lk.c["ink"]), 0.012)
        tie = segment(au, v, rx - 0.04, -0.47, rx + 0.03, -0.4, 0.04)
        win.fill(tie, win.take(lk.c["hair_dark"]))
        win.commit()
    idx = cv.subset(lk.is_("hair_extra", "ponytail"))
    if idx is not False:
        win = cv.window((0.1, 1.05, -0.85, 1.0), idx)
        u, v = win.uv
        rx, tl = win.take(lk.t["cap_rx"]), win.take(lk.t["tail_length"])
        d = union(
            segment(u, v, 0.3, -0.62, rx + 0.24, -0.3, 0.1, 0.17),
            segment(u, v, rx + 0.24, -0.3, rx + 0.3, -0.25 + 0.95 * tl, 0.17, 0.03),
        )
        win.fill(d, win.take(lk.c["hair"]), win.take(lk.c["ink"]), 0.012)
        win.fill(segment(u, v, 0.27, -0.58, 0.36, -0.68, 0.04), win.take(lk.c["hair_dark"]))
        win.commit()


def draw_drills(cv, lk) -> None:
    """Drill ringlets: scalloped cones at both sides of the face with diagonal spiral bands."""
    idx = cv.subset(lk.is_("hair_extra", "drill"))
    if idx is False:
        return
    win = cv.window((-0.8, 0.8, -0.4, 1.0), idx)
    u, v = win.uv
    rx, tl = win.take(lk.t["cap_rx"]), win.take(lk.t["tail_length"])
    au = u.abs()
    cx, top, length = rx + 0.05, -0.22, 0.45 + 0.5 * tl
    h = ((v - top) / length).clamp(0.0, 1.0)
    wave, _ = teeth(v, 0.12, 1.0, 0.25)  # 0..1 bumps along the drill
    r = (0.14 - 0.09 * h) * (0.8 + 0.2 * wave)
    d = torch.maximum(torch.sqrt(_sq(au - cx) + _sq(v - (top + length * h))) - r, top - 0.04 - v)
    win.fill(d, win.take(lk.c["hair"]), win.take(lk.c["ink"]), 0.012)
    band, _ = teeth(v + 0.6 * (au - cx), 0.12, 1.0)  # spiral stripes across the cone
    win.paint(win.cov(d) * ((band - 0.55) * 3.0).clamp(0.0, 1.0), win.take(lk.c["hair_shadow"]))
    win.commit()


def draw_side_locks(cv, lk) -> None:
    """Locks framing the face; their length shows the length class (jaw, shoulder, chest)."""
    win = cv.window((-0.55, 0.55, -0.35, 1.05))
    u, v = win.uv
    t, c = lk.t, lk.c
    au = u.abs()
    d = segment(
        au, v, t["face_width"] - 0.02, -0.3, t["face_width"] + t["lock_drift"], t["lock_end"], 0.075, 0.025
    )
    win.fill(d, c["hair"], c["ink"], 0.01)
    win.commit()


def _bangs_edge(u, lk, take):
    """Fringe bottom edge v(u) and its slope for each image's style, as (n, h, w)."""
    styles = lk.opt("bangs_style")
    per = torch.tensor([BANGS[s] for s in styles], dtype=torch.float32)
    period, depth, slant, part = (take(per[:, k].view(-1, 1, 1)) for k in range(4))
    au = u.abs()
    base = -0.24 + take(lk.t["bangs_length"])
    tip, tslope = teeth(u, period, depth, 0.5)
    gap = (PART_HALF_WIDTH - au).clamp(min=0.0)
    side = (au - 0.2).clamp(min=0.0)
    sgn = torch.sign(u)
    edge = base + tip + slant * u - part * gap + 3.0 * side * side
    slope = tslope + slant + part * sgn * (gap > 0) + 6.0 * side * sgn
    return edge, slope


def draw_bangs(cv, lk) -> None:
    win = cv.window((-0.6, 0.6, -0.7, 0.15))
    u, v = win.uv
    t, c = lk.t, lk.c
    cap = ellipse(u, v + 0.08, t["cap_rx"], t["cap_ry"])
    edge, slope = _bangs_edge(u, lk, win.take)
    d = torch.maximum(cap, (v - edge) / torch.sqrt(1.0 + slope * slope))
    a = win.fill(d, c["hair"], c["ink"], 0.01)
    ring = torch.maximum(ellipse(u, v + 0.12, t["cap_rx"] * 0.8, t["cap_ry"] * 0.7).abs() - 0.022, v + 0.3)
    win.paint(win.cov(ring) * a * 0.85, c["hair_hi"])
    win.commit()
    idx = cv.subset(lk.is_("ahoge", "on"))
    if idx is False:
        return
    win = cv.window((-0.1, 0.25, -0.85, -0.5), idx)
    u, v = win.uv
    cy = -win.take(lk.t["cap_ry"]) - 0.08
    d = union(
        segment(u, v, 0.0, cy + 0.04, 0.05, cy - 0.13, 0.02, 0.014),
        segment(u, v, 0.05, cy - 0.13, 0.15, cy - 0.09, 0.014, 0.006),
    )
    win.fill(d, win.take(lk.c["hair"]), win.take(lk.c["ink"]), 0.008)
    win.commit()
