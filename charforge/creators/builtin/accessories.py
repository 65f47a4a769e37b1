"""Accessories in the head frame: glasses, hats (beret, witch hat, cap) and a hair bow. All outlined in ink."""

from __future__ import annotations

import math

import torch

from charforge.creators.builtin.sdf import box, circle, ellipse, rotate, segment, triangle, union

FRAME = 0.021  # half thickness of a glasses frame, head units (>= 1.3 px at 64 px)
OUTLINE = 0.016  # ink outline width of hats and bows, head units
RIBBON_AT = (0.33, -0.5, 0.42)  # bow centre u, v (head units) and rotation (radians)


def draw_glasses(cv, lk) -> None:
    for kind in ("round", "square"):
        idx = cv.subset(lk.is_("glasses", kind))
        if idx is False:
            continue
        win = cv.window((-0.45, 0.45, -0.2, 0.25), idx)
        u, v = win.uv
        t, tk = lk.t, win.take
        es, ey, size = tk(t["eye_spacing"]), tk(t["eye_height"]) + 0.01, tk(t["eye_size"])
        au = u.abs()
        if kind == "round":
            lens, reach = circle(au - es, v - ey, 0.135 * size), 0.135 * size
        else:
            lens, reach = box(au - es, v - ey, 0.14 * size, 0.11 * size, 0.03), 0.14 * size
        rim = union(
            lens.abs() - FRAME,
            segment(au, v, 0.0, ey - 0.02, es - reach, ey - 0.02, FRAME * 0.9),
            segment(au, v, es + reach, ey - 0.03, tk(t["face_width"]) + 0.02, ey - 0.05, FRAME * 0.8),
        )
        win.paint(win.cov(lens) * 0.16, torch.tensor([[0.85, 0.93, 1.0]]))
        win.paint(win.cov(rim), tk(lk.c["glasses"]))
        win.commit()


def _beret(u, v, rx):
    c, s = 0.985, -0.17  # tilted 10 degrees
    lu, lv = rotate(u - 0.05, v + 0.55, c, s)
    body = ellipse(lu, lv, rx + 0.1, 0.16)
    return union(body, circle(u - 0.08, v + 0.72, 0.03)), torch.maximum(body, 0.06 - lv)


def _witch(u, v, rx):
    cone = triangle(u, v, ((-0.28, -0.58), (0.28, -0.58), (0.3, -1.0)))
    brim = ellipse(u, v + 0.56, rx + 0.24, 0.11)
    band = torch.maximum(cone, (v + 0.58).abs() - 0.045)
    return union(cone, brim), band, brim


def _cap(u, v, rx):
    dome = torch.maximum(ellipse(u, v + 0.36, rx + 0.02, 0.3), v + 0.36)
    visor = ellipse(u, v + 0.34, rx + 0.1, 0.07)
    return union(dome, visor, circle(u, v + 0.66, 0.03)), visor


def draw_hats(cv, lk) -> None:
    for kind in ("beret", "witch", "cap"):
        idx = cv.subset(lk.is_("hat", kind))
        if idx is False:
            continue
        win = cv.window((-0.8, 0.8, -1.2, -0.2), idx)
        u, v = win.uv
        rx, tk, c = win.take(lk.t["cap_rx"]), win.take, lk.c
        if kind == "beret":
            shape, shade = _beret(u, v, rx)
            win.fill(shape, tk(c["hat"]), tk(c["ink"]), OUTLINE)
            win.paint(win.cov(shade) * 0.7, tk(c["hat_shadow"]))
        elif kind == "witch":
            shape, band, brim = _witch(u, v, rx)
            win.fill(shape, tk(c["hat"]), tk(c["ink"]), OUTLINE)
            win.paint(win.cov(band), tk(c["hat_band"]))
            win.fill(brim, tk(c["hat_shadow"]), tk(c["ink"]), OUTLINE)
        else:
            shape, visor = _cap(u, v, rx)
            win.fill(shape, tk(c["hat"]), tk(c["ink"]), OUTLINE)
            win.fill(visor, tk(c["hat_shadow"]), tk(c["ink"]), OUTLINE * 0.7)
        win.commit()


def draw_ribbon(cv, lk) -> None:
    """A bow: two triangular loops around a knot, with two short tails."""
    idx = cv.subset(lk.is_("ribbon", "on"))
    if idx is False:
        return
    bu, bv, ang = RIBBON_AT
    win = cv.window((bu - 0.25, bu + 0.25, bv - 0.22, bv + 0.25), idx)
    u, v = win.uv
    lu, lv = rotate(u - bu, v - bv, math.cos(ang), math.sin(ang))
    loops = triangle(lu.abs(), lv, ((0.02, 0.0), (0.18, -0.1), (0.18, 0.1))) - 0.015
    tails = union(
        segment(lu, lv, 0.0, 0.0, -0.06, 0.16, 0.028, 0.02),
        segment(lu, lv, 0.0, 0.0, 0.07, 0.15, 0.028, 0.02),
    )
    knot = circle(lu, lv, 0.045)
    c, tk = lk.c, win.take
    win.fill(union(loops, tails), tk(c["ribbon"]), tk(c["ink"]), OUTLINE)
    win.fill(knot, tk(c["ribbon_dark"]), tk(c["ink"]), OUTLINE * 0.8)
    win.commit()
