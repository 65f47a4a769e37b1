"""Tagger-only augmentation: make the built-in creator's renders look like art it did not draw, tags kept true.

Two layers:

* **Part recolouring** (`PartRenders`, `recolour`). The creator is only *called*: each portrait is rendered
  once more per colour part (hair, eyes, skin, clothing, hat, background) with that part's colour option
  swapped. Every pixel is linear in a part's colour (shading is colour x constant, blending is linear), so
  `pixel = base + coef * (colour - base colour)` per channel, and two renders give `coef`. Any RGB can then
  be painted on the part. Hair and eye colours are tags: the new colour's tag is the creator palette colour
  nearest to it in CIELAB; a colour about as near to two tags of different families is left unlabelled
  (an all-zero group, which the loss masks). The creator's own jitter parameters are zeroed in these
  renders so that the base colour is exactly the palette colour.
  A multi-style dataset (`builtin-styles`): the finishing pass of painterly, manga and pixel art (blur and
  brush texture, screentone dots, the pixel grid; `creators.builtin.restyle.post`) is not linear in a colour,
  so parts are rendered *before* it and the pass is applied after repainting (`finish`): the recoloured
  image is the style's own render of the recoloured character.
* **Style and framing** (`style_augment`), on a (B, 3, S, S) batch in [-1, 1]: zoom out onto a new
  background or zoom in to the face, rotation, aspect; flat-colour posterisation, median smoothing
  (removes thin outlines), outline thickening, added cartoon outlines, painted texture, hue-preserving
  brightness / contrast / gamma, blur, down-up resampling, JPEG, noise, small cut-outs. None of them
  changes a hue, so the colour tags stay true; none hides a whole tagged part (cut-outs are small).

`charforge.models.augment` (the GAN's augmentations, `degrade`) is left as it is; this module is the tagger's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charforge.core.colour import lab_to_srgb, srgb_to_lab  # noqa: F401  (re-exported)
from charforge.creators.builtin.styles import STYLES

# part name -> (categorical parameter, palette table name in charforge.creators.builtin.palette, tag group)
PARTS: dict[str, tuple[str, str, str | None]] = {
    "hair": ("hair_color", "HAIR_RGB", "hair color"),
    "eyes": ("eye_color", "EYE_RGB", "eye color"),
    "skin": ("skin_tone", "SKIN_RGB", None),
    "cloth": ("clothing_color", "CLOTHING_RGB", None),
    "hat": ("hat_color", "HAT_RGB", None),
    "bg": ("background", "BACKGROUND_RGB", None),
}
# Parts rendered only for their masks (the part reader, charforge.train.partseg), never repainted by `recolour`,
# so the tag estimator's random draws and recipes stay as they were. Their coefficient is the largest over the
# channels whose colour changes (glasses colours share a near-equal channel), stored in all three channels.
MASK_ONLY_PARTS: dict[str, tuple[str, str]] = {"glasses": ("glasses_color", "GLASSES_RGB")}
ZEROED = ("hair_hue", "hair_lightness", "eye_hue", "eye_lightness", "skin_lightness")
COEF_SCALE = 100.0  # coefficients are stored as uint8 of coef * COEF_SCALE (coef in [0, 2.55])
STYLE_CODES = {name: k for k, name in enumerate(STYLES)}  # style name -> code in PartRenders.style
AMBIGUOUS_DE = 5.0  # CIE76 Delta E: nearer than this to a second tag of another family -> unlabelled


# ---- colour science: charforge.core.colour (re-exported here for the training code and tests) ----------------


def colour_family(names: tuple[str, ...]) -> list[str]:
    """A coarse family per colour name (colours of one family may be confused without changing the family)."""
    fam = {
        "black": "dark",
        "brown": "dark",
        "blonde": "yellow",
        "orange": "yellow",
        "yellow": "yellow",
        "red": "red",
        "pink": "red",
        "blue": "blue",
        "aqua": "blue",
        "purple": "blue",
        "silver": "light",
        "white": "light",
        "gray": "light",
        "green": "green",
    }
    return [fam.get(n, n) for n in names]


def nearest_tag(
    rgb: np.ndarray, palette: np.ndarray, families: list[str], margin: float = AMBIGUOUS_DE
) -> np.ndarray:
    """(N, 3) colours -> (N,) index of the nearest palette colour in CIELAB, -1 where a palette colour of
    another family is within `margin` Delta E of the nearest."""
    d = np.linalg.norm(srgb_to_lab(rgb)[:, None] - srgb_to_lab(palette)[None], axis=2)  # (N, K)
    best = d.argmin(axis=1)
    fam = np.array(families)
    other = np.where(fam[None, :] != fam[best][:, None], d, np.inf).min(axis=1)
    return np.where(other - d[np.arange(len(d)), best] < margin, -1, best)


def sample_colours(n: int, palette: np.ndarray, rng: np.random.Generator, p_near: float = 0.5) -> np.ndarray:
    """(N, 3) colours: with p_near a palette colour moved up to ~18 Delta E, else a random colour in gamut
    (uniform lightness 12-97, chroma up to 90)."""
    lab_pal = srgb_to_lab(palette)
    near = rng.random(n) < p_near
    base = lab_pal[rng.integers(len(palette), size=n)] + rng.normal(0, 7, (n, 3)) * np.array([1.0, 1.0, 1.0])
    hue = rng.uniform(0, 2 * np.pi, n)
    chroma = 90 * rng.random(n) ** 0.8
    rand = np.stack([rng.uniform(12, 97, n), chroma * np.cos(hue), chroma * np.sin(hue)], axis=1)
    return lab_to_srgb(np.where(near[:, None], base, rand))


# ---- part renders -----------------------------------------------------------------------------------------
@dataclass
class PartRenders:
    """Base renders and per-part colour coefficients for N portraits (see the module doc)."""

    base: np.ndarray  # (N, S, S, 3) uint8: the render with jitter zeroed
    coef: dict[str, np.ndarray]  # part -> (N, S, S, 3) uint8, coef * COEF_SCALE
    colour: dict[str, np.ndarray]  # part -> (N, 3) float32 base colour of the part, sRGB [0, 1]
    tags: np.ndarray  # (N, T) float32 tags of the base render
    style: np.ndarray | None = None  # (N,) int8 index into creators.builtin.styles.STYLES (None: all cel)

    def __len__(self) -> int:
        return len(self.base)


def _alt_option(table: np.ndarray) -> np.ndarray:
    """(K,) for each option the other option whose colour differs most in its least-different channel."""
    diff = np.abs(table[:, None] - table[None]).min(axis=2)  # (K, K)
    np.fill_diagonal(diff, -1)
    return diff.argmax(axis=1)


def _render_before_finish(creator, batch, size: int) -> np.ndarray:
    """`creator.render` without the styles' finishing pass (`restyle.post`), which is not linear in a colour.
    The renderer has no switch for it, so the module function is swapped for the identity for this call
    (restored in `finally`; the part renders are drawn in one thread)."""
    from charforge.creators.builtin import restyle

    post = restyle.post
    restyle.post = lambda img, style, size: img
    try:
        return creator.render(batch, size)
    finally:
        restyle.post = post


def style_codes(space, batch) -> np.ndarray | None:
    """(N,) int8 index into STYLES (`STYLE_CODES`) of each character's render style, None for the cel-only
    creator."""
    if "style" not in space.names:
        return None
    options = space.categorical[space.cat_index("style")].options
    code = np.array([STYLE_CODES[o] for o in options], dtype=np.int8)
    return code[batch.cat[:, space.cat_index("style")]]


def finish(img: np.ndarray, style: np.ndarray | None) -> np.ndarray:
    """Apply each image's finishing pass (painterly, manga, pixel) to (B, S, S, 3) float [0, 1] images drawn
    before it; other styles and style None pass unchanged."""
    from charforge.creators.builtin import restyle

    if style is None:
        return img
    out = img
    for k in np.unique(style):
        name = STYLES[int(k)]
        if name not in ("painterly", "manga", "pixel"):
            continue
        rows = np.flatnonzero(style == k)
        x = torch.from_numpy(np.ascontiguousarray(img[rows], dtype=np.float32)).permute(0, 3, 1, 2)
        with torch.no_grad():
            y = restyle.post(x, name, img.shape[1]).clamp(0.0, 1.0)
        out = out.copy() if out is img else out
        out[rows] = y.permute(0, 2, 3, 1).numpy()
    return out


def _jitter_free(creator, batch):
    """(draw, cat, cont) for part renders of `batch`: the drawing function (before the finishing pass for a
    multi-style creator) and copies of its parameters with the colour jitter (ZEROED) set to 0."""
    space = creator.space
    style = style_codes(space, batch)
    draw = creator.render if style is None else (lambda b, s: _render_before_finish(creator, b, s))
    cat, cont = batch.cat.copy(), batch.cont.copy()
    for name in ZEROED:
        cont[:, [p.name for p in space.continuous].index(name)] = 0.0
    return draw, cat, cont


def _swap_coefficient(draw, space, batch, cat, cont, base, size: int, param: str, table_name: str):
    """((N, S, S, 3) float per-channel colour coefficient of the part coloured by `param`, (N, 3) its base
    colour): one more render with the option whose colour differs most, divided by the colour change
    (0 where a channel changes by 0.06 or less)."""
    from charforge.creators.builtin import palette

    j = space.cat_index(param)
    table = palette.table(getattr(palette, table_name), space.categorical[j].options)  # (K, 3)
    alt = _alt_option(table)
    cat2 = cat.copy()
    cat2[:, j] = alt[cat[:, j]]
    other = draw(type(batch)(cat2, cont), size)
    c0, c1 = table[cat[:, j]], table[cat2[:, j]]  # (N, 3)
    dc = (c1 - c0)[:, None, None, :]
    ok = np.abs(dc) > 0.06
    k = np.where(
        ok, (other.astype(np.float32) - base.astype(np.float32)) / 255.0 / np.where(ok, dc, 1.0), 0.0
    )
    return k, c0


def render_parts(creator, batch, size: int) -> PartRenders:
    """Render `batch` (a ParamBatch of the built-in creator) once plus once per part; see `PartRenders`.
    A multi-style creator's painterly, manga and pixel characters are drawn before their finishing pass
    (`finish` applies it after repainting)."""
    space = creator.space
    draw, cat, cont = _jitter_free(creator, batch)
    base_batch = type(batch)(cat, cont)
    base = draw(base_batch, size)
    coef, colour = {}, {}
    for part, (param, table_name, _) in PARTS.items():
        k, c0 = _swap_coefficient(draw, space, batch, cat, cont, base, size, param, table_name)
        coef[part] = np.clip(np.round(k * COEF_SCALE), 0, 255).astype(np.uint8)
        colour[part] = c0.astype(np.float32)
    tags = creator.derive_tags(base_batch).astype(np.float32)
    return PartRenders(base=base, coef=coef, colour=colour, tags=tags, style=style_codes(space, batch))


def recolour(
    parts: PartRenders,
    idx: np.ndarray,
    rng: np.random.Generator,
    schema,
    *,
    p_part: float = 0.7,
    skin_any: float = 0.0,
    colours_out: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images `idx` of `parts` with each colour part repainted (probability p_part) in a random colour.
    A repainted skin stays near a skin tone, except with probability `skin_any` where it takes any colour
    (yellow, grey, green skins of cartoon avatars: hair colour must be read from the hair, not the face).
    Multi-style parts get their style's finishing pass after repainting (`finish`). A dict `colours_out`
    receives, per tagged part ("hair", "eyes"), the (B, 3) sRGB colour each image shows (new or kept).
    Returns (B, S, S, 3) float32 in [0, 1] and (B, T) float32 tags (hair / eye groups relabelled)."""
    from charforge.creators.builtin import palette

    img = parts.base[idx].astype(np.float32) / 255.0
    tags = parts.tags[idx].copy()
    b = len(idx)
    for part, (_, table_name, group) in PARTS.items():
        on = rng.random(b) < p_part
        if colours_out is not None and group is not None:
            colours_out[part] = parts.colour[part][idx].astype(np.float32)
        if not on.any():
            continue
        c0 = parts.colour[part][idx]
        if group is not None:
            g = next(gr for gr in schema.groups if gr.name == group)
            names = tuple(t.removesuffix(" hair").removesuffix(" eyes") for t in g.tags)
            table = palette.table(getattr(palette, table_name), names)
            new = sample_colours(b, table, rng)
            lab = nearest_tag(new, table, colour_family(names))
            sl = schema.group_slices()[schema.groups.index(g)]
            t = np.zeros((b, sl.stop - sl.start), np.float32)
            t[np.arange(b)[lab >= 0], lab[lab >= 0]] = 1.0
            tags[on, sl] = t[on]
        elif part == "bg":
            new = lab_to_srgb(
                np.stack([rng.uniform(20, 100, b), rng.normal(0, 25, b), rng.normal(0, 25, b)], axis=1)
            )
            new = np.where(rng.random((b, 1)) < 0.3, 1.0, new)  # white backgrounds are common in foreign art
        else:
            table = palette.table(getattr(palette, table_name), tuple(getattr(palette, table_name)))
            # skin stays a skin colour (moved in CIELAB) unless skin_any; clothes and hats take any colour
            new = sample_colours(b, table, rng, p_near=(1.0 - skin_any) if part == "skin" else 0.3)
        if colours_out is not None and group is not None:
            colours_out[part] = np.where(on[:, None], new, c0).astype(np.float32)
        delta = np.where(on[:, None], new - c0, 0.0).astype(np.float32)  # (B, 3)
        img += parts.coef[part][idx].astype(np.float32) / COEF_SCALE * delta[:, None, None, :]
    img = np.clip(img, 0.0, 1.0)
    return finish(img, None if parts.style is None else parts.style[idx]), tags


# ---- style and framing on tensors ---------------------------------------------------------------------------
def _u(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g)


def _pick(g: torch.Generator, b: int, p: float) -> torch.Tensor:
    return (_u(g, b) < p).view(b, 1, 1, 1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]  # (B, 1, H, W)


def frame(
    x: torch.Tensor,
    g: torch.Generator,
    bg: torch.Tensor | None = None,
    zoom=(0.55, 1.45),
    masks: torch.Tensor | None = None,
):
    """Random zoom (out: the portrait shrinks onto `bg` (B, 3) or its own corner colour; in: crop towards the
    face), rotation up to 12 degrees, aspect 0.85-1.18 and a shift. x (B, 3, S, S) in [-1, 1].
    `masks` (B, P, S, S) (part masks) get the same transform, 0 outside the picture, and (x, masks) is
    returned."""
    b = x.shape[0]
    lo, hi = np.log(zoom[0]), np.log(zoom[1])
    z = torch.exp(lo + (hi - lo) * _u(g, b))  # > 1 zooms in
    asp = torch.exp(
        (np.log(1.18) + np.log(0.85)) / 2 + (np.log(1.18) - np.log(0.85)) / 2 * (2 * _u(g, b) - 1)
    )
    rot = (2 * _u(g, b) - 1) * np.deg2rad(12)
    # zooming in goes towards the face (upper-middle of the creator's frame), zooming out recentres
    cy = torch.where(z > 1, -0.12 * (1 - 1 / z), 0.12 * (1 / z - 1)) + (2 * _u(g, b) - 1) * 0.12
    cx = (2 * _u(g, b) - 1) * 0.12
    sx, sy = 1 / (z * asp.sqrt()), asp.sqrt() / z
    cos, sin = torch.cos(rot), torch.sin(rot)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * sx, -sin * sy, cx
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * sx, cos * sy, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    inside = F.grid_sample(
        torch.ones_like(x[:, :1]), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if bg is None:
        bg = x[:, :, 0, 0]  # the top-left corner: the portrait's background colour
    out = out * inside + bg.view(b, 3, 1, 1) * (1 - inside)
    if masks is None:
        return out
    return out, F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def posterise(x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Quantise each channel to `levels` (B,) steps: flat colour areas, hue of a flat patch kept."""
    lv = levels.view(-1, 1, 1, 1).float()
    y = (x + 1) / 2
    return (torch.round(y * (lv - 1)) / (lv - 1)) * 2 - 1


def _med3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def median3(x: torch.Tensor) -> torch.Tensor:
    """Separable 3x3 median (median of 3 along rows, then columns) per channel: flattens texture and removes
    1 px outlines, keeps edges and flat colours."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    r = _med3(p[..., :, :-2], p[..., :, 1:-1], p[..., :, 2:])  # (B, C, H+2, W)
    return _med3(r[..., :-2, :], r[..., 1:-1, :], r[..., 2:, :])


def thicken_lines(x: torch.Tensor, dark: float = -0.45) -> torch.Tensor:
    """Dark pixels (outlines) spread to their 3x3 neighbours: thicker lines, other colours untouched."""
    b, c, h, w = x.shape
    lum = _luma(x)
    neg, idx = F.max_pool2d(F.pad(-lum, (1, 1, 1, 1), mode="replicate"), 3, 1, return_indices=True)
    pw = w + 2
    flat = F.pad(x, (1, 1, 1, 1), mode="replicate").flatten(2)  # (B, C, (H+2)(W+2))
    src = flat.gather(2, idx.flatten(2).expand(b, c, h * w)).view(b, c, h, w)
    del pw
    return torch.where((-neg < dark) & (lum >= dark), src, x)


def add_outlines(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Draw a dark line where colour changes sharply (cartoon outlines), in a darkened copy of the colour."""
    b = x.shape[0]
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().sum(1, keepdim=True)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().sum(1, keepdim=True)
    e = F.pad(dx, (0, 1, 0, 0)) + F.pad(dy, (0, 0, 0, 1))  # (B, 1, H, W)
    thr = 0.5 + 0.6 * _u(g, b).view(b, 1, 1, 1)
    line = (e > thr).float()
    darkness = 0.3 + 0.6 * _u(g, b).view(b, 1, 1, 1)
    ink = (x + 1) * (1 - darkness) - 1  # darker, same hue
    return x * (1 - line) + ink * line


def texture(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Painted look: low-frequency multiplicative light variation (same factor on every channel)."""
    b, _, h, w = x.shape
    n = torch.randn(b, 1, 8, 8, generator=g)
    n = F.interpolate(n, size=(h, w), mode="bicubic", align_corners=False)
    amp = 0.15 * _u(g, b).view(b, 1, 1, 1)
    return ((x + 1) * (1 + amp * n)).clamp(0, 2) - 1


def tone(x: torch.Tensor, g: torch.Generator, colours: torch.Tensor | None = None):
    """Hue-preserving tone change: contrast 0.8-1.2, brightness +-0.12, gamma 0.8-1.25, saturation 0.8-1.2.
    With `colours` ((B, 3, K, 1) in [-1, 1]: colours the image shows) returns (image, colours) with the same
    per-image change applied to the colours (its contrast pivot is the image's mean)."""
    b = x.shape[0]
    gam = torch.exp((2 * _u(g, b) - 1) * np.log(1.25)).view(b, 1, 1, 1)
    y = ((x + 1) / 2).clamp(0, 1) ** gam
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    con = (0.8 + 0.4 * _u(g, b)).view(b, 1, 1, 1)
    bri = (2 * _u(g, b) - 1).view(b, 1, 1, 1) * 0.06
    sat = (0.8 + 0.4 * _u(g, b)).view(b, 1, 1, 1)

    def rest(y: torch.Tensor) -> torch.Tensor:
        y = (y - m) * con + m + bri
        grey = _luma(y)
        y = grey + (y - grey) * sat
        return y.clamp(0, 1) * 2 - 1

    if colours is None:
        return rest(y)
    return rest(y), rest(((colours + 1) / 2).clamp(0, 1) ** gam)


def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with per-image sigma (B,) in px (5x5 kernel)."""
    b, c, h, w = x.shape
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-(r.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).clamp_min(1e-3) ** 2))  # (B, 5)
    k = k / k.sum(1, keepdim=True)
    xp = F.pad(x, (2, 2, 2, 2), mode="replicate").reshape(1, b * c, h + 4, w + 4)
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(xp, kk.view(b * c, 1, 1, 5), groups=b * c)
    y = F.conv2d(y, kk.view(b * c, 1, 5, 1), groups=b * c)
    return y.view(b, c, h, w)


def resample(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Through a random lower resolution (0.4-1 of the side) and back, nearest or bilinear."""
    s = x.shape[-1]
    small = max(8, int(round(s * (0.4 + 0.6 * float(_u(g, 1))))))
    mode = "nearest" if float(_u(g, 1)) < 0.3 else "bilinear"
    y = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(y, size=(s, s), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))


def jpeg(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """JPEG round trip at quality 15-80 per image (PIL)."""
    from PIL import Image

    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    out = []
    for a in arr:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=int(15 + 65 * float(_u(g, 1))))
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1


def cutouts(x: torch.Tensor, g: torch.Generator, frac: float = 0.2) -> torch.Tensor:
    """One small rectangle (up to `frac` of each side) in a random flat colour: hides a little, never a part."""
    b, _, h, w = x.shape
    ch = (1 + _u(g, b) * frac * h).long()
    cw = (1 + _u(g, b) * frac * w).long()
    cy = (_u(g, b) * (h - ch + 1)).long()
    cx = (_u(g, b) * (w - cw + 1)).long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    inside = (
        (ys >= cy.view(b, 1, 1))
        & (ys < (cy + ch).view(b, 1, 1))
        & (xs >= cx.view(b, 1, 1))
        & (xs < (cx + cw).view(b, 1, 1))
    )
    col = _u(g, b, 3, 1, 1) * 2 - 1
    return torch.where(inside.unsqueeze(1), col, x)


@dataclass
class StyleOptions:
    """Probability of each style step per image (framing is always on unless zoom is (1, 1))."""

    zoom: tuple[float, float] = (0.55, 1.45)
    p_frame: float = 0.85
    p_posterise: float = 0.25
    p_median: float = 0.3
    p_thicken: float = 0.2
    p_outline: float = 0.25
    p_texture: float = 0.3
    p_tone: float = 0.6
    p_blur: float = 0.2
    p_resample: float = 0.25
    p_jpeg: float = 0.2
    p_noise: float = 0.3
    p_cutout: float = 0.25


def style_augment(
    x: torch.Tensor, g: torch.Generator, opts: StyleOptions | None = None, colours: torch.Tensor | None = None
):
    """The tagger's style/framing augmentation on (B, 3, S, S) in [-1, 1]; each step on a random share.

    `colours` ((B, 3, K, 1) in [-1, 1], e.g. each image's hair and eye colour): the colour steps
    (posterisation, tone) are applied to them too and (image, colours) is returned, so colour tags can follow
    what the image now shows (`relabel_colours`). The other steps leave a flat colour as it is (outlines,
    median, blur, resampling and cut-outs change edges; texture and noise average out). The random draws are
    the same with or without `colours`."""
    o = opts or StyleOptions()
    b = x.shape[0]

    def apply(p: float, fn, with_colours: bool = False) -> None:
        nonlocal x, colours
        if p <= 0:
            return
        m = _u(g, b) < p
        if m.any():
            x = x.clone()
            if with_colours and colours is not None:
                colours = colours.clone()
                x[m], colours[m] = fn(x[m], colours[m])
            elif with_colours:
                x[m] = fn(x[m], None)[0]
            else:
                x[m] = fn(x[m])

    def poster(t: torch.Tensor, c: torch.Tensor | None):
        levels = (4 + 6 * _u(g, len(t))).round()
        return posterise(t, levels), None if c is None else posterise(c, levels)

    def toned(t: torch.Tensor, c: torch.Tensor | None):
        return (tone(t, g), None) if c is None else tone(t, g, c)

    apply(o.p_outline, lambda t: add_outlines(t, g))
    apply(o.p_texture, lambda t: texture(t, g))
    apply(o.p_median, median3)
    apply(o.p_thicken, thicken_lines)
    apply(o.p_posterise, poster, with_colours=True)
    if o.zoom != (1.0, 1.0):
        apply(o.p_frame, lambda t: frame(t, g, None, o.zoom))
    apply(o.p_tone, toned, with_colours=True)
    apply(o.p_blur, lambda t: blur(t, 0.3 + 0.8 * _u(g, len(t))))
    apply(o.p_resample, lambda t: resample(t, g))
    apply(o.p_cutout, lambda t: cutouts(t, g))
    apply(o.p_noise, lambda t: t + 0.06 * _u(g, len(t)).view(-1, 1, 1, 1) * torch.randn(t.shape, generator=g))
    apply(o.p_jpeg, lambda t: jpeg(t, g))
    x = x.clamp(-1, 1)
    return x if colours is None else (x, colours.clamp(-1, 1))


def relabel_colours(tags: np.ndarray, colours: dict[str, np.ndarray], schema) -> np.ndarray:
    """Tags with the hair and eye colour groups set from `colours` (part -> (B, 3) sRGB [0, 1]): the nearest
    creator palette colour in CIELAB, unlabelled (all-zero) when two families are about as near, as in
    `recolour`."""
    from charforge.creators.builtin import palette

    tags = tags.copy()
    for part, (_, table_name, group) in PARTS.items():
        if group is None or part not in colours:
            continue
        g = next(gr for gr in schema.groups if gr.name == group)
        names = tuple(t.removesuffix(" hair").removesuffix(" eyes") for t in g.tags)
        table = palette.table(getattr(palette, table_name), names)
        lab = nearest_tag(np.asarray(colours[part], np.float64), table, colour_family(names))
        sl = schema.group_slices()[schema.groups.index(g)]
        t = np.zeros((len(tags), sl.stop - sl.start), np.float32)
        t[np.arange(len(tags))[lab >= 0], lab[lab >= 0]] = 1.0
        tags[:, sl] = t
    return tags


def held_out_style(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The validation shift: every image gets a strong combination, including two transforms training never
    uses (a PIL median-cut palette of 6-12 colours and nearest-neighbour pixelation), so that settings are
    chosen on a style gap, not on the training distribution."""
    from PIL import Image

    b = x.shape[0]
    x = frame(x, g, None, (0.6, 1.35))
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    out = []
    for i, a in enumerate(arr):
        im = Image.fromarray(a)
        if i % 3 == 0:
            im = im.quantize(colors=6 + int(6 * float(_u(g, 1))), method=Image.Quantize.MEDIANCUT).convert(
                "RGB"
            )
        elif i % 3 == 1:
            k = 2 + int(2 * float(_u(g, 1)))
            im = im.resize((a.shape[1] // k, a.shape[0] // k), Image.BILINEAR).resize(im.size, Image.NEAREST)
        out.append(np.asarray(im))
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1
    x = torch.where(_pick(g, b, 0.5), add_outlines(x, g), x)
    x = tone(x, g)
    return jpeg(x, g)


# ---- a cache of part renders ---------------------------------------------------------------------------------
def cached_part_renders(
    data, idx: np.ndarray, cache: str | None, chunk: int = 500, progress_desc: str | None = None
) -> PartRenders:
    """`render_parts` for images `idx` of a packed built-in dataset (from its stored parameters), cached per
    chunk as .npz under `cache` (a folder; None: no cache), so a rerun or a resumed training reuses them."""
    from pathlib import Path

    if not has_part_renders(data):
        raise ValueError("part recolouring needs a dataset built by the built-in creator (with parameters)")
    creator = _creator_for(data)
    size = data.size
    root = Path(cache) if cache else None
    if root:
        root.mkdir(parents=True, exist_ok=True)
    from charforge.utils.progress import progress

    pieces = []
    bar = progress(total=len(idx), desc=progress_desc or "part renders", unit="img")
    for start in range(0, len(idx), chunk):
        sub = np.asarray(idx[start : start + chunk])
        key = f"parts_{data.manifest_hash()[:12]}_{size}_{int(sub[0])}_{int(sub[-1])}_{len(sub)}.npz"
        f = root / key if root else None
        if f is not None and f.is_file():
            z = np.load(f)
            pr = PartRenders(
                base=z["base"],
                coef={p: z[f"coef_{p}"] for p in PARTS},
                colour={p: z[f"colour_{p}"] for p in PARTS},
                tags=z["tags"],
                style=z["style"] if "style" in z.files else None,
            )
        else:
            pr = render_parts(creator, data.space.decode(np.asarray(data.params[sub])), size)
            if f is not None:
                tmp = f.with_suffix(".tmp.npz")
                np.savez(
                    tmp,
                    base=pr.base,
                    tags=pr.tags,
                    **{f"coef_{p}": pr.coef[p] for p in PARTS},
                    **{f"colour_{p}": pr.colour[p] for p in PARTS},
                    **({} if pr.style is None else {"style": pr.style}),
                )
                tmp.rename(f)
        pieces.append(pr)
        bar.update(len(sub))
    bar.close()
    return PartRenders(
        base=np.concatenate([p.base for p in pieces]),
        coef={k: np.concatenate([p.coef[k] for p in pieces]) for k in PARTS},
        colour={k: np.concatenate([p.colour[k] for p in pieces]) for k in PARTS},
        tags=np.concatenate([p.tags for p in pieces]),
        style=None if pieces[0].style is None else np.concatenate([p.style for p in pieces]),
    )


def render_mask_part(creator, batch, size: int, part: str, base: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 coefficient (x COEF_SCALE) of a MASK_ONLY_PARTS part for `batch`, whose jitter-zeroed
    render is `base` (PartRenders.base): one more render with the part's colour option swapped."""
    draw, cat, cont = _jitter_free(creator, batch)
    k, _ = _swap_coefficient(draw, creator.space, batch, cat, cont, base, size, *MASK_ONLY_PARTS[part])
    k = np.clip(k, 0, None).max(axis=-1, keepdims=True)
    return np.repeat(np.clip(np.round(k * COEF_SCALE), 0, 255).astype(np.uint8), 3, axis=-1)


def _creator_for(data):
    """The built-in creator a packed dataset was built with (plain, or multi-style in its own style order)."""
    from charforge.creators.builtin import BuiltinCreator

    if data.space.name == "builtin":
        return BuiltinCreator()
    creator = BuiltinCreator(styles=data.space.categorical[data.space.cat_index("style")].options)
    if creator.space.names != data.space.names:
        raise ValueError("the dataset's multi-style parameter space is not the built-in creator's")
    return creator


def cached_mask_parts(
    data, idx: np.ndarray, parts: PartRenders, names, cache: str | None, chunk: int = 500
) -> PartRenders:
    """`parts` (the part renders of images `idx`, from `cached_part_renders`) with the MASK_ONLY_PARTS in
    `names` added to its coefficients, cached per chunk beside the part renders."""
    from pathlib import Path

    names = [n for n in names if n in MASK_ONLY_PARTS]
    if not names:
        return parts
    creator = _creator_for(data)
    root = Path(cache) if cache else None
    coef = dict(parts.coef)
    from charforge.utils.progress import progress

    for name in names:
        pieces = []
        bar = progress(total=len(idx), desc=f"{name} masks", unit="img")
        for start in range(0, len(idx), chunk):
            sub = np.asarray(idx[start : start + chunk])
            key = f"mask_{name}_{data.manifest_hash()[:12]}_{data.size}_{int(sub[0])}_{int(sub[-1])}_{len(sub)}.npy"
            f = root / key if root else None
            if f is not None and f.is_file():
                pieces.append(np.load(f))
                bar.update(len(sub))
                continue
            batch = data.space.decode(np.asarray(data.params[sub]))
            m = render_mask_part(creator, batch, data.size, name, parts.base[start : start + len(sub)])
            if f is not None:
                root.mkdir(parents=True, exist_ok=True)
                tmp = f.with_suffix(".tmp.npy")
                np.save(tmp, m)
                tmp.rename(f)
            pieces.append(m)
            bar.update(len(sub))
        bar.close()
        coef[name] = np.concatenate(pieces)
    return PartRenders(base=parts.base, coef=coef, colour=parts.colour, tags=parts.tags, style=parts.style)


def has_part_renders(data) -> bool:
    """Whether a packed dataset can be part-recoloured: built by the built-in creator (plain or multi-style)
    with its parameters stored."""
    return (
        data.params is not None
        and data.space is not None
        and data.space.name in ("builtin", "builtin-styles")
    )


def shifted_validation(
    parts: PartRenders, schema, seed: int = 0, batch: int = 250
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out renders under a held-out shift: recoloured parts (probability 0.7 each) and `held_out_style`,
    with a fixed seed. Returns uint8 (N, S, S, 3) images and (N, T) float32 tags (unlabelled hair/eye groups
    are all-zero)."""
    rng = np.random.default_rng([seed, 4242])
    g = torch.Generator().manual_seed(seed + 4242)
    ims, tgs = [], []
    for start in range(0, len(parts), batch):
        idx = np.arange(start, min(start + batch, len(parts)))
        img, tags = recolour(parts, idx, rng, schema, p_part=0.7)
        x = torch.from_numpy(img).permute(0, 3, 1, 2) * 2 - 1
        y = held_out_style(x, g)
        ims.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
        tgs.append(tags)
    return np.concatenate(ims), np.concatenate(tgs)
