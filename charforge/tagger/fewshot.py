"""Learn a folder's own look from the images its owner labelled: a per-folder probe for the tags the shipped
estimator reads badly in this style.

The shipped tag estimator learned hats and glasses from the creator's renders and a few avatar libraries; a hat
drawn in a style it never saw is a shape it has not met (docs/foreign_benchmarks.md: hat F1 0.17 on the foreign
test sets, and no training recipe carried hats to a held-out style). Within one folder, though, a style draws its
hats one way. So when a tags file labels some of the images and the estimator fills in the rest, `data import`
fits, for each independent tag, a logistic regression on the labelled images' ImageNet features (EfficientNet-Lite0,
the whole picture and its top and eye bands, as the estimator's own probe reads them: charforge.tagger.probe) and
uses it for the unlabelled images wherever it beats the estimator on the labelled ones:

- a tag is tried with at least MIN_EACH labelled images with it and MIN_EACH without;
- the probe's balanced accuracy is cross-validated on the labelled images (stratified folds, the regularisation
  chosen inside each fold's training part), the estimator's is read on the same images;
- the probe replaces the estimator for that tag when it is at least MIN_BALANCED and beats the estimator by
  MARGIN; otherwise the estimator's answer stays and the report says why.

Everything is deterministic (fixed folds, lbfgs), so a resumed import learns the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_EACH = 4  # labelled images with, and without, a tag before a probe is tried for it
MIN_BALANCED = 0.7  # cross-validated balanced accuracy a probe needs
MARGIN = 0.05  # ... and by how much it must beat the estimator's on the same labelled images
FOLDS = 5
CS = (0.003, 0.03, 0.3)  # inverse L2 strengths tried (standardised features, thousands of dimensions)
CROPS = ("full", "top", "eyes")
SIZE = 112  # px each band is read at (the bust probe's size: about 4x cheaper than the network's own 224)
UNSURE = 0.15  # a learned answer within this of 0.5 is listed as uncertain in the report


@dataclass
class Learned:
    """What was learned for one tag."""

    tag: str
    positives: int
    negatives: int
    used: bool = False
    probe_balanced: float | None = None  # cross-validated, on the labelled images
    estimator_balanced: float | None = None  # on the same labelled images
    why: str = ""
    proba: np.ndarray | None = field(default=None, repr=False)  # (M,) for the unlabelled images, when used

    def summary(self) -> dict:
        return {
            "tag": self.tag,
            "labelled_with": self.positives,
            "labelled_without": self.negatives,
            "used": self.used,
            "probe_balanced_accuracy": None if self.probe_balanced is None else round(self.probe_balanced, 3),
            "estimator_balanced_accuracy": None
            if self.estimator_balanced is None
            else round(self.estimator_balanced, 3),
            "why": self.why,
        }


def balanced_accuracy(truth: np.ndarray, said: np.ndarray) -> float:
    """Mean of the recalls of "with" and "without" (scikit-learn's, on 0/1 answers)."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(np.asarray(truth).astype(bool), np.asarray(said).astype(bool)))


def features(images: np.ndarray, desc: str | None = None) -> np.ndarray:
    """(N, 3 x 1280) float32 probe features of uint8 (N, S, S, 3) samples."""
    from charforge.tagger.probe import probe_features

    return probe_features(np.asarray(images, np.uint8), CROPS, desc=desc, size=SIZE)


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with (
        warnings.catch_warnings()
    ):  # a fold that stops short of convergence is still scored; no console noise
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(x, y)


def _folds(y: np.ndarray, k: int) -> list[np.ndarray]:
    """Deterministic stratified folds: each class's indices dealt round-robin."""
    fold = np.zeros(len(y), int)
    for v in (0, 1):
        idx = np.flatnonzero(y == v)
        fold[idx] = np.arange(len(idx)) % k
    return [np.flatnonzero(fold == f) for f in range(k)]


def _pick_c(x: np.ndarray, y: np.ndarray) -> float:
    """The C with the best balanced accuracy in an inner stratified split of (x, y) (ties: the stronger L2)."""
    k = int(min(3, (y == 1).sum(), (y == 0).sum()))
    if k < 2:
        return CS[0]
    scores = []
    for c in CS:
        said = np.zeros(len(y), bool)
        for test in _folds(y, k):
            train = np.setdiff1d(np.arange(len(y)), test)
            said[test] = _fit(x[train], y[train], c).decision_function(x[test]) >= 0
        scores.append(balanced_accuracy(y, said))
    return CS[int(np.argmax(scores))]


def learn(
    tag_names: list[str],
    feats_labelled: np.ndarray,
    labels: np.ndarray,
    estimated_on_labelled: np.ndarray,
    feats_rest: np.ndarray,
) -> list[Learned]:
    """For each tag (columns of `labels` (N, K) 0/1 and `estimated_on_labelled` (N, K) 0/1, the estimator's forced
    answers on the same N labelled images): a Learned, with `proba` over the M rows of `feats_rest` where used."""
    x_all = np.concatenate([feats_labelled, feats_rest]).astype(np.float64)
    mu, sd = x_all.mean(0), x_all.std(0) + 1e-6  # standardised over the whole folder (labels not used)
    xl, xr = (feats_labelled - mu) / sd, (feats_rest - mu) / sd
    out = []
    for k, tag in enumerate(tag_names):
        y = np.asarray(labels[:, k]).astype(int)
        pos, neg = int(y.sum()), int((1 - y).sum())
        res = Learned(tag, pos, neg)
        out.append(res)
        if min(pos, neg) < MIN_EACH:
            res.why = f"needs {MIN_EACH} labelled images with it and {MIN_EACH} without"
            continue
        res.estimator_balanced = balanced_accuracy(y, estimated_on_labelled[:, k])
        folds = int(min(FOLDS, pos, neg))
        said = np.zeros(len(y), bool)
        for test in _folds(y, folds):
            train = np.setdiff1d(np.arange(len(y)), test)
            c = _pick_c(xl[train], y[train])
            said[test] = _fit(xl[train], y[train], c).decision_function(xl[test]) >= 0
        res.probe_balanced = balanced_accuracy(y, said)
        if res.probe_balanced < MIN_BALANCED:
            res.why = (
                f"the probe's cross-validated balanced accuracy {res.probe_balanced:.2f} < {MIN_BALANCED}"
            )
            continue
        if res.probe_balanced < res.estimator_balanced + MARGIN:
            res.why = (
                f"the estimator reads it as well on your labelled images ({res.estimator_balanced:.2f} vs the "
                f"probe's {res.probe_balanced:.2f})"
            )
            continue
        model = _fit(xl, y, _pick_c(xl, y))
        res.used, res.proba = True, model.predict_proba(xr)[:, 1] if len(xr) else np.zeros(0)
        res.why = (
            f"learned from your labels: balanced accuracy {res.probe_balanced:.2f} (cross-validated) against the "
            f"estimator's {res.estimator_balanced:.2f} on the same images"
        )
    return out


def suggest(feats: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of k images worth labelling first: the member nearest each centre of a k-means of the folder's
    features (PCA to at most 32 dimensions first), so the labels cover the folder's kinds of picture rather than
    its commonest one. Sorted; deterministic for a seed."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = np.asarray(feats, np.float64)
    k = int(min(k, len(x)))
    if k <= 0:
        return np.zeros(0, int)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    x = PCA(n_components=min(32, len(x), x.shape[1]), random_state=seed).fit_transform(x)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    picked: list[int] = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        d = ((x[members] - km.cluster_centers_[c]) ** 2).sum(1)
        picked.append(int(members[np.argmin(d)]))
    return np.array(sorted(set(picked)))
