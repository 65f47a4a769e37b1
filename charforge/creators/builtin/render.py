"""Batch renderer: parameters -> (N, S, S, 3) uint8 anime head-and-shoulders portraits.

Layers are painted back to front on a `Canvas` (background, back hair and tails, body, face, features,
bangs, accessories). Per-image numbers are prepared once in numpy (`Look`); per-pixel work is torch float32.
"""

from __future__ import annotations

import numpy as np
import torch

from charforge.core.space import ParamBatch, ParamSpace
from charforge.core.tags import EYE_COLORS, HAIR_COLORS
from charforge.creators.builtin import accessories, face, hair, palette, restyle, styles
from charforge.creators.builtin.params import (
    BACKGROUNDS,
    CLOTHING_COLORS,
    GLASSES_COLORS,
    HAT_COLORS,
    RIBBON_COLORS,
    SKIN_TONES,
)
from charforge.creators.builtin.sdf import Canvas, box, ellipse, triangle

MAX_PIXELS_PER_CHUNK = 1 << 20  # images x pixels rendered at once: keeps tensors near cache size (~4 MB each)
SHOULDER_Y = 0.62  # image y where the shoulders meet the neck
EYE_SHAPES = {
    "round": (0.095, 0.118, 0.0),
    "almond": (0.104, 0.1, 4.0),
    "droopy": (0.1, 0.108, -9.0),
    "sharp": (0.106, 0.094, 11.0),
}
FACE_ROUNDNESS = {"round": 0.95, "oval": 0.62, "pointed": 0.3}  # jaw curve: 0 = straight V, 1 = parabola
HAIR_END = {
    "short": (0.2, 0.04),
    "medium": (0.64, 0.06),
    "long": (1.3, 0.1),
}  # back hair end v and fine range
LOCK_END = {
    "short": (0.12, 0.03, 0.04),
    "medium": (0.52, 0.05, 0.05),
    "long": (0.98, 0.06, 0.13),
}  # side lock end v, fine range, outward drift
HAIR_SPREAD = {"short": 0.0, "medium": 0.1, "long": 0.3}  # back hair widening per unit of v


class Look:
    """Everything the layers need per image: option indices, (N,1,1) numbers and (N,3) colours."""

    def __init__(self, space: ParamSpace, batch: ParamBatch):
        self.space, self.n = space, len(batch)
        self.cat = {p.name: batch.cat[:, j] for j, p in enumerate(space.categorical)}
        self.num = {p.name: batch.cont[:, j].astype(np.float64) for j, p in enumerate(space.continuous)}
        self.t: dict[str, torch.Tensor] = {}
        self.c: dict[str, torch.Tensor] = {}

    def opt(self, name: str) -> np.ndarray:
        """(N,) option names of categorical `name`."""
        options = np.array(self.space.categorical[self.space.cat_index(name)].options)
        return options[self.cat[name]]

    def is_(self, name: str, *options: str) -> np.ndarray:
        return np.isin(self.opt(name), options)

    def lookup(self, name: str, table: dict) -> np.ndarray:
        return np.array([table[o] for o in self.opt(name)], dtype=np.float64)

    def set(self, name: str, values: np.ndarray) -> None:
        self.t[name] = torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32).view(-1, 1, 1)

    def color(self, name: str, rgb: np.ndarray) -> None:
        self.c[name] = torch.tensor(np.clip(rgb, 0.0, 1.0), dtype=torch.float32).view(-1, 3)


def prepare(space: ParamSpace, batch: ParamBatch, style: str = "cel") -> Look:
    lk = Look(space, batch)
    styles.adjust_numbers(lk.num, style)
    for name, v in lk.num.items():
        lk.set(name, v)
    _geometry(lk)
    _colors(lk)
    restyle.adjust_colours(lk.c, style)
    return lk


def _geometry(lk: Look) -> None:
    num = lk.num
    lk.set("cap_rx", num["face_width"] + 0.07 + 0.05 * num["hair_volume"])
    lk.set("cap_ry", 0.5 + 0.03 * num["hair_volume"])
    lk.set("face_round", lk.lookup("face_shape", FACE_ROUNDNESS))
    end, fine = lk.lookup("hair_length", HAIR_END).T
    lk.set("hair_end", end + fine * num["hair_length_fine"])
    end, fine, drift = lk.lookup("hair_length", LOCK_END).T
    lk.set("lock_end", end + fine * num["hair_length_fine"])
    lk.set("lock_drift", drift)
    lk.set("hair_spread", lk.lookup("hair_length", HAIR_SPREAD))
    rx, ry, tilt = lk.lookup("eye_shape", EYE_SHAPES).T
    lk.set("eye_rx", rx * num["eye_size"])
    lk.set("eye_ry", ry * num["eye_size"])
    a = np.deg2rad(tilt + num["eye_tilt"])
    lk.set("eye_c", np.cos(a))
    lk.set("eye_s", np.sin(a))
    b = np.deg2rad(num["brow_angle"])
    lk.set("brow_c", np.cos(b))
    lk.set("brow_s", np.sin(b))


def _colors(lk: Look) -> None:
    num = lk.num
    hair = palette.jitter(
        palette.table(palette.HAIR_RGB, HAIR_COLORS)[lk.cat["hair_color"]],
        num["hair_hue"],
        num["hair_lightness"],
        light_amt=0.1,
    )
    lk.color("hair", hair)
    lk.color("hair_shadow", hair * 0.74)
    lk.color("hair_dark", hair * 0.42)
    lk.color("hair_hi", hair + (1 - hair) * 0.5)
    iris = palette.jitter(
        palette.table(palette.EYE_RGB, EYE_COLORS)[lk.cat["eye_color"]],
        num["eye_hue"],
        num["eye_lightness"],
        light_amt=0.1,
    )
    lk.color("iris", iris)
    lk.color("iris_dark", iris * 0.5)
    lk.color("iris_light", iris * 1.2 + 0.08)
    lk.color("pupil", iris * 0.16)
    skin = palette.table(palette.SKIN_RGB, SKIN_TONES)[lk.cat["skin_tone"]]
    skin = palette.jitter(skin, np.zeros(lk.n), num["skin_lightness"], light_amt=0.05)
    lk.color("skin", skin)
    lk.color("skin_shadow", skin * np.array([0.9, 0.8, 0.8]))
    lk.color("skin_line", skin * np.array([0.62, 0.42, 0.4]))
    bg = palette.table(palette.BACKGROUND_RGB, BACKGROUNDS)[lk.cat["background"]]
    lk.color("bg_top", bg)
    lk.color("bg_delta", (1 - bg) * 0.55 * num["bg_gradient"][:, None])
    cloth = palette.table(palette.CLOTHING_RGB, CLOTHING_COLORS)[lk.cat["clothing_color"]]
    lk.color("cloth", cloth)
    lk.color("cloth_dark", cloth * 0.72)
    light_cloth = cloth.mean(axis=1, keepdims=True) > 0.7
    lk.color("collar", np.where(light_cloth, np.array([[0.16, 0.2, 0.4]]), np.array([[0.96, 0.96, 0.98]])))
    hat = palette.table(palette.HAT_RGB, HAT_COLORS)[lk.cat["hat_color"]]
    lk.color("hat", hat)
    lk.color("hat_shadow", hat * 0.72)
    lk.color(
        "hat_band",
        np.where(
            hat.mean(axis=1, keepdims=True) > 0.5, np.array([[0.55, 0.2, 0.6]]), np.array([[0.85, 0.7, 0.25]])
        ),
    )
    ribbons = palette.table(palette.RIBBON_RGB, RIBBON_COLORS)
    ribbon = palette.contrasting(ribbons[lk.cat["ribbon_color"]], ribbons, hair)
    lk.color("ribbon", ribbon)
    lk.color("ribbon_dark", ribbon * 0.7)
    lk.color("glasses", palette.table(palette.GLASSES_RGB, GLASSES_COLORS)[lk.cat["glasses_color"]])
    lk.color("scarf", np.tile([[0.85, 0.18, 0.22]], (lk.n, 1)))
    lk.color("ink", np.tile([[0.13, 0.09, 0.12]], (lk.n, 1)))
    lk.color("white", np.tile([[0.99, 0.99, 1.0]], (lk.n, 1)))


# ---- layers owned here: background and body ----------------------------------------------------------
def draw_background(cv: Canvas, lk: Look) -> None:
    gy = ((cv.grid + 1.0) * 0.5).view(1, 1, -1, 1)  # 0 at the top, 1 at the bottom, (1, 1, S, 1)
    cv.img[:] = lk.c["bg_top"].view(-1, 3, 1, 1) + lk.c["bg_delta"].view(-1, 3, 1, 1) * gy


def draw_body(cv: Canvas, lk: Look) -> None:
    """Neck and shoulders in the image frame (they do not tilt with the head)."""
    win = cv.window((-1.0, 1.0, SHOULDER_Y - 0.32, 1.0), head=False)
    t, c = lk.t, lk.c
    hx = cv.head[0]
    x, y = win.x - hx, win.y
    top = SHOULDER_Y
    neck = box(x, y - (top - 0.1), t["neck_width"] * 1.15, 0.3, 0.04)
    win.fill(neck, c["skin_shadow"])
    torso = ellipse(x, y - (top + 0.8), t["shoulder_width"], 0.8)
    win.fill(torso, c["cloth"], c["ink"], 0.012)
    style = lk.opt("clothing_style")
    vneck = triangle(x, y, ((-0.1, top - 0.05), (0.1, top - 0.05), (0.0, top + 0.2)))
    m = lambda s: torch.tensor(style == s, dtype=torch.float32).view(-1, 1, 1)  # noqa: E731
    sailor, shirt, sweater = m("sailor"), m("shirt"), m("sweater")
    band = torch.maximum(
        torso, -ellipse(x, y - (top + 0.8 + 0.12 + 0.05 * shirt), t["shoulder_width"] * 0.97, 0.8)
    )
    win.paint(win.cov(band) * (sailor + shirt), c["collar"])
    win.paint(win.cov(torch.maximum(vneck, torso - 0.02)) * (sailor + shirt), c["skin_shadow"])
    scarf = triangle(x, y, ((-0.07, top + 0.14), (0.07, top + 0.14), (0.0, top + 0.3)))
    win.paint(win.cov(scarf) * sailor, c["scarf"])
    tie = triangle(x, y, ((-0.035, top + 0.16), (0.035, top + 0.16), (0.0, top + 0.42)))
    win.paint(win.cov(tie) * shirt, c["cloth_dark"])
    rib = ellipse(x, y - top, t["neck_width"] + 0.05, 0.06).abs() - 0.025
    win.paint(win.cov(torch.maximum(rib, top - y)) * sweater, c["cloth_dark"])
    win.commit()


def render_chunk(space: ParamSpace, batch: ParamBatch, size: int, style: str = "cel") -> np.ndarray:
    """(N, size, size, 3) uint8 of one render style."""
    lk = prepare(space, batch, style)
    canvas = styles.render_size(style, size)
    cv = Canvas(
        canvas,
        lk.num["head_x"],
        lk.num["head_tilt"],
        lk.num["head_scale"],
        line=styles.line_factor(style, canvas),
    )
    with torch.no_grad():
        draw_background(cv, lk)
        hair.draw_back(cv, lk)
        hair.draw_tails(cv, lk)
        draw_body(cv, lk)
        hair.draw_drills(cv, lk)
        face.draw_face(cv, lk)
        hair.draw_side_locks(cv, lk)
        face.draw_features(cv, lk)
        hair.draw_bangs(cv, lk)
        accessories.draw_glasses(cv, lk)
        accessories.draw_hats(cv, lk)
        accessories.draw_ribbon(cv, lk)
        img = cv.img if style == "cel" else restyle.post(cv.img, style, size)
        out = (img.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)  # (N, 3, S, S)
    return out.permute(0, 2, 3, 1).contiguous().numpy()  # (N, S, S, 3)


def _render_style(space: ParamSpace, batch: ParamBatch, size: int, style: str) -> np.ndarray:
    per = max(1, MAX_PIXELS_PER_CHUNK // (size * size))
    return np.concatenate(
        [render_chunk(space, batch[i : i + per], size, style) for i in range(0, len(batch), per)]
    )


def render_batch(space: ParamSpace, batch: ParamBatch, size: int, style: str | None = None) -> np.ndarray:
    """(N, size, size, 3) uint8, rendered in chunks of at most MAX_PIXELS_PER_CHUNK pixels.

    A space with a `style` parameter draws each image in its own style (grouped by style, put back in
    order); otherwise every image is drawn in `style` (default cel).
    """
    if len(batch) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    if "style" not in space.names:
        return _render_style(space, batch, size, style or "cel")
    options = space.categorical[space.cat_index("style")].options
    col = batch.cat[:, space.cat_index("style")]
    out = np.zeros((len(batch), size, size, 3), np.uint8)
    for k in np.unique(col):
        rows = np.flatnonzero(col == k)
        out[rows] = _render_style(space, batch[rows], size, options[int(k)])
    return out
