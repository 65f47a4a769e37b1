"""Fitting the tag estimator's probe on ImageNet features (`charforge tagger probe`; charforge.tagger.probe).

For each chosen independent tag, a logistic regression (scikit-learn, L2, classes balanced) on the standardised
EfficientNet-Lite0 features of the images' crops, over every labelled image of the given sets (packed datasets
or `--extra` style .npz files, as `charforge tagger thresholds` reads them; unknown labels are left out). The
result is a copy of the tagger file with the probe added; the network's weights are unchanged. Decision offsets
fitted before (`tagger thresholds`) are dropped for the probe's tags, since its probabilities move: refit them
on other images afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charforge.errors import UserError

DEFAULT_TAGS = ("hat", "glasses")
DEFAULT_CROPS = ("full", "top", "eyes")
MIN_EACH = 20  # labelled positives and negatives a tag needs over all sets
AT_HALF = np.array([0.5])  # the decision point the F1 rows report


@dataclass
class ProbeFit:
    path: Path
    rows: list[dict] = field(
        default_factory=list
    )  # per tag: n, positives, fit-set F1 of the network and blend


def fit_probe(
    tagger_path: str | Path,
    sets: list[str | Path],
    out: str | Path,
    *,
    tags: tuple[str, ...] = DEFAULT_TAGS,
    crops: tuple[str, ...] = DEFAULT_CROPS,
    c: float = 0.003,
    blend: float = 0.75,
    parts: str = "auto",
    limit: int | None = None,
    progress: bool = True,
    size: int | None = None,
    replace: bool = False,
) -> ProbeFit:
    from charforge.models.features import GENERIC_SIZE
    from charforge.tagger.probe import CROPS, Probe, probe_features
    from charforge.train.thresholds import copy_tagger_file, load_labelled, open_for_copy

    if not sets:
        raise UserError("give at least one labelled set with --on", field="on")
    if not 0 <= blend <= 1:
        raise UserError(
            f"--blend {blend}: must be between 0 (network only) and 1 (probe only)", field="blend"
        )
    if size is not None:
        from charforge.models.features import check_feature_size

        check_feature_size(size)
    if not c > 0:
        raise UserError(f"--c {c}: the inverse regularisation strength must be > 0", field="c")
    bad = [x for x in crops if x not in CROPS]
    if bad or not crops:
        raise UserError(f"--crops {','.join(crops)}: use some of {', '.join(CROPS)}", field="crops")
    src, out, tagger = open_for_copy(tagger_path, out, parts)
    if tagger.probe is not None and not replace:
        raise UserError(
            f"{src}: already holds a probe; --replace fits a new one in its place (on the network's own answers)",
            field="tagger",
        )
    tagger.probe = None  # the network's own answers, whatever the file held
    schema = tagger.schema
    missing = [t for t in tags if t not in schema.independent]
    if missing:
        raise UserError(
            f"--tags: {', '.join(missing)} not independent tags of this tagger (it has: "
            f"{', '.join(schema.independent)})",
            field="tags",
        )
    labelled = [load_labelled(s, schema, limit=limit) for s in sets]
    feats, proba, labels = [], [], []
    for ls in labelled:
        feats.append(
            probe_features(ls.images, crops, desc=ls.name if progress else None, cache=True, size=size)
        )
        proba.append(tagger.predict_proba(ls.images))
        labels.append(ls.labels)
    x, p_net, y_all = np.concatenate(feats), np.concatenate(proba), np.concatenate(labels)
    weights, biases, mean, std, rows = fit_weights(x, y_all, p_net, schema, tags, c, blend)
    probe = Probe(
        list(tags),
        list(crops),
        weights,
        biases,
        mean,
        std,
        blend,
        {
            "space": "generic (EfficientNet-Lite0, ImageNet; charforge.models.features)",
            "c": c,
            "fitted_on": [
                {"name": ls.name, "sha256": ls.sha256, "images": len(ls.images)} for ls in labelled
            ],
            "fit_rows": rows,
            "part_reader": "attached" if tagger.parts is not None else "none",
        },
        GENERIC_SIZE if size is None else int(size),
    )

    def edit(extra: dict) -> None:
        cal = dict(extra.get("calibration") or {})
        # offsets fitted for the old probabilities of the probe's tags: zeroed
        if cal.get("bias") is not None:
            bias = list(cal["bias"])
            for t in tags:
                bias[schema.index(t)] = 0.0
            cal["bias"] = bias
            extra["calibration"] = cal
        extra["probe"] = probe.metadata()

    # auto and shipped attach only the shipped reader: keep it attached
    reader = "shipped" if tagger.parts is not None else None
    path = copy_tagger_file(src, out, edit, reader, add_tensors=probe.tensors(), drop_prefix="probe.")
    return ProbeFit(Path(path), rows)


def fit_weights(
    x: np.ndarray, y_all: np.ndarray, p_net: np.ndarray, schema, tags, c: float, blend: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """The probe's (weights (K, D), biases (K,), mean (D,), std (D,), per-tag rows) from features `x` (N, D),
    labels (N, T; NaN unknown) and the network's probabilities (N, T), which only the F1 rows use."""
    from sklearn.linear_model import LogisticRegression

    from charforge.tagger.probe import blended
    from charforge.train.thresholds import f1_curve

    weights, biases, rows = [], [], []
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-6)
    xs = (x - mean) / std
    for t in tags:
        j = schema.index(t)
        known = ~np.isnan(y_all[:, j])
        y = y_all[known, j] > 0.5
        if y.sum() < MIN_EACH or (~y).sum() < MIN_EACH:
            raise UserError(
                f"--tags {t}: the sets hold {int(y.sum())} images with it and {int((~y).sum())} without; the "
                f"probe needs at least {MIN_EACH} of each. Add labelled images (--on) or leave {t} out",
                field="tags",
            )
        clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(xs[known], y)
        weights.append(clf.coef_[0])
        biases.append(clf.intercept_[0])
        p = p_net[known, j]
        mixed = blended(p, clf.decision_function(xs[known]), blend)
        rows.append(
            {
                "tag": t,
                "n": int(known.sum()),
                "positives": int(y.sum()),
                "f1_network": round(float(f1_curve(p, y, AT_HALF)[0]), 4),
                "f1_blend": round(float(f1_curve(mixed, y, AT_HALF)[0]), 4),
            }
        )
    return (
        np.asarray(weights, np.float32),
        np.asarray(biases, np.float32),
        mean.astype(np.float32),
        std.astype(np.float32),
        rows,
    )
