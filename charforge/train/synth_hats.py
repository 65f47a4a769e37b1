"""Painted hats for the part reader's training (issue 13: hats on art charforge did not draw).

The part reader learns where a hat is from pixel masks. The built-in creator draws three hats (beret, witch hat,
cap), and the DiceBear training styles give no hat masks, so a reader trained on them marks the creator's hats
and nothing else: on DiceBear micah it marks no pixel of any turban. Here a hat of a random kind, size, colour
and finish is painted over the top of a training portrait's hair, and its pixels become the hat's mask:
domain randomisation, so the reader learns "a shape that sits on the head and hides the hair's top" rather than
three drawings.

Kinds: beanie (a dome with a cuff, sometimes a bobble), cap (a dome with a brim to the front or a side),
brimmed hat (a crown on a wide brim: fedora, top hat, sun hat), pointed hat (a tall cone on a brim), helmet or
hood (a dome that comes down the sides of the face), wrap (a dome with diagonal folds: turbans and head
scarves). Finishes: flat, two-tone cuff or band, stripes, knit ribs, shading; a dark outline on most, as line
art draws it, none on the rest. A fifth of the hats take the hair's own colour, so colour alone never says hat.

The geometry comes from the hair mask only (the foreign images carry no face mask): the top of the hair is the
top of the head, and the hair's width over its upper rows is the head's width. Pure numpy on the batch, from a
seeded generator, so training stays exactly resumable.
"""

from __future__ import annotations

import numpy as np

KINDS = ("beanie", "cap", "brimmed", "pointed", "helmet", "wrap")
KIND_P = (0.22, 0.2, 0.2, 0.08, 0.15, 0.15)
MIN_HAIR_SHARE = 0.02  # a portrait needs this much hair (share of the picture) for a hat to be placed on it
SAME_COLOUR_P = 0.2  # share of hats painted in the hair's own colour
OUTLINE_P = 0.65  # share of hats with a dark outline


def head_box(hair: np.ndarray) -> tuple[float, float, float] | None:
    """(top, centre x, width) of the head from a (S, S) bool hair mask: the hair's top row, and the widest
    extent of the hair over the upper third of its height (long hair widens below the head). None: too
    little hair."""
    s = hair.shape[0]
    if hair.mean() < MIN_HAIR_SHARE:
        return None
    rows = np.flatnonzero(hair.any(axis=1))
    top, bottom = rows[0], rows[-1]
    upper = hair[top : top + max(2, (bottom - top) // 3 + 1)]
    cols = np.flatnonzero(upper.any(axis=0))
    left, right = cols[0], cols[-1]
    width = float(right - left + 1)
    if width < 0.15 * s:
        return None
    return float(top), (left + right) / 2.0, width


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0


def hat_parts(kind: str, s: int, top: float, cx: float, width: float, rng: np.random.Generator) -> list:
    """The hat's components as (S, S) bool masks, in painting order (each may get its own colour)."""
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    rx = width / 2 * rng.uniform(0.95, 1.12)
    band = top + width * rng.uniform(0.22, 0.5)  # how far down the head the hat comes
    dome_h = (band - top) * rng.uniform(1.0, 1.4)
    dome = _ellipse(yy, xx, band, cx, dome_h, rx) & (yy <= band)
    if kind == "beanie":
        cuff_h = width * rng.uniform(0.07, 0.16)
        cuff = (yy >= band - cuff_h) & (yy <= band + cuff_h * 0.4) & (np.abs(xx - cx) <= rx * 1.02)
        parts = [dome, cuff]
        if rng.random() < 0.45:
            r = width * rng.uniform(0.07, 0.14)
            parts.append(_ellipse(yy, xx, band - dome_h, cx, r, r))
        return parts
    if kind == "cap":
        side = rng.choice([-1.0, 0.0, 1.0])
        if side == 0.0:  # brim to the front: a flat ellipse across the forehead
            brim = _ellipse(yy, xx, band, cx, width * rng.uniform(0.05, 0.1), rx * rng.uniform(1.0, 1.2))
        else:
            bw = width * rng.uniform(0.3, 0.55)
            brim = _ellipse(yy, xx, band, cx + side * (rx + bw * 0.4), width * rng.uniform(0.05, 0.1), bw)
        return [dome, brim & (yy >= band - width * 0.12)]
    if kind == "brimmed":
        crown_w = rx * rng.uniform(0.6, 0.95)
        crown_top = band - width * rng.uniform(0.35, 0.85)
        taper = rng.uniform(0.0, 0.25)  # 0: a top hat's straight sides; more: a fedora's narrower top
        half = crown_w * (1 - taper * (band - yy) / max(band - crown_top, 1.0))
        crown = (yy >= crown_top) & (yy <= band) & (np.abs(xx - cx) <= half)
        if rng.random() < 0.5:  # a dented or rounded crown top
            crown &= _ellipse(yy, xx, band, cx, band - crown_top, crown_w * 1.05) | (
                yy > crown_top + width * 0.1
            )
        brim = _ellipse(yy, xx, band, cx, width * rng.uniform(0.05, 0.14), rx * rng.uniform(1.25, 1.8))
        parts = [brim, crown]
        if rng.random() < 0.5:  # a band round the crown
            bh = width * rng.uniform(0.05, 0.1)
            parts.append(crown & (yy >= band - bh - width * 0.04) & (yy <= band - width * 0.04))
        return parts
    if kind == "pointed":
        height = width * rng.uniform(0.8, 1.4)
        tip = cx + width * rng.uniform(-0.35, 0.35)
        t = np.clip((band - yy) / height, 0.0, 1.0)  # 0 at the brim, 1 at the tip
        centre = cx + (tip - cx) * t
        cone = (yy <= band) & (yy >= band - height) & (np.abs(xx - centre) <= rx * 0.75 * (1 - t))
        brim = _ellipse(yy, xx, band, cx, width * rng.uniform(0.05, 0.12), rx * rng.uniform(1.2, 1.7))
        return [brim, cone]
    if kind == "helmet":
        flap = width * rng.uniform(0.2, 0.55)
        fw = width * rng.uniform(0.12, 0.22)
        sides = (yy >= band) & (yy <= band + flap) & (np.abs(xx - cx) <= rx) & (np.abs(xx - cx) >= rx - fw)
        parts = [dome | sides]
        if rng.random() < 0.4:  # a crest or a ridge along the top
            parts.append(dome & (np.abs(xx - cx) <= width * rng.uniform(0.04, 0.09)))
        return parts
    # wrap: a taller dome with folds drawn as darker diagonal bands
    tall = _ellipse(yy, xx, band, cx, dome_h * rng.uniform(1.1, 1.5), rx * rng.uniform(1.0, 1.1)) & (
        yy <= band
    )
    period = max(3.0, width * rng.uniform(0.12, 0.22))
    slope = rng.uniform(0.4, 1.2) * rng.choice([-1.0, 1.0])
    folds = tall & (np.mod(yy + slope * (xx - cx), period) < period * 0.25)
    return [tall, folds]


def _colour(rng: np.random.Generator) -> np.ndarray:
    c = rng.random(3)
    if rng.random() < 0.25:  # greys, blacks and whites: common for hats
        c = np.full(3, rng.random()) + rng.normal(0, 0.03, 3)
    return np.clip(c, 0, 1)


def _border(mask: np.ndarray, width: int) -> np.ndarray:
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def paint(image: np.ndarray, hair: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Paint one hat on `image` ((S, S, 3) float in [0, 1], changed in place) over the head that `hair` ((S, S)
    bool) marks. Returns the hat's (S, S) bool mask, or None when no head is found (nothing painted)."""
    box = head_box(hair)
    if box is None:
        return None
    s = image.shape[0]
    kind = KINDS[rng.choice(len(KINDS), p=KIND_P)]
    parts = hat_parts(kind, s, *box, rng)
    main = np.median(image[hair], axis=0) if rng.random() < SAME_COLOUR_P else _colour(rng)
    second = _colour(rng) if rng.random() < 0.5 else np.clip(main * rng.uniform(0.55, 0.85), 0, 1)
    finish = rng.choice(["flat", "stripes", "ribs", "shade"], p=[0.45, 0.15, 0.15, 0.25])
    yy, xx = np.mgrid[0:s, 0:s]
    whole = np.zeros((s, s), bool)
    for k, part in enumerate(parts):
        if not part.any():
            continue
        colour = main if k == 0 or kind in ("brimmed", "pointed") and k == 1 else second
        if kind == "wrap" and k == 1:
            colour = np.clip(main * rng.uniform(0.6, 0.85), 0, 1)
        layer = np.broadcast_to(colour, (s, s, 3)).copy()
        if finish == "stripes" and k == 0:
            period = max(2, int(s * rng.uniform(0.03, 0.07)))
            layer[(yy // period) % 2 == 1] = second
        elif finish == "ribs" and k == 0:
            period = max(2, int(s * rng.uniform(0.025, 0.05)))
            layer[(xx % period) == 0] *= 0.75
        elif finish == "shade":
            rows = np.flatnonzero(part.any(axis=1))
            t = (yy - rows[0]) / max(rows[-1] - rows[0], 1)
            layer *= (1.0 - rng.uniform(0.1, 0.35) * t)[..., None]
        image[part] = layer[part]
        whole |= part
    if rng.random() < OUTLINE_P:
        line = np.full(3, rng.uniform(0.0, 0.2))
        width = 1 + int(s >= 96 and rng.random() < 0.5)
        for part in parts:
            if part.any():
                image[_border(part, width)] = line
    return whole


def paint_batch(
    x: np.ndarray,
    masks: np.ndarray,
    names: tuple[str, ...],
    rng: np.random.Generator,
    share: float,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """Paint hats on about `share` of a batch: `x` (B, 3, S, S) in [-1, 1] and `masks` (B, P, S, S) 0/1 in
    `names` order, both changed in place; `known` (same shape as masks, or None: all known) marks the pixels
    whose mask is known and is set to known over each painted hat. Only portraits with a hair mask and no hat
    already (where a hat mask is known) are eligible. Returns a (B,) bool of the painted rows."""
    b = len(x)
    painted = np.zeros(b, bool)
    if share <= 0 or "hair" not in names or "hat" not in names:
        return painted
    ih, it = names.index("hair"), names.index("hat")
    draw = rng.random(b) < share
    seeds = rng.integers(2**62, size=b)
    for r in np.flatnonzero(draw):
        hair = masks[r, ih] > 0.5
        if known is not None:
            hair &= known[r, ih] > 0.5
        if masks[r, it].any() and (known is None or known[r, it].all()):
            continue  # already wears a hat (only a known hat mask can say so)
        image = (x[r].transpose(1, 2, 0) + 1) / 2
        hat = paint(image, hair, np.random.default_rng(int(seeds[r])))
        if hat is None:
            continue
        x[r] = image.transpose(2, 0, 1) * 2 - 1
        masks[r][:, hat] = 0
        masks[r, it][hat] = 1
        if known is not None:
            known[r][:, hat] = 1
        painted[r] = True
    return painted
