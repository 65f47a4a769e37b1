"""Does a picture look like anything the tag estimator learned from? (issue 13: say when it does not know.)

The estimator learned from the creator's renders and a few avatar libraries. On art far from all of them
(painted game portraits, photos) its answers sit near its training priors and read like decisions: glasses on a
third of a folder of painted portraits where nobody wears any. A calibrated probability cannot catch that,
because the network is confidently wrong, not unsure.

Familiarity looks at the picture instead of the answer: a probabilistic PCA model (a Gaussian with `k` principal
directions and isotropic noise in the rest) of the standardised EfficientNet-Lite0 ImageNet features of the whole
picture (`charforge.models.features`, the `generic` space; the probe's "full" crop, so a tagger with a probe
computes them once). The score is the model's negative log-likelihood per feature dimension, up to a constant:
low for pictures like the fitting sets, high for others. The line is a high quantile of the score on fresh
pictures of the same kinds; a picture above it is *unfamiliar*, and wherever the estimator may abstain
(`decide_or_unknown`, `data import --estimate-tags`) none of its tags is estimated.

Stored in the tagger file: tensors `familiar.mean`, `familiar.std`, `familiar.components` (k, D),
`familiar.variances` (k,), and metadata `familiarity` ({"noise", "line", "quantile", "fitted_on", ...}). Fitted by
`charforge tagger familiarity` (charforge.train.familiar).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charforge.errors import UserError

PREFIX = "familiar."
CROP = "full"  # the whole picture: the probe's first crop
# Unfamiliar pictures get no estimated tags where they are at least this share of the pictures estimated together
# (`data import`: one chunk of files). A few flagged pictures among familiar ones are mostly the same art in other
# colours (a new cartoon style: 13-29 % of 100 flagged; on the DiceBear test sets the flagged few were tagged as
# well as the rest), so they are estimated like the rest and listed.
UNFAMILIAR_MOST = 0.5


@dataclass
class Familiarity:
    mean: np.ndarray  # (D,) of the raw features
    std: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) orthonormal principal directions of the standardised features
    variances: np.ndarray  # (k,) the variance along each
    noise: float  # the mean variance of the directions left out
    line: float  # scores above this are unfamiliar
    meta: dict
    size: int = 224  # px square the picture is resized to for the network

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N,) the PPCA negative log-likelihood per dimension of (N, D) full-picture features, up to a
        constant: Mahalanobis along the components plus the residual over the noise variance, over D."""
        z = (np.asarray(features, np.float64) - self.mean) / self.std
        c = z @ self.components.T  # (N, k)
        resid = np.maximum((z * z).sum(axis=1) - (c * c).sum(axis=1), 0.0)
        return 0.5 * ((c * c / self.variances).sum(axis=1) + resid / self.noise) / z.shape[1]

    def unfamiliar(self, features: np.ndarray) -> np.ndarray:
        """(N,) bool: above the line."""
        return self.score(features) > self.line

    def tensors(self) -> dict:
        import torch

        f = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
        return {
            PREFIX + "mean": f(self.mean),
            PREFIX + "std": f(self.std),
            PREFIX + "components": f(self.components),
            PREFIX + "variances": f(self.variances),
        }

    def metadata(self) -> dict:
        return {
            **self.meta,
            "crop": CROP,
            "noise": float(self.noise),
            "line": float(self.line),
            "size": int(self.size),
        }


def full_features(
    images: np.ndarray, desc: str | None = None, cache: bool = False, size: int | None = None
) -> np.ndarray:
    """(N, D) generic features of the whole pictures (what `Familiarity.score` reads)."""
    from charforge.tagger.probe import probe_features

    return probe_features(images, (CROP,), desc=desc, cache=cache, size=size)


def split_familiarity(tensors: dict, meta: dict, path) -> tuple[dict, Familiarity | None]:
    """(the other tensors, the file's Familiarity or None). A damaged one is an error naming the file."""
    from charforge.tagger.probe import _size_ok, split_stored

    names = ("mean", "std", "components", "variances")
    rest, stored = split_stored(tensors, meta, PREFIX, "familiarity", names, path, "familiarity model")
    if stored is None:
        return rest, None
    (mu, sd, comp, var), info, size = [stored[0][n] for n in names], stored[1], stored[2]
    try:
        noise, line = float(info["noise"]), float(info["line"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{path}: the familiarity model stored in this tagger file is incomplete ({e}); refit it with "
            "`charforge tagger familiarity`"
        ) from e
    from charforge.models.features import GENERIC_DIM

    if (
        mu.shape != (GENERIC_DIM,)
        or sd.shape != mu.shape
        or comp.ndim != 2
        or comp.shape[1] != len(mu)
        or var.shape != (len(comp),)
        or not np.all(var > 0)
        or not noise > 0
        or not np.isfinite(line)
        or not _size_ok(size)
    ):
        raise UserError(
            f"{path}: the familiarity model stored in this tagger file does not fit the feature space; refit "
            "it with `charforge tagger familiarity`"
        )
    return rest, Familiarity(mu, np.maximum(sd, 1e-6), comp, var, noise, line, info, size)
