"""Fitting the tag estimator's familiarity model (`charforge tagger familiarity`; charforge.tagger.familiar).

A probabilistic PCA of the standardised full-picture EfficientNet-Lite0 features of the sets the estimator learned
from (`--on`): the mean and spread per feature, the top `components` principal directions with their variances,
and the mean variance of the rest as isotropic noise. The line is the `quantile` of the score on *other* pictures
of the same kinds (`--line-on`: images the model was not fitted on, so the line is not set by the pictures the
model knows best). The result is a copy of the tagger file with the model added; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charforge.errors import UserError

MIN_IMAGES_PER_COMPONENT = 4  # fitting images the model needs per principal direction


@dataclass
class FamiliarityFit:
    path: Path
    line: float
    fitted: int  # images the model was fitted on
    line_images: int  # images the line was set on
    above: dict  # set name -> share of its images above the line


def fit_model(
    x_fit: np.ndarray,
    x_line: np.ndarray,
    *,
    components: int = 64,
    quantile: float = 0.99,
    meta: dict | None = None,
):
    """A Familiarity from features `x_fit` (N, D); its line is `quantile` of the scores of `x_line` (M, D)."""
    from charforge.tagger.familiar import Familiarity

    x_fit = np.asarray(x_fit, np.float64)
    n, d = x_fit.shape
    if not 1 <= components < d:
        raise UserError(f"--components {components}: must be between 1 and {d - 1}", field="components")
    if n < MIN_IMAGES_PER_COMPONENT * components:
        raise UserError(
            f"--on: {n} images are too few for {components} components (at least "
            f"{MIN_IMAGES_PER_COMPONENT * components}); add images or lower --components",
            field="on",
        )
    if not 0.5 <= quantile < 1:
        raise UserError(f"--quantile {quantile}: must be in [0.5, 1)", field="quantile")
    if len(x_line) < 20:
        raise UserError(
            f"--line-on: {len(x_line)} images are too few to set a line (at least 20)", field="line_on"
        )
    mean, std = x_fit.mean(axis=0), np.maximum(x_fit.std(axis=0), 1e-6)
    z = (x_fit - mean) / std
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    var = s**2 / max(n - 1, 1)
    total = float((z * z).sum() / max(n - 1, 1))
    noise = max((total - float(var[:components].sum())) / (d - components), 1e-6)
    model = Familiarity(mean, std, vt[:components].copy(), np.maximum(var[:components], 1e-6), noise, 0.0, {})
    model.line = float(np.quantile(model.score(x_line), quantile))
    model.meta = {**(meta or {}), "components": components, "quantile": quantile}
    return model


def fit_familiarity(
    tagger_path: str | Path,
    sets: list[str | Path],
    line_sets: list[str | Path],
    out: str | Path,
    *,
    components: int = 64,
    quantile: float = 0.99,
    limit: int | None = None,
    progress: bool = True,
    size: int | None = None,
) -> FamiliarityFit:
    from charforge.tagger.familiar import full_features
    from charforge.train.thresholds import copy_tagger_file, load_labelled, open_for_copy

    if components < 1:
        raise UserError(f"--components {components}: must be at least 1", field="components")
    if not 0.5 <= quantile < 1:
        raise UserError(f"--quantile {quantile}: must be in [0.5, 1)", field="quantile")
    if size is not None:
        from charforge.models.features import check_feature_size

        check_feature_size(size)
    if not sets:
        raise UserError("give the sets the estimator learned from with --on", field="on")
    if not line_sets:
        raise UserError("give other images of the same kinds with --line-on", field="line_on")
    src, out, tagger = open_for_copy(tagger_path, out, "auto")
    schema = tagger.schema
    fit = [load_labelled(s, schema, limit=limit) for s in sets]
    line = [load_labelled(s, schema, limit=limit) for s in line_sets]
    feats = lambda ls: full_features(ls.images, desc=ls.name if progress else None, cache=True, size=size)  # noqa: E731
    x_fit = np.concatenate([feats(ls) for ls in fit])
    x_line_sets = [feats(ls) for ls in line]
    record = lambda sets_: [{"name": s.name, "sha256": s.sha256, "images": len(s.images)} for s in sets_]  # noqa: E731
    model = fit_model(
        x_fit,
        np.concatenate(x_line_sets),
        components=components,
        quantile=quantile,
        meta={
            "space": "generic (EfficientNet-Lite0, ImageNet; charforge.models.features)",
            "fitted_on": record(fit),
            "line_on": record(line),
        },
    )
    if size is not None:
        model.size = int(size)
    above = {ls.name: float(model.unfamiliar(x).mean()) for ls, x in zip(line, x_line_sets)}
    model.meta["above_line"] = above

    def edit(extra: dict) -> None:
        extra["familiarity"] = model.metadata()

    reader = "shipped" if tagger.parts is not None else None
    path = copy_tagger_file(src, out, edit, reader, add_tensors=model.tensors(), drop_prefix="familiar.")
    return FamiliarityFit(Path(path), model.line, len(x_fit), sum(len(x) for x in x_line_sets), above)
