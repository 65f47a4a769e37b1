"""Honest similarity: how close a fit is to its input, measured where the search did not look, and calibrated.

The search maximises the cosine in the model's own embedder space, so that number is high for every answer it
returns, good or bad (a collapsed model prints 0.999). The check instead compares the input and the fit's preview
in an independent space: EfficientNet-Lite0 ImageNet features (`generic`, the metrics' network), or, when the model's
embedder is that very network, a colour-histogram + thumbnail space (`colour`). The raw cosine there still depends on
the input (a photo never looks much like a drawing), so it is calibrated: the percentile of the fit's cosine among
the cosines of random creator renders to the same input. 50 = no better than a random character; a good fit beats
nearly all of them. The random renders' features are computed once per creator and cached on disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from charforge.utils.io import save_npy_atomic

CHECK_N = 200  # random renders (or recorded captures) in a creator's reference set
CHECK_SIZE = 128  # px the reference renders and previews are compared at
CHECK_SEED = 20261201  # fixed: the reference set is the same on every machine
WARN_PERCENTILE = 75.0  # below this the fit is reported as not clearly better than a random character
_MEMO: dict[str, np.ndarray] = {}


def check_space_for(embedder_name: str) -> str:
    """The independent space for a model whose search uses `embedder_name`."""
    return "colour" if embedder_name == "generic" else "generic"


def cache_dir() -> Path:
    """$CHARFORGE_CACHE/f2p, else $XDG_CACHE_HOME/charforge/f2p, else ~/.cache/charforge/f2p."""
    from charforge.utils.io import cache_dir as root

    return root("f2p")


def square_resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    from charforge.f2p.embedders import square_crop

    out = []
    for im in images:
        sq = square_crop(np.asarray(im))
        if sq.shape[0] != size:
            sq = np.asarray(Image.fromarray(sq).resize((size, size), Image.Resampling.BILINEAR))
        out.append(sq)
    return np.stack(out)


def colour_features(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 408) unit rows: a 6x6x6 joint RGB histogram (square-rooted) next to an 8x8 colour
    thumbnail (mean-centred), each given equal weight."""
    x = square_resize(images, 64).astype(np.float32)  # (N, 64, 64, 3)
    q = np.minimum((x / 256.0 * 6).astype(np.int64), 5)
    codes = q[..., 0] * 36 + q[..., 1] * 6 + q[..., 2]  # (N, 64, 64)
    hist = np.stack([np.bincount(c.ravel(), minlength=216) for c in codes]).astype(np.float32)
    hist = np.sqrt(hist / hist.sum(1, keepdims=True))
    thumb = x.reshape(len(x), 8, 8, 8, 8, 3).mean((2, 4)).reshape(len(x), -1) / 255.0
    thumb = thumb - thumb.mean(1, keepdims=True)
    parts = [hist, thumb]
    parts = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts]
    out = np.concatenate(parts, axis=1)
    return out / np.sqrt(2.0)


def check_features(images: np.ndarray, space: str) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, D) unit rows in the independent `space` ('generic' or 'colour')."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if space == "colour":
        return colour_features(images)
    from charforge.f2p.embedders import GenericEmbedder

    return GenericEmbedder().embed(square_resize(images, CHECK_SIZE))


def _reference_key(f2p, space: str, low: int | None) -> str:
    creator = f2p.creator
    spec = f2p.creator_spec
    if creator is not None and not getattr(creator, "can_render", True):
        spec = f"{spec}|{len(creator)}"  # a recorded folder that grew gets a new reference
    parts = [spec, f2p.space.to_json(), space, str(CHECK_N), str(CHECK_SIZE), str(CHECK_SEED), str(low)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def blur_to(images: np.ndarray, low: int) -> np.ndarray:
    """Down to `low` px and back up to CHECK_SIZE: what a small input looks like after resizing."""
    return square_resize(square_resize(images, low), CHECK_SIZE)


def reference_features(f2p, space: str, low: int | None = None) -> np.ndarray | None:
    """(CHECK_N, D) features of random renders of the model's creator (random captures of a recorded one), cached
    per creator in memory and under cache_dir(); None when the creator is not available. `low`: the renders are
    made at `low` px and scaled up (the reference for small inputs)."""
    creator = f2p.creator
    if creator is None:
        return None
    key = _reference_key(f2p, space, low)
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / f"reference-{key}.npy"
    if path.is_file():
        try:
            feats = np.load(path)
            _MEMO[key] = feats
            return feats
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt
    rng = np.random.default_rng(CHECK_SEED)
    size = low or CHECK_SIZE
    if getattr(creator, "can_render", True):
        images = creator.render(creator.sample(CHECK_N, rng), size)
    else:
        idx = np.sort(rng.choice(len(creator), size=min(CHECK_N, len(creator)), replace=False))
        images = creator.images(size, idx)
    if low:
        images = blur_to(images, low)
    feats = check_features(images, space).astype(np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npy_atomic(path, feats)
    except OSError:
        pass  # a read-only cache is not an error: the reference is rebuilt next time
    _MEMO[key] = feats
    return feats


def calibrate(input_feat: np.ndarray, fit_feat: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(cosine between input and fit, percentile 0-100 of that cosine among the reference renders' cosines to the
    same input; ties count half)."""
    cos = float(input_feat @ fit_feat)
    ref = reference @ input_feat
    pct = 100.0 * (float((ref < cos).sum()) + 0.5 * float((ref == cos).sum())) / max(1, len(ref))
    return cos, pct


FAMILIAR_SPACE = "generic"  # familiarity is judged in ImageNet features whatever the model's embedder
FAMILIAR_LOW = 64  # px of the second, blurred reference (inputs at a model's render size are this small)


def _loo_floor(ref: np.ndarray, pct: float = 1.0) -> float:
    gram = ref @ ref.T
    np.fill_diagonal(gram, -np.inf)
    return float(np.percentile(gram.max(1), pct))


def familiar(f2p, images) -> bool | None:
    """Whether `images` look like the creator's own renders: each image's nearest reference render, sharp (128 px)
    or blurred (64 px scaled up, compared with the image equally blurred), is at least as close as the 1st
    percentile of the references' own nearest-neighbour cosines (leave-one-out). Measured on the built-in creator:
    98 of 100 renders at 64 px and all at 128 and 256 px count as its own, none of 90 foreign avatar drawings
    (DiceBear) do: a narrow margin (nearest cosines 0.72+ against 0.71 or less). `images`: (H, W, 3) uint8 arrays of
    any sizes, as given (resizing them first would change the blurred comparison). None without a creator."""
    sharp = reference_features(f2p, FAMILIAR_SPACE)
    blurred = reference_features(f2p, FAMILIAR_SPACE, low=FAMILIAR_LOW)
    if sharp is None or blurred is None or len(sharp) < 3:
        return None
    threshold = min(_loo_floor(sharp), _loo_floor(blurred))
    a = (check_features(square_resize(images, CHECK_SIZE), FAMILIAR_SPACE) @ sharp.T).max(1)
    b = (check_features(blur_to(images, FAMILIAR_LOW), FAMILIAR_SPACE) @ blurred.T).max(1)
    return bool(np.maximum(a, b).min() >= threshold)
