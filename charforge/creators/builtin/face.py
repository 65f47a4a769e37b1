"""Face layers in the head frame: skin shape, eyes, brows, nose, mouth, blush.

Left-right symmetric parts are evaluated once on |u| (the mirrored coordinate), which halves their cost.
"""

from __future__ import annotations

import torch

from charforge.creators.builtin.sdf import circle, ellipse, inter, rotate, segment, union

CHIN_HALF_WIDTH = 0.035  # half width of the blunt chin tip, head units
LASH = 0.022  # half thickness of the upper lash line at eye_size 1, head units


def face_distance(u, v, width, chin, roundness):
    """Signed distance of the face: an ellipse above the cheek line, a curved V jaw below it."""
    upper = torch.maximum(ellipse(u, v, width, 0.44), v)
    tt = (v / chin).clamp(0.0, 1.0)
    span = width - CHIN_HALF_WIDTH
    w = CHIN_HALF_WIDTH + span * (1.0 - tt) * (1.0 + roundness * tt)
    dw = span * ((roundness - 1.0) - 2.0 * roundness * tt) / chin
    jaw = torch.maximum((u.abs() - w) / torch.sqrt(1.0 + dw * dw), v - chin)
    return torch.minimum(upper, torch.maximum(jaw, -v))


def draw_face(cv, lk) -> None:
    win = cv.window((-0.45, 0.45, -0.5, 0.5))
    u, v = win.uv
    t, c = lk.t, lk.c
    d = face_distance(u, v, t["face_width"], t["chin_length"], t["face_round"])
    win.fill(d, c["skin"], c["skin_line"], 0.008)
    win.commit()


def _eye_frame(u, v, t, take):
    """Mirrored eye-local coordinates: x points to the outer corner, tilted by the eye tilt."""
    ex, ey = u.abs() - take(t["eye_spacing"]), v - take(t["eye_height"])
    return rotate(ex, ey, take(t["eye_c"]), -take(t["eye_s"]))


def draw_eyes(win, lk) -> None:
    u, v = win.uv
    t, c, tk = lk.t, lk.c, win.take
    lx, ly = _eye_frame(u, v, t, tk)
    rx, ry, size = tk(t["eye_rx"]), tk(t["eye_ry"]), tk(t["eye_size"])
    white = ellipse(lx, ly, rx, ry)
    win.paint(win.cov(white), c["white"])
    rxi, ryi = rx * tk(t["iris_size"]), ry * tk(t["iris_size"])
    cy = 0.1 * ry
    iris = torch.maximum(ellipse(lx, ly - cy, rxi, ryi), white)
    g = ((ly - cy + ryi) / (1.3 * ryi)).clamp(0.0, 1.0).unsqueeze(1)  # 0 at the iris top, (n, 1, h, w)
    dark, base = c["iris_dark"].view(-1, 3, 1, 1), c["iris"].view(-1, 3, 1, 1)
    win.paint(win.cov(iris), dark + (base - dark) * g)
    glow = torch.maximum(ellipse(lx, ly - cy - 0.5 * ryi, 0.62 * rxi, 0.34 * ryi), iris)
    win.paint(win.cov(glow) * 0.8, c["iris_light"])
    ps = tk(t["pupil_size"])
    win.paint(
        win.cov(torch.maximum(ellipse(lx, ly - cy + 0.05 * ryi, rxi * ps, ryi * ps * 1.1), white)), c["pupil"]
    )
    side = torch.sign(u)  # highlights sit on the same (viewer's left) side in both eyes
    hl = tk(t["highlight_size"]) * rxi
    shine = union(
        circle(lx + 0.32 * rxi * side, ly - cy + 0.4 * ryi, 0.3 * hl),
        circle(lx - 0.3 * rxi * side, ly - cy - 0.38 * ryi, 0.13 * hl),
    )
    win.paint(win.cov(torch.maximum(shine, white)), c["white"])
    outline = ellipse(lx, ly, rx * 1.02, ry * 1.02).abs()
    upper = torch.maximum(outline - LASH * size, ly + 0.28 * ry)
    flick = segment(lx, ly, 0.75 * rx, -0.5 * ry, 1.25 * rx, -0.72 * ry, 0.018 * size, 0.008)
    lower = inter(outline - 0.007, 0.62 * ry - ly, lx.abs() - 0.55 * rx)
    win.paint(win.cov(union(upper, flick)), c["ink"])
    win.paint(win.cov(lower) * 0.8, c["ink"])


def draw_brows(win, lk) -> None:
    u, v = win.uv
    t, tk = lk.t, win.take
    bx = u.abs() - tk(t["eye_spacing"]) - 0.01
    by = v - (tk(t["eye_height"]) - tk(t["eye_ry"]) - 0.05 - tk(t["brow_height"]))
    lx, ly = rotate(bx, by, tk(t["brow_c"]), tk(t["brow_s"]))
    arch = 2.4  # curvature of the brow arc, 1/head units
    d = torch.maximum(
        (ly - arch * lx * lx).abs() / torch.sqrt(1.0 + 4.0 * arch * arch * lx * lx) - 0.012, lx.abs() - 0.075
    )
    win.paint(win.cov(d), lk.c["hair_dark"])


def draw_nose(win, lk) -> None:
    u, v = win.uv
    ns = win.take(lk.t["nose_size"])
    d = segment(u, v, 0.0, 0.13 + 0.02 * (1 - ns), -0.012 * ns, 0.165, 0.008 * ns, 0.011 * ns)
    win.paint(win.cov(d), lk.c["skin_line"])


def draw_blush(cv, lk) -> None:
    idx = cv.subset(lk.is_("blush", "on"))
    if idx is False:
        return
    win = cv.window((-0.38, 0.38, 0.05, 0.3), idx)
    u, v = win.uv
    t, tk = lk.t, win.take
    bx, by = u.abs() - tk(t["eye_spacing"]) - 0.03, v - tk(t["eye_height"]) - tk(t["eye_ry"]) - 0.065
    cheek = ellipse(bx, by, 0.095, 0.048)
    win.paint(win.cov(cheek) * (0.75 * tk(t["blush_strength"])), torch.tensor([[1.0, 0.36, 0.46]]))
    hatch = (bx + 0.45 * by) / 0.03  # three short diagonal strokes, the manga way of drawing a flush
    stroke = torch.maximum((hatch - torch.round(hatch)).abs() * 0.03 - 0.006, ellipse(bx, by, 0.06, 0.022))
    win.paint(win.cov(stroke) * tk(t["blush_strength"]), torch.tensor([[0.92, 0.3, 0.4]]))
    win.commit()


MOUTH_BOX = (-0.13, 0.13, 0.13, 0.37)


def draw_mouth(cv, lk) -> None:
    t, c = lk.t, lk.c
    inside, tongue = torch.tensor([[0.5, 0.12, 0.18]]), torch.tensor([[0.96, 0.48, 0.52]])
    for kind in ("closed", "smile", "open", "open_smile"):
        idx = cv.subset(lk.is_("mouth", kind))
        if idx is False:
            continue
        win = cv.window(MOUTH_BOX, idx)
        u, v = win.uv
        k = win.take(t["mouth_width"])
        mx, my = u / k, (v - win.take(t["mouth_height"])) / k
        if kind in ("closed", "smile"):
            # curvature (1/head units), half width, half thickness
            bend, half, thick = (-4.0, 0.04, 0.011) if kind == "closed" else (-11.0, 0.085, 0.016)
            arc = (my + 0.02 * (kind == "smile") - bend * mx * mx).abs() / torch.sqrt(
                1.0 + 4.0 * bend * bend * mx * mx
            )
            d = torch.maximum(arc - thick, mx.abs() - half) * k
            win.paint(win.cov(d), win.take(c["skin_line"]) * (0.8 if kind == "closed" else 0.6))
        else:
            if kind == "open":
                d = ellipse(mx, my - 0.005, 0.036, 0.045) * k
            else:
                d = torch.maximum(ellipse(mx, my + 0.005, 0.072, 0.07), -(my + 0.008)) * k
            win.fill(d, inside, win.take(c["skin_line"]) * 0.7, 0.008)
            win.paint(win.cov(torch.maximum(ellipse(mx, my - 0.042, 0.035, 0.022) * k, d)), tongue)
        win.commit()


def draw_features(cv, lk) -> None:
    win = cv.window((-0.36, 0.36, -0.3, 0.2))
    draw_brows(win, lk)
    draw_eyes(win, lk)
    draw_nose(win, lk)
    win.commit()
    draw_blush(cv, lk)
    draw_mouth(cv, lk)
