"""Fréchet distance (FID) and kernel distance (KID) between two sets of feature vectors.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). The trace of the matrix square root is computed as
Tr((S1^(1/2) S2 S1^(1/2))^(1/2)) = sum of sqrt of the eigenvalues of a symmetric PSD matrix, with eigh in
float64: no complex parts to clean up, stable when the covariances are singular (fewer samples than dims).

KID is the unbiased (U-statistic) estimate of the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
averaged over random subsets (Binkowski et al., 2018). It is unbiased, so it can be slightly negative for
identical distributions, and unlike FID it does not depend on the sample size in expectation.
"""

from __future__ import annotations

import numpy as np

from charforge.errors import UserError


def _check_pair(a: np.ndarray, b: np.ndarray, *, min_rows: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{what}: feature sets must be (N, D) with equal D, got {a.shape} and {b.shape}")
    if len(a) < min_rows or len(b) < min_rows:
        raise UserError(
            f"{what}: needs at least {min_rows} samples per set, got {len(a)} and {len(b)}; use a larger --n or dataset"
        )
    return a, b


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, s1) and N(mu2, s2)."""
    r1 = _psd_sqrt(s1)
    inner = r1 @ s2 @ r1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt, 0.0))


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) in float64."""
    f = np.asarray(feats, np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two feature sets (N, D), (M, D)."""
    a, b = _check_pair(feats_a, feats_b, min_rows=2, what="FID")
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """U-statistic MMD^2 for equal-size sets: pairs (i, j) with i != j only, also in the cross term, so a row
    and its partner (a generated image and the real image whose tags it was drawn with) never meet."""
    d, m = x.shape[1], len(x)
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    off = lambda k: k.sum() - np.trace(k)  # noqa: E731
    return float((off(kxx) + off(kyy) - 2.0 * off(kxy)) / (m * (m - 1)))


def kid(
    feats_a: np.ndarray, feats_b: np.ndarray, *, n_subsets: int = 50, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (mean, std over subsets) between two feature sets.

    When both sets have the same length, row i of one is taken as the partner of row i of the other (as in
    the evaluation, where generated image i shares real image i's tags), and subsets keep partners aligned.
    """
    a, b = _check_pair(feats_a, feats_b, min_rows=2, what="KID")
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = ia if len(a) == len(b) else rng.choice(len(b), m, replace=False)
        vals.append(_mmd2_unbiased(a[ia], b[ib]))
    return float(np.mean(vals)), float(np.std(vals))


def summarise_runs(values: list[float]) -> dict:
    """Mean and max-min spread over repeated runs (the make.girls.moe paper's Table 3 format)."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "spread": float(v.max() - v.min()), "runs": [float(x) for x in v]}
